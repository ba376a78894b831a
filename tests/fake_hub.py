"""A tiny in-memory Hub on 127.0.0.1, serving exactly what huggingface_hub 1.33 calls to publish a folder.

Tests point `HfApi(endpoint=...)` at it so the real client code runs end to end (HTTP, JSON, NDJSON,
retries, threads) without leaving the machine. Implemented, with the same request and response shapes
the client parses:

* `POST /api/repos/create`: create a repo (409 when it exists, which `exist_ok=True` accepts).
* `POST /api/{type}s/{id}/branch/{branch}`: create a branch from `main` (409 when it exists).
* `POST /api/validate-yaml`: the README front-matter check `upload_folder` makes before hashing.
* `POST /api/{type}s/{id}/preupload/{rev}`: the Hub decides each file's upload mode here and returns
  the oid of what it already holds at that path (git blob sha1 for regular files, sha256 for LFS),
  which is how the client skips unchanged files on a re-run.
* `POST /{prefix}{id}.git/info/lfs/objects/batch`: the git-LFS batch API, "basic" transfer. Objects
  the fake already stores get no `actions`, as on the Hub, so they are not sent again.
* `PUT /lfs-storage/{sha256}` and `POST /lfs-verify/{sha256}`: the storage upload (unauthenticated,
  like a pre-signed URL; the body is checked against its sha256) and the verify call.
* `POST /api/{type}s/{id}/commit/{rev}`: the NDJSON commit (`header`, `file` with base64 content,
  `lfsFile` referencing an uploaded object), applied atomically to the branch.
* `GET /api/{type}s/{id}[/revision/{rev}]`: repo info (`sha`, `siblings`), which the client asks for
  when a re-run finds nothing to commit.

Not implemented: the Xet storage protocol (a token route `GET /api/{type}s/{id}/xet-write-token/{rev}`
followed by a content-addressed store speaking binary xorb and shard formats). The fake therefore
never answers "lfs" to a client that would send LFS content through Xet: tests either disable Xet on
the client (then LFS goes through the batch API above) or run the fake with `lfs_for_binary=False`, so
every file is a regular file carried inside the commit payload.

Every request is recorded (method, path, headers) so tests can check what was sent and with which
credentials; anything else gets a 404 and lands in `unexpected`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import socket
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

import yaml

LFS_SIZE_THRESHOLD = 10 * 1024 * 1024  # the Hub stores files above 10 MB with LFS whatever their content
MAX_BODY_BYTES = 64 * 1024 * 1024  # a test that sends more is broken: refuse rather than eat memory
REPO = r"(?P<type>models|datasets|spaces)/(?P<id>[^/]+/[^/]+?)"


def git_blob_sha1(content: bytes) -> str:
    """The oid git (and the Hub) gives a regular file: sha1 over a `blob <size>\\0` header and the bytes."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str] = field(repr=False)  # lower-cased names; not in repr, it holds the token

    @property
    def authorization(self) -> str | None:
        return self.headers.get("authorization")


@dataclass
class Branch:
    files: dict[str, bytes] = field(default_factory=dict)
    lfs_paths: set[str] = field(default_factory=set)
    commits: list[dict[str, Any]] = field(default_factory=list)  # header + paths, oldest first
    head: str = "0" * 40


@dataclass
class Repo:
    repo_type: str  # "datasets", "models" or "spaces", as in the URLs
    repo_id: str
    visibility: str | None
    branches: dict[str, Branch] = field(default_factory=lambda: {"main": Branch()})


class FakeHub:
    """Start with `with FakeHub() as hub:`; `hub.url` is the endpoint to give `HfApi`.

    `token`: when set, every `/api` and LFS-batch request must carry `Authorization: Bearer <token>`
    (401 otherwise), as on the Hub for writes. `lfs_for_binary`: answer "lfs" in preupload for files
    whose first 512 bytes contain a NUL byte or that exceed 10 MB (the Hub's rule for binaries such as
    mp4 and parquet); when False every file is "regular". `fail_commit_attempts`: 1-based numbers of
    commit requests to answer with a 500 without applying them, to simulate an interrupted upload.
    """

    def __init__(
        self,
        *,
        token: str | None = None,
        lfs_for_binary: bool = True,
        fail_commit_attempts: Iterable[int] = (),
    ) -> None:
        self.token = token
        self.lfs_for_binary = lfs_for_binary
        self.fail_commit_attempts = set(fail_commit_attempts)
        self.commit_attempts = 0
        self.repos: dict[tuple[str, str], Repo] = {}
        self.lfs_objects: dict[str, bytes] = {}  # sha256 hex -> bytes
        self.requests: list[RecordedRequest] = []
        self.unexpected: list[str] = []
        self._lock = threading.Lock()
        self._commit_counter = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-hub", daemon=True
        )
        host, port = self._server.server_address[:2]
        self.url = f"http://{host}:{port}"

    def __enter__(self) -> FakeHub:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # ------------------------------------------------------------------ views for tests

    def branch(self, repo_id: str, name: str = "main", repo_type: str = "datasets") -> Branch:
        return self.repos[(repo_type, repo_id)].branches[name]

    def requests_to(self, pattern: str) -> list[RecordedRequest]:
        """Recorded requests whose `METHOD path` matches the regex `pattern`."""
        return [r for r in self.requests if re.search(pattern, f"{r.method} {r.path}")]

    # ------------------------------------------------------------------ routing

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        with self._lock:
            self.requests.append(RecordedRequest(method, path, headers))
        routes: list[tuple[str, str, Any]] = [
            ("POST", r"/api/repos/create", self._create_repo),
            ("POST", r"/api/validate-yaml", self._validate_yaml),
            ("POST", rf"/api/{REPO}/branch/(?P<branch>[^/]+)", self._create_branch),
            ("POST", rf"/api/{REPO}/preupload/(?P<rev>[^/]+)", self._preupload),
            ("POST", rf"/api/{REPO}/commit/(?P<rev>[^/]+)", self._commit),
            ("GET", rf"/api/{REPO}(?:/revision/(?P<rev>[^/]+))?", self._repo_info),
            (
                "POST",
                r"/(?:(?P<type>datasets|spaces)/)?(?P<id>[^/]+/[^/]+)\.git/info/lfs/objects/batch",
                self._batch,
            ),
            ("PUT", r"/lfs-storage/(?P<oid>[0-9a-f]{64})", self._lfs_put),
            ("POST", r"/lfs-verify/(?P<oid>[0-9a-f]{64})", self._lfs_verify),
        ]
        for route_method, pattern, handler in routes:
            match = re.fullmatch(pattern, path)
            if match and method == route_method:
                needs_auth = path.startswith("/api/") or path.endswith("/objects/batch")
                if (
                    needs_auth
                    and self.token is not None
                    and headers.get("authorization") != f"Bearer {self.token}"
                ):
                    return 401, {"error": "Invalid credentials in Authorization header"}
                params = {k: unquote(v) for k, v in match.groupdict().items() if v is not None}
                with self._lock:
                    return handler(params, headers, body)
        self.unexpected.append(f"{method} {path}")
        return 404, {"error": f"the fake Hub does not serve {method} {path}"}

    def _repo(self, params: dict[str, str]) -> Repo | None:
        return self.repos.get((params.get("type", "models"), params["id"]))

    def _create_repo(self, params: dict[str, str], headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        payload = json.loads(body)
        repo_type = {"dataset": "datasets", "space": "spaces"}.get(payload.get("type"), "models")
        repo_id = f"{payload['organization']}/{payload['name']}"
        prefix = "" if repo_type == "models" else f"{repo_type}/"
        url = f"{self.url}/{prefix}{repo_id}"
        if (repo_type, repo_id) in self.repos:
            return 409, {"error": "You already created this repo", "url": url}
        self.repos[(repo_type, repo_id)] = Repo(repo_type, repo_id, payload.get("visibility"))
        return 200, {"url": url, "name": repo_id, "id": repo_id}

    def _create_branch(self, params: dict[str, str], headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        repo = self._repo(params)
        if repo is None:
            return 404, {"error": "Repository not found"}
        if params["branch"] in repo.branches:
            return 409, {"error": "Reference already exists"}
        start = repo.branches["main"]
        repo.branches[params["branch"]] = Branch(
            dict(start.files), set(start.lfs_paths), list(start.commits), start.head
        )
        return 200, {}

    def _validate_yaml(self, params: dict[str, str], headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        content = json.loads(body)["content"]
        match = re.match(r"---\n(.*?)\n---\n", content, flags=re.DOTALL)
        try:
            if match is not None:
                yaml.safe_load(match.group(1))
        except yaml.YAMLError as exc:
            return 400, {"errors": [{"message": str(exc)}], "warnings": []}
        return 200, {"errors": [], "warnings": []}

    def _branch_or_error(self, params: dict[str, str]) -> Branch | tuple[int, Any]:
        repo = self._repo(params)
        if repo is None:
            return 404, {"error": "Repository not found"}
        branch = repo.branches.get(params.get("rev") or "main")
        if branch is None:
            return 404, {"error": f"Invalid rev id: {params.get('rev')}"}
        return branch

    def _preupload(self, params: dict[str, str], headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        branch = self._branch_or_error(params)
        if isinstance(branch, tuple):
            return branch
        answers = []
        for entry in json.loads(body)["files"]:
            sample = base64.b64decode(entry["sample"])
            binary = b"\0" in sample or entry["size"] > LFS_SIZE_THRESHOLD
            mode = "lfs" if self.lfs_for_binary and binary else "regular"
            oid = None
            existing = branch.files.get(entry["path"])
            if existing is not None:
                lfs = entry["path"] in branch.lfs_paths
                oid = hashlib.sha256(existing).hexdigest() if lfs else git_blob_sha1(existing)
            answers.append({"path": entry["path"], "uploadMode": mode, "shouldIgnore": False, "oid": oid})
        return 200, {"files": answers}

    def _batch(self, params: dict[str, str], headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        if self._repo(params) is None:
            return 404, {"message": "Repository not found"}
        payload = json.loads(body)
        if payload.get("operation") != "upload":
            return 422, {"message": "only uploads are served"}
        objects = []
        for obj in payload["objects"]:
            entry: dict[str, Any] = {"oid": obj["oid"], "size": obj["size"]}
            if obj["oid"] not in self.lfs_objects:  # already stored: no actions, the client skips it
                entry["actions"] = {
                    "upload": {"href": f"{self.url}/lfs-storage/{obj['oid']}"},
                    "verify": {"href": f"{self.url}/lfs-verify/{obj['oid']}"},
                }
            objects.append(entry)
        return 200, {"transfer": "basic", "objects": objects}

    def _lfs_put(self, params: dict[str, str], headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        if hashlib.sha256(body).hexdigest() != params["oid"]:
            return 400, {"error": "content does not match its sha256"}
        self.lfs_objects[params["oid"]] = body
        return 200, {}

    def _lfs_verify(self, params: dict[str, str], headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        payload = json.loads(body)
        stored = self.lfs_objects.get(params["oid"])
        if stored is None or payload.get("oid") != params["oid"] or payload.get("size") != len(stored):
            return 404, {"error": "object not found or wrong size"}
        return 200, {}

    def _commit(self, params: dict[str, str], headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        branch = self._branch_or_error(params)
        if isinstance(branch, tuple):
            return branch
        self.commit_attempts += 1
        if self.commit_attempts in self.fail_commit_attempts:
            return 500, {"error": "simulated failure: commit not applied"}
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            return 400, {"error": "the first NDJSON line must be the commit header"}
        staged: dict[str, tuple[bytes, bool]] = {}
        for line in lines[1:]:
            value = line["value"]
            if line["key"] == "file" and value.get("encoding") == "base64":
                staged[value["path"]] = (base64.b64decode(value["content"]), False)
            elif line["key"] == "lfsFile":
                content = self.lfs_objects.get(value["oid"])
                if content is None or len(content) != value.get("size", len(content)):
                    return 422, {"error": f"LFS object {value['oid']} for {value['path']} was never uploaded"}
                staged[value["path"]] = (content, True)
            else:
                return 400, {"error": f"the fake Hub does not apply {line['key']!r} operations"}
        for path, (content, lfs) in staged.items():  # all or nothing, as a git commit
            branch.files[path] = content
            if lfs:
                branch.lfs_paths.add(path)
            else:
                branch.lfs_paths.discard(path)
        self._commit_counter += 1
        branch.head = hashlib.sha1(f"commit {self._commit_counter}".encode()).hexdigest()
        branch.commits.append({"header": lines[0]["value"], "paths": sorted(staged), "oid": branch.head})
        prefix = "" if params["type"] == "models" else f"{params['type']}/"
        return 200, {
            "success": True,
            "commitOid": branch.head,
            "commitUrl": f"{self.url}/{prefix}{params['id']}/commit/{branch.head}",
        }

    def _repo_info(self, params: dict[str, str], headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        branch = self._branch_or_error(params)
        if isinstance(branch, tuple):
            return branch
        repo = self._repo(params)
        assert repo is not None
        return 200, {
            "id": repo.repo_id,
            "sha": branch.head,
            "private": repo.visibility == "private",
            "siblings": [{"rfilename": path} for path in sorted(branch.files)],
        }


def _handler_for(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as httpx expects; every response sets Content-Length
        timeout = 10  # an idle keep-alive connection never holds a handler thread for long

        def setup(self) -> None:
            super().setup()
            # Replies go out as headers then body: without this, Nagle's algorithm holds the body until
            # the client's delayed ACK (~40 ms a request), which would dominate the tests' run time.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def _serve(self) -> None:
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                body = self._read_body(headers)
            except ValueError as exc:
                self._reply(413, {"error": str(exc)})
                self.close_connection = True
                return
            status, payload = hub.handle(self.command, urlsplit(self.path).path, headers, body)
            self._reply(status, payload)

        def _read_body(self, headers: dict[str, str]) -> bytes:
            if headers.get("transfer-encoding", "").lower() == "chunked":
                chunks, total = [], 0
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass  # trailers
                        return b"".join(chunks)
                    total += size
                    if total > MAX_BODY_BYTES:
                        raise ValueError("request body too large for the fake Hub")
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            length = int(headers.get("content-length", "0"))
            if length > MAX_BODY_BYTES:
                raise ValueError("request body too large for the fake Hub")
            return self.rfile.read(length)

        def _reply(self, status: int, payload: Any) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = _serve

        def log_message(self, format: str, *args: Any) -> None:
            """Silent: the tests inspect `hub.requests` instead of a log on stderr."""

    return Handler
