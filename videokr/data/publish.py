"""Publishing a built dataset folder (`videokr build`) to a Hub dataset repository.

What goes up is exactly what `load_dataset` needs, an allow-list: the card (`README.md`),
`ATTRIBUTION.md`, `croissant.json`, each split's `metadata.parquet` and the clips that parquet names,
or, for a sharded split (`videokr.data.shards`), its `shard-*.zip` files, each checked to hold every
clip its own rows name.
Nothing else in the folder is sent: the `.videokr/` build manifests stay local (they hold machine
paths and resume state, useless to a Hub user), as do `*.partial` files an interrupted build may leave,
and any stray file (a core dump, a `.env`, an unreferenced clip) is listed as skipped. Symbolic links
are never followed: a folder holding one is refused, since a link could send a file from anywhere on
the machine. A clip the parquet names but the folder lacks is an error before anything is sent.

How the upload runs (huggingface_hub 1.33):

* With `hf_xet` installed (the default on x86_64 and arm64), `HfApi.upload_folder` streams the folder:
  it asks the Hub ("preupload"), 256 files at a time, how each file must travel, uploads the binary
  and large ones through Xet storage while it keeps scanning, and commits in adaptive batches (250
  files first, then between 20 and 1,000), retrying a failed batch in smaller ones. A re-run resumes:
  files the Hub already holds with the same content are dropped after the preupload check and Xet
  deduplicates anything half-sent. (`upload_large_folder` is deprecated in this release in favour of
  this, and it would write its resume state into the dataset folder.)
* Without Xet (not installed, or `HF_HUB_DISABLE_XET=1`), `upload_folder` makes ONE commit of the
  whole folder: past the per-commit limits `create_commit` documents (25k LFS files) for a large
  dataset, and all progress is lost if it fails. We then commit in batches of `COMMIT_BATCH_FILES`
  with `create_commit` ourselves; each batch first sends its binary files through the git-LFS batch
  API, and unchanged files are skipped the same way, so a re-run after a crash sends only what is
  missing.

The token: `token=` if given, else what huggingface_hub finds itself (`HF_TOKEN`, then the login saved
by `hf auth login`). It is handed to `HfApi`, which sends it only as the `Authorization` header of
requests to the endpoint; this module never prints, logs, stores or puts it in an error message or
in `PublishResult`. A dry run reads no token and sends nothing.
"""

from __future__ import annotations

import importlib.util
import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import httpx
import pyarrow.parquet as pq
import yaml
from huggingface_hub import CommitInfo, CommitOperationAdd, HfApi, constants, get_token
from huggingface_hub.errors import HfHubHTTPError
from huggingface_hub.utils import (
    DEFAULT_IGNORE_PATTERNS,
    HFValidationError,
    filter_repo_objects,
    validate_repo_id,
)

from videokr import __version__
from videokr.data.shards import SHARD_GLOB, shard_problem
from videokr.errors import VideoKRError

# fnmatch-style, as huggingface_hub applies them to the path relative to the folder; `*` also matches
# `/`, so `.videokr/*` covers the whole manifest tree. What a build leaves beside the dataset: not
# uploaded, and not reported as stray either.
IGNORE_PATTERNS: tuple[str, ...] = (".videokr/*", "*.partial", "__pycache__/*", "*/__pycache__/*")
#: The files at the root of a built folder that belong to the dataset (README.md is required).
ROOT_FILES = ("README.md", "ATTRIBUTION.md", "croissant.json")
METADATA = "metadata.parquet"

# Hub repository limits (https://huggingface.co/docs/hub/repositories-recommendations): checked
# before anything is sent, because a repo past them is slow or impossible to use and clean up.
MAX_FILES_PER_FOLDER = 10_000  # files directly inside one folder must stay below this
MAX_FILES_PER_REPO = 100_000  # files in the whole repo must stay below this
MAX_FILE_BYTES = 50 * 1000**3  # the Hub refuses single files above 50 GB

COMMIT_BATCH_FILES = 500  # files per commit when we batch ourselves (no Xet): well inside commit limits

BUILD_HINT = "build it first: videokr build {sft,rl,eval} --source RELEASE_DIR --out DIR"


class PublishError(VideoKRError):
    """The folder cannot be published as asked; the message says what to fix."""


@dataclass(frozen=True)
class PlannedFile:
    path: str  # path in the repo, '/'-separated
    size: int

    @property
    def top_level(self) -> str:
        head, sep, _ = self.path.partition("/")
        return head if sep else "(root)"

    @property
    def parent(self) -> str:
        return self.path.rpartition("/")[0]


@dataclass
class UploadPlan:
    """The files a publish sends (sorted, as `upload_folder` walks them) and those it leaves out.

    `ignored` names every file not sent; `stray` are those of them a build does not leave (not the
    `.videokr/` manifest, `*.partial` or `__pycache__`), with their sizes, reported as skipped.
    """

    folder: Path
    files: list[PlannedFile]
    ignored: list[str] = field(default_factory=list)
    stray: list[PlannedFile] = field(default_factory=list)

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def by_top_level(self) -> list[tuple[str, int, int]]:
        """(top-level folder or "(root)", file count, bytes), root first then alphabetical."""
        counts: Counter[str] = Counter()
        sizes: Counter[str] = Counter()
        for f in self.files:
            counts[f.top_level] += 1
            sizes[f.top_level] += f.size
        names = sorted(counts, key=lambda name: (name != "(root)", name))
        return [(name, counts[name], sizes[name]) for name in names]

    def table(self) -> str:
        """Files and bytes per top-level folder, then what is skipped (for a real upload's header)."""
        rows = [(name, f"{count:,}", human_size(size)) for name, count, size in self.by_top_level()]
        rows.append(("total", f"{len(self.files):,}", human_size(self.total_bytes)))
        width = max(len("folder"), *(len(r[0]) for r in rows))
        lines = [f"  {'folder':<{width}}  {'files':>9}  {'size':>10}"]
        lines += [f"  {name:<{width}}  {count:>9}  {size:>10}" for name, count, size in rows]
        return "\n".join(lines + self._left_out())

    def listing(self) -> str:
        """Every file that would be sent, with its size, then the total and what is skipped (dry run)."""
        width = max((len(f.path) for f in self.files), default=0)
        lines = [f"  {f.path:<{width}}  {human_size(f.size):>10}" for f in self.files]
        lines.append(f"  total: {len(self.files):,} files, {human_size(self.total_bytes)}")
        return "\n".join(lines + self._left_out())

    def _left_out(self) -> list[str]:
        lines = []
        if self.stray:
            lines.append(f"  skipped, not part of the dataset: {len(self.stray):,} files")
            lines += [f"    {f.path}  ({human_size(f.size)})" for f in self.stray]
        local = [path for path in self.ignored if path not in {f.path for f in self.stray}]
        if local:
            shown = ", ".join(local[:5]) + (", ..." if len(local) > 5 else "")
            lines.append(f"  not uploaded: {len(local):,} local-only build files ({shown})")
        return lines


@dataclass(frozen=True)
class PublishResult:
    repo_id: str
    repo_url: str
    plan: UploadPlan
    dry_run: bool
    revision: str | None = None
    commit_url: str | None = None  # the last commit made; None for a dry run
    commit_oid: str | None = None


def human_size(size: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


def check_built_repo(folder: Path) -> None:
    """Refuse a folder that is not a `videokr build` output, naming everything that is missing.

    Publishing a half-built or wrong folder would create a Hub repo that does not load; a clear error
    before any request is cheaper than cleaning that up.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise PublishError(f"{folder}: not a folder; {BUILD_HINT}")
    problems = []
    readme = folder / "README.md"
    if not readme.is_file():
        problems.append("README.md (the dataset card) is missing")
    else:
        front_matter = _front_matter(readme.read_text(encoding="utf-8"))
        if front_matter is None:
            problems.append("README.md has no YAML front matter (a '---' block at the top with the configs)")
        else:
            try:
                loaded = yaml.safe_load(front_matter)
            except yaml.YAMLError as exc:
                problems.append(f"README.md front matter is not valid YAML ({exc})")
            else:
                if not isinstance(loaded, dict):
                    problems.append("README.md front matter is not a YAML mapping")
    if not any(
        path.is_file()
        for pattern in ("*/metadata.parquet", f"*/{SHARD_GLOB}")
        for path in folder.glob(pattern)
    ):
        problems.append("no <split>/metadata.parquet or <split>/shard-*.zip (e.g. train/metadata.parquet)")
    if problems:
        raise PublishError(f"{folder} is not a built dataset repo: {'; '.join(problems)}. {BUILD_HINT}")


def _front_matter(text: str) -> str | None:
    lines = text.lstrip("\ufeff").splitlines()
    if not lines or lines[0].strip() != "---":
        return None
    for index, line in enumerate(lines[1:], start=1):
        if line.strip() == "---":
            return "\n".join(lines[1:index])
    return None


def plan_upload(folder: Path) -> UploadPlan:
    """The allow-list of files to send: root card files, each split's parquet and the clips it names.

    The folder is walked without following symbolic links, and any link in it is refused; every other
    file is left out (build state silently, anything else listed as stray). A clip the parquet names
    that is not a regular file in the folder is an error.
    """
    folder = Path(folder).expanduser().resolve()
    every = _walk_regular_files(folder)
    needed = [name for name in ROOT_FILES if name in every]
    problems: list[str] = []
    for split in sorted(p for p in folder.iterdir() if p.is_dir() and any(p.glob(SHARD_GLOB))):
        if (split / METADATA).is_file():
            problems.append(f"{split.name}/ holds both {METADATA} and shards; rebuild the folder")
        for shard in sorted(split.glob(SHARD_GLOB)):
            rel = f"{split.name}/{shard.name}"
            if rel in every:
                problem = shard_problem(shard)
                if problem is not None:
                    problems.append(f"{rel}: {problem}")
                needed.append(rel)
    for split in sorted(p for p in folder.iterdir() if p.is_dir() and (p / METADATA).is_file()):
        needed.append(f"{split.name}/{METADATA}")
        for clip in _referenced_clips(split, problems):
            rel = f"{split.name}/{clip}"
            if rel in every:
                needed.append(rel)
            else:
                problems.append(f"{rel} (named in {split.name}/{METADATA}) is missing")
    if problems:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise PublishError(f"{folder}: {shown}. Rebuild the folder: {BUILD_HINT}")
    keep = set(needed)
    files = [PlannedFile(rel, every[rel]) for rel in sorted(keep)]
    ignored = sorted(rel for rel in every if rel not in keep)
    # filter_repo_objects keeps what matches no pattern: here, what is not build state
    not_build_state = set(filter_repo_objects(ignored, ignore_patterns=list(IGNORE_PATTERNS)))
    stray = [PlannedFile(rel, every[rel]) for rel in ignored if rel in not_build_state]
    return UploadPlan(folder, files, ignored, stray)


def _walk_regular_files(folder: Path) -> dict[str, int]:
    """relative path → size of every regular file under `folder`; refuses any symbolic link in it."""
    found: dict[str, int] = {}
    for directory, subdirs, names in os.walk(folder, followlinks=False):
        for name in sorted([*subdirs, *names]):
            path = Path(directory, name)
            rel = path.relative_to(folder).as_posix()
            if path.is_symlink():
                raise PublishError(
                    f"{folder}: {rel} is a symbolic link (to {os.readlink(path)}); publish never follows "
                    "links, which could send files from outside the folder. Replace it with the file itself "
                    "or remove it"
                )
        for name in names:
            path = Path(directory, name)
            if path.is_file():  # not a FIFO, socket or device: upload_folder would not send those either
                found[path.relative_to(folder).as_posix()] = path.stat().st_size
    return found


def _referenced_clips(split: Path, problems: list[str]) -> list[str]:
    """The clip paths (relative to the split folder) a split's metadata.parquet names, checked."""
    try:
        table = pq.read_table(split / METADATA, columns=["file_name"])
    except Exception as exc:  # pyarrow raises several types for a missing column or a damaged file
        problems.append(f"{split.name}/{METADATA} has no readable file_name column ({exc})")
        return []
    clips = []
    for value in sorted(set(table.column("file_name").to_pylist()), key=str):
        pure = PurePosixPath(str(value or ""))
        if not value or pure.is_absolute() or ".." in pure.parts or "\\" in str(value):
            problems.append(f"{split.name}/{METADATA} names {value!r}, not a path inside {split.name}/")
            continue
        clips.append(pure.as_posix())
    return clips


def ignore_patterns_for(plan: UploadPlan) -> list[str]:
    """`upload_folder` ignore patterns that leave exactly `plan.files`: the build-state patterns, then
    each skipped file (or its top-most folder holding nothing to send), escaped for fnmatch."""
    needed_dirs = {
        str(PurePosixPath(f.path).parents[i]) for f in plan.files for i in range(f.path.count("/"))
    }
    patterns = list(IGNORE_PATTERNS)
    seen: set[str] = set()
    for rel in plan.ignored:
        parts = rel.split("/")
        pattern = _fnmatch_escape(rel)
        for depth in range(1, len(parts)):
            directory = "/".join(parts[:depth])
            if directory not in needed_dirs:
                pattern = _fnmatch_escape(directory) + "/*"
                break
        if pattern not in seen:
            seen.add(pattern)
            patterns.append(pattern)
    return patterns


def _fnmatch_escape(path: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in path)


def _check_walk_agrees(plan: UploadPlan, patterns: list[str]) -> None:
    """What `upload_folder` will send, found its own way (glob, then the patterns), must be the plan."""
    walked = [p.relative_to(plan.folder).as_posix() for p in plan.folder.glob("**/*") if p.is_file()]
    sent = set(filter_repo_objects(walked, ignore_patterns=[*patterns, *DEFAULT_IGNORE_PATTERNS]))
    if sent != {f.path for f in plan.files}:
        extra = sorted(sent - {f.path for f in plan.files})[:3]
        lost = sorted({f.path for f in plan.files} - sent)[:3]
        raise PublishError(
            f"{plan.folder} changed while publishing (would also send {extra}, would not send {lost}); "
            "re-run once nothing else writes to it"
        )


def check_hub_limits(
    plan: UploadPlan,
    *,
    max_per_folder: int = MAX_FILES_PER_FOLDER,
    max_per_repo: int = MAX_FILES_PER_REPO,
    max_file_bytes: int = MAX_FILE_BYTES,
) -> None:
    """Refuse a plan the Hub would choke on, before uploading anything.

    Counts only the files this upload sends: files already in the repo but not in the folder are not
    known without a request, and the Hub adds a `.gitattributes` at the root.
    """
    problems = []
    if len(plan.files) >= max_per_repo:
        problems.append(
            f"{len(plan.files):,} files in total (the Hub allows fewer than {max_per_repo:,} per repo)"
        )
    per_folder = Counter(f.parent for f in plan.files)
    for parent, count in sorted(per_folder.items()):
        if count >= max_per_folder:
            problems.append(
                f"{count:,} files directly in {parent or 'the repo root'}/ "
                f"(the Hub allows fewer than {max_per_folder:,} per folder)"
            )
    problems += [
        f"{f.path} is {human_size(f.size)} (the Hub refuses files over {human_size(max_file_bytes)})"
        for f in plan.files
        if f.size > max_file_bytes
    ]
    if problems:
        raise PublishError(
            f"{plan.folder} exceeds Hub repository limits: {'; '.join(problems)}. Rebuild with smaller "
            "video shards or split the dataset across repos."
        )


def prepare(folder: Path, repo_id: str) -> UploadPlan:
    """Every check that needs no network: repo id, built-folder layout, Hub limits; returns the plan."""
    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        raise PublishError(f"--repo-id {repo_id!r} is not a valid repo id: {exc}") from exc
    if "/" not in repo_id:
        raise PublishError(f"--repo-id {repo_id!r}: give ORG/NAME (or USER/NAME) for the dataset repo")
    check_built_repo(folder)
    plan = plan_upload(folder)
    check_hub_limits(
        plan,
        max_per_folder=MAX_FILES_PER_FOLDER,
        max_per_repo=MAX_FILES_PER_REPO,
        max_file_bytes=MAX_FILE_BYTES,
    )
    return plan


def publish_folder(
    folder: Path,
    repo_id: str,
    *,
    private: bool = False,
    dry_run: bool = False,
    token: str | None = None,
    endpoint: str | None = None,
    revision: str | None = None,
) -> PublishResult:
    """Check `folder`, plan the upload and, unless `dry_run`, push it to the dataset repo `repo_id`.

    The repo is created if needed (`exist_ok`); `private` only applies to a repo created now, and when
    False the namespace's default visibility is kept rather than forcing "public" (an organisation that
    defaults to private does not get a public dataset by accident). `revision` names a branch, created
    from `main` if missing. Re-running after an interruption sends only what the Hub does not already
    hold. The token is read as described in the module docstring and never shown; `dry_run` reads no
    token and makes no request.
    """
    plan = prepare(folder, repo_id)
    return upload_plan(
        plan, repo_id, private=private, dry_run=dry_run, token=token, endpoint=endpoint, revision=revision
    )


def upload_plan(
    plan: UploadPlan,
    repo_id: str,
    *,
    private: bool = False,
    dry_run: bool = False,
    token: str | None = None,
    endpoint: str | None = None,
    revision: str | None = None,
) -> PublishResult:
    """The network half of `publish_folder`, for a plan `prepare` already checked."""
    api = HfApi(endpoint=endpoint, token=token, library_name="videokr", library_version=__version__)
    if dry_run:
        return PublishResult(repo_id, f"{api.endpoint}/datasets/{repo_id}", plan, True, revision)

    if constants.is_offline_mode():
        raise PublishError("HF_HUB_OFFLINE is set: unset it to publish (or use --dry-run to see the plan)")
    if token is None and get_token() is None:
        raise PublishError(
            "no Hugging Face token found: set HF_TOKEN or run `hf auth login` (write access needed)"
        )

    message = f"Upload {plan.folder.name} with videokr {__version__}"
    try:
        repo_url = api.create_repo(repo_id, repo_type="dataset", private=private or None, exist_ok=True)
        if revision is not None and revision != constants.DEFAULT_REVISION:
            api.create_branch(repo_id, branch=revision, repo_type="dataset", exist_ok=True)
        if _xet_enabled():
            patterns = ignore_patterns_for(plan)
            _check_walk_agrees(plan, patterns)
            commit = api.upload_folder(
                repo_id=repo_id,
                repo_type="dataset",
                folder_path=plan.folder,
                ignore_patterns=patterns,  # our own list: upload_folder appends to it
                commit_message=message,
                revision=revision,
            )
        else:
            commit = _commit_in_batches(api, plan, repo_id, message=message, revision=revision)
    except HfHubHTTPError as exc:
        # The Hub's message and request id, never the request headers: the token stays out of it.
        raise PublishError(f"the Hub refused the upload to {repo_id}: {exc}") from exc
    except httpx.HTTPError as exc:
        # No connection, a timeout, a dropped stream: the URL and the reason, never the headers.
        raise PublishError(
            f"could not reach the Hub at {api.endpoint} ({type(exc).__name__}: {exc or 'no detail'}); "
            "check the network (and HF_ENDPOINT) and re-run: files already sent are not sent again"
        ) from exc
    except ValueError as exc:
        if not isinstance(exc.__cause__, HfHubHTTPError):
            raise
        # e.g. the Hub's README metadata validation, which huggingface_hub re-raises as ValueError
        raise PublishError(f"the Hub refused the upload to {repo_id}: {exc}") from exc
    return PublishResult(repo_id, str(repo_url), plan, False, revision, commit.commit_url, commit.oid)


def _xet_enabled() -> bool:
    """Whether `upload_folder` will take its streamed multi-commit Xet path (see the module docstring).

    Asks huggingface_hub's own (private) check so both sides agree; the fallback mirrors it.
    """
    try:
        from huggingface_hub.utils._runtime import is_xet_available
    except ImportError:
        return not constants.HF_HUB_DISABLE_XET and importlib.util.find_spec("hf_xet") is not None
    return is_xet_available()


def _commit_in_batches(
    api: HfApi, plan: UploadPlan, repo_id: str, *, message: str, revision: str | None
) -> CommitInfo:
    """One `create_commit` per `COMMIT_BATCH_FILES` files, for clients without Xet.

    Each commit is small enough for the Hub to accept and, once made, survives a crash: a re-run's
    preupload check reports those files as unchanged and `create_commit` drops them, so only what is
    missing goes up (a batch with nothing new makes no commit and returns the current head).
    """
    batches = list(_chunks(plan.files, COMMIT_BATCH_FILES))
    commit = None
    for number, batch in enumerate(batches, start=1):
        operations = [CommitOperationAdd(f.path, plan.folder / f.path) for f in batch]
        commit = api.create_commit(
            repo_id,
            operations,
            commit_message=message if len(batches) == 1 else f"{message} (part {number}/{len(batches)})",
            repo_type="dataset",
            revision=revision,
        )
    assert commit is not None  # check_built_repo guarantees at least README.md and one metadata.parquet
    return commit


def _chunks(items: list[PlannedFile], size: int) -> Iterable[list[PlannedFile]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def publish_command(folder: Path, repo_id: str, private: bool = False, dry_run: bool = False) -> int:
    """`videokr publish`: print the plan, upload unless `dry_run`, print where it went. Returns 0.

    A dry run lists every file with its size; an upload prints counts and sizes per folder before it
    starts, since a large dataset takes hours to send. Both list the skipped stray files. Errors
    are `VideoKRError`s, which the CLI prints as one line and turns into exit status 2.
    """
    plan = prepare(folder, repo_id)
    visibility = "private" if private else "namespace default visibility"
    print(f"videokr publish: {plan.folder} -> dataset {repo_id} ({visibility})")
    print(plan.listing() if dry_run else plan.table())
    result = upload_plan(plan, repo_id, private=private, dry_run=dry_run)
    if dry_run:
        print(f"dry run: nothing sent. Would upload to {result.repo_url}")
        return 0
    print(f"uploaded to {result.repo_url}")
    print(f"commit: {result.commit_url}")
    return 0
