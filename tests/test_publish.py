"""`videokr publish`: the plan, the refusals, and the real huggingface_hub upload against a loopback fake Hub.

The upload tests run the unmodified client code (`HfApi.create_repo`, `upload_folder` /
`create_commit`, LFS transfer) against `tests/fake_hub.py` on 127.0.0.1, with a socket guard that fails
any connection elsewhere. The Xet storage protocol is the one part not served (see `fake_hub`): the
LFS tests turn Xet off on the client, the streamed-pipeline test keeps it on with a fake that makes
every file a regular (in-commit) file.
"""

from __future__ import annotations

import hashlib
import random
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fake_hub import FakeHub
from huggingface_hub import constants
from huggingface_hub.utils import logging as hf_logging

from videokr import cli
from videokr.data import publish
from videokr.data.publish import (
    PlannedFile,
    PublishError,
    UploadPlan,
    check_hub_limits,
    publish_command,
    publish_folder,
)
from videokr.errors import VideoKRError

TOKEN = "hf_TEST_token_do_not_print_9f2c1e"
REPO_ID = "videokr-test/VideoKR-Eval"

README = """---
license: apache-2.0
pretty_name: VideoKR-Eval (test)
configs:
- config_name: default
  data_files:
  - split: test
    path: test/**
---

# VideoKR-Eval (test card)
"""

# What a build leaves beside the repo content: must never be uploaded.
LOCAL_ONLY = {
    ".videokr/build.json": b'{"rows": 3}',
    ".videokr/clips/state.json": b"{}",
    "test/metadata.parquet.partial": b"half-written",
    "test/videos/001/clip_003.mp4.partial": b"\0partial clip",
    "__pycache__/card.cpython-311.pyc": b"\0pyc",
    "test/__pycache__/x.cpython-311.pyc": b"\0pyc",
}


def fake_mp4(seed: int, size: int) -> bytes:
    """Binary bytes shaped like an mp4 header: NUL bytes make the Hub treat the file as binary (LFS)."""
    return b"\0\0\0\x18ftypmp42" + random.Random(seed).randbytes(size)


def write_built_repo(root: Path, extra_clips: int = 0) -> dict[str, bytes]:
    """A folder laid out as `videokr build` writes it; returns the files that must reach the Hub."""
    expected: dict[str, bytes] = {
        "README.md": README.encode(),
        "ATTRIBUTION.md": b"# Attribution\n\nclip_000: CC-BY-4.0, Someone\n",
        "croissant.json": b'{"@type": "sc:Dataset", "name": "VideoKR-Eval"}\n',
        "test/videos/000/clip_000.mp4": fake_mp4(0, 200_000),
        "test/videos/000/clip_001.mp4": fake_mp4(1, 3_000),
        "test/videos/001/clip_002.mp4": fake_mp4(2, 40_000),
    }
    expected.update({f"test/videos/002/extra_{i:03d}.mp4": fake_mp4(100 + i, 64) for i in range(extra_clips)})
    for rel, content in {**expected, **LOCAL_ONLY}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(content)
    clips = sorted(p.removeprefix("test/") for p in expected if p.endswith(".mp4"))
    pq.write_table(
        pa.table({"file_name": clips, "id": [f"q{i}" for i in range(len(clips))]}),
        root / "test/metadata.parquet",
    )
    expected["test/metadata.parquet"] = (root / "test/metadata.parquet").read_bytes()
    return expected


@pytest.fixture
def built(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    root = tmp_path / "VideoKR-Eval"
    return root, write_built_repo(root)


@pytest.fixture
def no_saved_token(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No HF_TOKEN and no saved login, whatever the machine running the tests has."""
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-login" / "token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "no-login" / "stored_tokens"))


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Any socket connection fails the test (and is recorded)."""
    attempts: list[object] = []

    def refuse(self: socket.socket, address: object) -> None:
        attempts.append(address)
        raise AssertionError(f"unexpected network connection to {address!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    return attempts


@pytest.fixture
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Python-level connections may only reach 127.0.0.1; anything else fails the test."""
    attempts: list[object] = []
    real_connect = socket.socket.connect

    def guarded(self: socket.socket, address: object) -> None:
        attempts.append(address)
        if self.family != socket.AF_INET or not isinstance(address, tuple) or address[0] != "127.0.0.1":
            raise AssertionError(f"connection outside loopback: {address!r}")
        real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    return attempts


@pytest.fixture
def fake_hub_factory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, no_saved_token: None, loopback_only: list[object]
) -> Iterator[type[FakeHub]]:
    """Configure huggingface_hub for a loopback fake Hub, and shut every started fake down afterwards.

    The test session runs with HF_HUB_OFFLINE=1 (conftest), which makes the client refuse all requests:
    lifted here only, together with telemetry (its user-agent agent-detection would fetch a registry
    from the default endpoint). The default endpoint itself is pointed at the fake so that a request
    that ignored our `endpoint=` would land in `hub.unexpected` rather than leave the machine.
    """
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
    monkeypatch.setenv("HF_XET_CACHE", str(tmp_path / "xet-cache"))  # keep xet session logs out of $HOME
    started: list[FakeHub] = []

    class StartedFakeHub(FakeHub):
        def __init__(self, **kwargs: object) -> None:
            super().__init__(**kwargs)  # type: ignore[arg-type]
            self.__enter__()
            started.append(self)
            monkeypatch.setattr(constants, "ENDPOINT", self.url)

    yield StartedFakeHub
    for hub in started:
        hub.close()


def without_xet(monkeypatch: pytest.MonkeyPatch) -> None:
    """Send LFS content through the git-LFS batch API, which the fake serves, instead of Xet (not served)."""
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)


def assert_token_never_shown(token: str, capfd: pytest.CaptureFixture[str], *roots: Path) -> None:
    out, err = capfd.readouterr()
    assert token not in out and token not in err
    for root in roots:
        for path in root.rglob("*"):
            assert not path.is_file() or token.encode() not in path.read_bytes(), path


# ---------------------------------------------------------------------------------------------- plan


def test_dry_run_lists_exactly_the_files_minus_ignored_ones_and_sends_nothing(
    built: tuple[Path, dict[str, bytes]],
    no_saved_token: None,
    no_network: list[object],
    capsys: pytest.CaptureFixture[str],
) -> None:
    root, expected = built
    result = publish_folder(root, REPO_ID, dry_run=True)

    assert result.dry_run and result.commit_url is None
    assert [f.path for f in result.plan.files] == sorted(expected)
    assert {f.path: f.size for f in result.plan.files} == {p: len(c) for p, c in expected.items()}
    assert result.plan.total_bytes == sum(len(c) for c in expected.values())
    assert sorted(result.plan.ignored) == sorted(LOCAL_ONLY)
    assert result.repo_url == f"{constants.ENDPOINT}/datasets/{REPO_ID}"

    assert publish_command(root, REPO_ID, private=True, dry_run=True) == 0
    out = capsys.readouterr().out
    assert f"dataset {REPO_ID} (private)" in out
    # Every file it would send, one line each with its size; no per-folder sums.
    for path, content in expected.items():
        size = re.escape(publish.human_size(len(content)))
        assert re.search(rf"^  {re.escape(path)}\s+{size}$", out, re.MULTILINE), path
    total = publish.human_size(result.plan.total_bytes)
    assert re.search(rf"^  total: 7 files, {re.escape(total)}$", out, re.MULTILINE)
    assert f"not uploaded: {len(LOCAL_ONLY)} local-only build files" in out
    assert "skipped" not in out  # nothing stray in a clean build
    assert not any(re.search(rf"^  {re.escape(path)}\s", out, re.MULTILINE) for path in LOCAL_ONLY)
    assert "dry run: nothing sent" in out
    assert no_network == []


def test_only_the_files_the_dataset_needs_are_planned_and_strays_are_listed_as_skipped(
    built: tuple[Path, dict[str, bytes]],
    no_network: list[object],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An allow-list: the card files, each split's parquet and the clips it names. A core dump, a .env,
    notes and a clip no row uses stay local and are named, with their sizes, as skipped."""
    root, expected = built
    strays = {
        ".env": b"HF_TOKEN=hf_do_not_send\n",
        "core": b"\0" * 5000,
        "notes/todo.txt": b"check licences\n",
        "test/videos/000/unused.mp4": fake_mp4(7, 100),
        "test/scratch.json": b"{}",
    }
    for rel, content in strays.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(content)

    plan = publish_folder(root, REPO_ID, dry_run=True).plan
    assert [f.path for f in plan.files] == sorted(expected)
    assert {f.path: f.size for f in plan.stray} == {rel: len(c) for rel, c in strays.items()}
    assert sorted(plan.ignored) == sorted([*strays, *LOCAL_ONLY])

    publish_command(root, REPO_ID, dry_run=True)
    out = capsys.readouterr().out
    assert f"skipped, not part of the dataset: {len(strays)} files" in out
    for rel, content in strays.items():
        assert f"    {rel}  ({publish.human_size(len(content))})" in out
    assert no_network == []


def test_the_ignore_patterns_leave_exactly_the_plan_for_upload_folder(
    built: tuple[Path, dict[str, bytes]],
) -> None:
    """The Xet path hands the folder to upload_folder, which walks it itself: the patterns must leave
    exactly the planned files, names with fnmatch characters included."""
    root, expected = built
    for rel in ["odd[1]/x.bin", "test/videos/000/a*b?.mp4", "test/videos/000/[x].mp4", ".env"]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"stray")
    plan = publish.plan_upload(root)
    patterns = publish.ignore_patterns_for(plan)
    assert "odd[[]1]/*" in patterns  # a folder with nothing to send is ignored as a whole
    publish._check_walk_agrees(plan, patterns)  # raises if upload_folder would send anything else
    assert [f.path for f in plan.files] == sorted(expected)


@pytest.mark.parametrize(
    "link",
    ["test/videos/000/clip_001.mp4", "test/videos/002", "secret.txt"],
    ids=["a-needed-clip", "a-folder", "a-stray-file"],
)
def test_a_symbolic_link_in_the_folder_is_refused_and_never_followed(
    built: tuple[Path, dict[str, bytes]], tmp_path: Path, no_network: list[object], link: str
) -> None:
    root, _ = built
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "id_rsa").write_bytes(b"PRIVATE KEY")
    target = root / link
    if target.exists():
        target.unlink()
    target.parent.mkdir(parents=True, exist_ok=True)
    target.symlink_to(outside if link == "test/videos/002" else outside / "id_rsa")

    with pytest.raises(PublishError, match=rf"{re.escape(link)} is a symbolic link .*never follows links"):
        publish_folder(root, REPO_ID, dry_run=True)
    assert no_network == []


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("missing_clip", r"test/videos/000/clip_001\.mp4 \(named in test/metadata\.parquet\) is missing"),
        ("escaping_path", r"names '\.\./outside\.mp4', not a path inside test/"),
        ("no_file_name", r"test/metadata\.parquet has no readable file_name column"),
    ],
)
def test_a_parquet_naming_clips_the_folder_cannot_supply_is_refused(
    built: tuple[Path, dict[str, bytes]], no_network: list[object], damage: str, message: str
) -> None:
    root, _ = built
    if damage == "missing_clip":
        (root / "test/videos/000/clip_001.mp4").unlink()
    elif damage == "escaping_path":
        pq.write_table(pa.table({"file_name": ["../outside.mp4"]}), root / "test/metadata.parquet")
    else:
        pq.write_table(pa.table({"id": ["q0"]}), root / "test/metadata.parquet")
    with pytest.raises(PublishError, match=message):
        publish_folder(root, REPO_ID, dry_run=True)
    assert no_network == []


@pytest.mark.parametrize(
    ("damage", "expected_message"),
    [
        ("no_folder", "not a folder"),
        ("no_readme", "README.md (the dataset card) is missing"),
        ("no_front_matter", "README.md has no YAML front matter"),
        ("bad_yaml", "README.md front matter is not valid YAML"),
        ("no_metadata", "no <split>/metadata.parquet"),
    ],
)
def test_a_folder_that_is_not_a_built_repo_is_refused_with_what_is_missing(
    built: tuple[Path, dict[str, bytes]], no_network: list[object], damage: str, expected_message: str
) -> None:
    root, _ = built
    target = root
    if damage == "no_folder":
        target = root.parent / "does-not-exist"
    elif damage == "no_readme":
        (root / "README.md").unlink()
    elif damage == "no_front_matter":
        (root / "README.md").write_text("# A card without metadata\n")
    elif damage == "bad_yaml":
        (root / "README.md").write_text("---\nconfigs: [unclosed\n---\n")
    elif damage == "no_metadata":
        (root / "test/metadata.parquet").unlink()

    with pytest.raises(PublishError) as caught:
        publish_folder(target, REPO_ID, token=TOKEN)  # not a dry run: refused before any request
    assert expected_message in str(caught.value)
    assert "videokr build" in str(caught.value)  # says how to make a proper one
    assert isinstance(caught.value, VideoKRError)
    assert no_network == []


def test_the_cli_reports_a_bad_folder_in_one_line_with_status_2(
    tmp_path: Path, no_network: list[object], capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "README.md").write_text("no front matter\n")
    status = cli.main(["publish", str(tmp_path), "--repo-id", REPO_ID, "--dry-run"])
    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith("videokr publish: error: ")
    assert "README.md has no YAML front matter" in err and "no <split>/metadata.parquet" in err


@pytest.mark.parametrize("repo_id", ["no-namespace", "a/b/c", "org/bad name"])
def test_an_invalid_repo_id_is_refused(built: tuple[Path, dict[str, bytes]], repo_id: str) -> None:
    with pytest.raises(PublishError, match="repo-id"):
        publish_folder(built[0], repo_id, dry_run=True)


# ---------------------------------------------------------------------------------------------- limits


def synthetic_plan(counts: dict[str, int]) -> UploadPlan:
    files = [PlannedFile(f"{folder}/f{i}.mp4", 1) for folder, n in counts.items() for i in range(n)]
    return UploadPlan(Path("built"), files)


def test_hub_file_count_limits_are_enforced_at_the_documented_bounds() -> None:
    check_hub_limits(synthetic_plan({"test/videos/000": 9_999}))
    with pytest.raises(PublishError, match=r"10,000 files directly in test/videos/000/"):
        check_hub_limits(synthetic_plan({"test/videos/000": 10_000}))

    just_under = {f"test/videos/{i:03d}": 9_999 for i in range(10)}
    just_under["test/videos/010"] = 9  # 99,999 files
    check_hub_limits(synthetic_plan(just_under))
    just_under["test/videos/010"] = 10
    with pytest.raises(PublishError, match=r"100,000 files in total"):
        check_hub_limits(synthetic_plan(just_under))

    huge = UploadPlan(Path("built"), [PlannedFile("test/videos/000/huge.mp4", 51 * 1000**3)])
    with pytest.raises(PublishError, match=r"huge\.mp4 is 51\.0 GB"):
        check_hub_limits(huge)


def test_a_folder_over_the_limit_is_refused_before_any_request(
    built: tuple[Path, dict[str, bytes]], fake_hub_factory: type[FakeHub], monkeypatch: pytest.MonkeyPatch
) -> None:
    """End to end with the limit lowered to 3 (the real bounds are checked above without 10,000 files)."""
    root, _ = built
    monkeypatch.setattr(publish, "MAX_FILES_PER_FOLDER", 3)
    crowded = root / "test/videos/003"
    crowded.mkdir(parents=True)
    for i in range(3):
        (crowded / f"c{i}.mp4").write_bytes(fake_mp4(i, 10))
    names = pq.read_table(root / "test/metadata.parquet").column("file_name").to_pylist()
    names += [f"videos/003/c{i}.mp4" for i in range(3)]  # rows use them: they are part of the upload
    pq.write_table(pa.table({"file_name": names}), root / "test/metadata.parquet")
    hub = fake_hub_factory(token=TOKEN)

    with pytest.raises(PublishError, match=r"3 files directly in test/videos/003/") as caught:
        publish_folder(root, REPO_ID, token=TOKEN, endpoint=hub.url)
    assert "the repo root" in str(caught.value)  # README.md, ATTRIBUTION.md, croissant.json: 3 as well
    assert "smaller video shards" in str(caught.value)
    assert hub.requests == []


def test_no_token_is_a_clear_error_before_any_request(
    built: tuple[Path, dict[str, bytes]], fake_hub_factory: type[FakeHub]
) -> None:
    hub = fake_hub_factory(token=TOKEN)
    with pytest.raises(
        PublishError, match=r"no Hugging Face token found: set HF_TOKEN or run `hf auth login`"
    ):
        publish_folder(built[0], REPO_ID, endpoint=hub.url)
    assert hub.requests == []


def test_offline_mode_is_a_clear_error_before_any_request(
    built: tuple[Path, dict[str, bytes]], monkeypatch: pytest.MonkeyPatch, no_network: list[object]
) -> None:
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(PublishError, match=r"HF_HUB_OFFLINE is set: unset it to publish"):
        publish_folder(built[0], REPO_ID, token=TOKEN)
    assert publish_folder(built[0], REPO_ID, dry_run=True).dry_run  # the plan still works offline
    assert no_network == []


def test_an_unreachable_hub_is_one_clear_line_not_a_traceback(
    built: tuple[Path, dict[str, bytes]],
    fake_hub_factory: type[FakeHub],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Connection refused (nothing listens on the port): a PublishError naming the endpoint, and the CLI
    prints it as one line with status 2."""
    with socket.socket() as probe_socket:
        probe_socket.bind(("127.0.0.1", 0))
        port = probe_socket.getsockname()[1]  # closed again below: nothing listens there
    endpoint = f"http://127.0.0.1:{port}"
    with pytest.raises(
        PublishError, match=rf"could not reach the Hub at {re.escape(endpoint)} \(ConnectError"
    ):
        publish_folder(built[0], REPO_ID, token=TOKEN, endpoint=endpoint)

    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setattr(constants, "ENDPOINT", endpoint)
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    assert cli.main(["publish", str(built[0]), "--repo-id", REPO_ID]) == 2
    err = capsys.readouterr().err
    assert err.startswith("videokr publish: error: could not reach the Hub")
    assert err.count("\n") == 1 and "Traceback" not in err and TOKEN not in err


# ---------------------------------------------------------------------------------------------- upload


def test_upload_over_lfs_sends_every_file_with_its_bytes_and_keeps_the_token_secret(
    built: tuple[Path, dict[str, bytes]],
    fake_hub_factory: type[FakeHub],
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    tmp_path: Path,
    loopback_only: list[object],
) -> None:
    root, expected = built
    without_xet(monkeypatch)
    monkeypatch.setattr(publish, "COMMIT_BATCH_FILES", 3)  # 7 files -> 3 commits, as a big dataset would
    hub = fake_hub_factory(token=TOKEN, lfs_for_binary=True)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_debug()  # even the client's debug log must not show the token
    try:
        result = publish_folder(root, REPO_ID, token=TOKEN, endpoint=hub.url)
    finally:
        hf_logging.set_verbosity(verbosity)

    main = hub.branch(REPO_ID)
    assert main.files == expected  # every file, byte for byte, and nothing else (no .videokr/, .partial, pyc)
    assert not any(path.startswith(".videokr/") for path in main.files)
    binaries = {p for p in expected if p.endswith((".mp4", ".parquet"))}
    assert main.lfs_paths == binaries  # binaries went through the LFS batch API + storage PUT
    assert set(hub.lfs_objects) == {hashlib.sha256(expected[p]).hexdigest() for p in binaries}
    assert [c["paths"] for c in main.commits] == [
        sorted(expected)[0:3],
        sorted(expected)[3:6],
        sorted(expected)[6:7],
    ]
    assert main.commits[0]["header"]["summary"] == "Upload VideoKR-Eval with videokr 0.1.0 (part 1/3)"
    assert result.commit_oid == main.head and result.commit_url.endswith(
        f"/datasets/{REPO_ID}/commit/{main.head}"
    )
    assert result.repo_url == f"{hub.url}/datasets/{REPO_ID}"
    assert hub.repos[("datasets", REPO_ID)].visibility is None  # namespace default, not forced public

    # The protocol the client really spoke, in order, and nothing the fake does not know.
    assert hub.unexpected == []
    assert hub.requests[0].path == "/api/repos/create"
    assert len(hub.requests_to(r"^POST /api/validate-yaml$")) == 1  # the batch holding README.md
    assert len(hub.requests_to(rf"^POST /api/datasets/{REPO_ID}/preupload/main$")) == 3
    # The first batch (ATTRIBUTION.md, README.md, croissant.json) is all text: no LFS batch call for it.
    assert len(hub.requests_to(rf"^POST /datasets/{REPO_ID}\.git/info/lfs/objects/batch$")) == 2
    assert len(hub.requests_to(r"^PUT /lfs-storage/")) == len(binaries)
    assert len(hub.requests_to(r"^POST /lfs-verify/")) == len(binaries)
    assert len(hub.requests_to(rf"^POST /api/datasets/{REPO_ID}/commit/main$")) == 3

    # The token travelled only as the Authorization header of Hub API calls...
    api_calls = hub.requests_to(r"/api/|/objects/batch$|/lfs-verify/")
    assert api_calls and all(r.authorization == f"Bearer {TOKEN}" for r in api_calls)
    # ...not to storage (a pre-signed URL on the real Hub), and never to output, logs or files.
    assert all(r.authorization is None for r in hub.requests_to(r"^PUT /lfs-storage/"))
    assert_token_never_shown(TOKEN, capfd, tmp_path)
    assert loopback_only and all(address[0] == "127.0.0.1" for address in loopback_only)  # type: ignore[index]


def test_an_interrupted_upload_resumes_without_resending_what_the_hub_has(
    built: tuple[Path, dict[str, bytes]], fake_hub_factory: type[FakeHub], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, expected = built
    without_xet(monkeypatch)
    monkeypatch.setattr(publish, "COMMIT_BATCH_FILES", 3)
    hub = fake_hub_factory(token=TOKEN, fail_commit_attempts={2})  # the second commit "crashes"

    with pytest.raises(PublishError, match="the Hub refused the upload"):
        publish_folder(root, REPO_ID, token=TOKEN, endpoint=hub.url)
    main = hub.branch(REPO_ID)
    assert sorted(main.files) == sorted(expected)[:3]
    puts_before = len(hub.requests_to(r"^PUT /lfs-storage/"))

    publish_folder(root, REPO_ID, token=TOKEN, endpoint=hub.url)
    assert main.files == expected
    assert [c["paths"] for c in main.commits] == [
        sorted(expected)[0:3],
        sorted(expected)[3:6],
        sorted(expected)[6:7],
    ]
    # LFS objects stored before the crash were not sent again: each object was PUT exactly once.
    puts = [r.path for r in hub.requests_to(r"^PUT /lfs-storage/")]
    assert len(puts) == len(set(puts)) == len(hub.lfs_objects) and len(puts) > puts_before

    # A third run finds nothing to do: no upload, no commit, and it reports the current head.
    head, commits = main.head, len(main.commits)
    result = publish_folder(root, REPO_ID, token=TOKEN, endpoint=hub.url)
    assert len(hub.requests_to(r"^PUT /lfs-storage/")) == len(puts)
    assert (main.head, len(main.commits)) == (head, commits) and result.commit_oid == head

    # Changing one clip re-sends that clip only.
    (root / "test/videos/000/clip_001.mp4").write_bytes(fake_mp4(99, 3_000))
    publish_folder(root, REPO_ID, token=TOKEN, endpoint=hub.url)
    assert main.commits[-1]["paths"] == ["test/videos/000/clip_001.mp4"]
    assert main.files["test/videos/000/clip_001.mp4"] == fake_mp4(99, 3_000)


def test_publish_to_a_branch_creates_it_and_leaves_main_alone(
    built: tuple[Path, dict[str, bytes]], fake_hub_factory: type[FakeHub], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, expected = built
    without_xet(monkeypatch)
    hub = fake_hub_factory(token=TOKEN)
    result = publish_folder(root, REPO_ID, token=TOKEN, endpoint=hub.url, revision="v1.0", private=True)
    assert hub.branch(REPO_ID, "v1.0").files == expected
    assert hub.branch(REPO_ID, "main").files == {}
    assert hub.repos[("datasets", REPO_ID)].visibility == "private"
    assert result.revision == "v1.0" and hub.unexpected == []


def test_the_command_uploads_through_the_streamed_multi_commit_pipeline_with_the_env_token(
    tmp_path: Path,
    fake_hub_factory: type[FakeHub],
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """The default path (hf_xet installed): `upload_folder` scans, preuploads and commits in batches.

    The fake answers "regular" for every file, so content travels base64 inside the commits and the
    Xet transfer (not served by the fake) is never needed; 300 extra clips push the folder past the
    pipeline's first batch of 250 files, so it commits twice.
    """
    from huggingface_hub.utils._runtime import is_xet_available

    if not is_xet_available():
        pytest.skip("hf_xet is not installed: upload_folder takes the single-commit path")
    root = tmp_path / "VideoKR-Eval"
    expected = write_built_repo(root, extra_clips=300)
    (root / ".env").write_bytes(b"SECRET=1\n")  # strays: upload_folder walks the folder itself
    (root / "test/videos/002/unused.mp4").write_bytes(fake_mp4(5, 64))
    hub = fake_hub_factory(token=TOKEN, lfs_for_binary=False)
    monkeypatch.setenv("HF_TOKEN", TOKEN)  # the usual way: no token argument

    assert publish_command(root, REPO_ID) == 0

    main = hub.branch(REPO_ID)
    assert main.files == expected and main.lfs_paths == set()
    assert len(main.commits) == 2
    assert main.commits[1]["header"]["summary"] == "Upload VideoKR-Eval with videokr 0.1.0 (part 2)"
    assert sum(len(c["paths"]) for c in main.commits) == len(expected)
    assert hub.unexpected == [] and not hub.requests_to("xet")
    assert all(r.authorization == f"Bearer {TOKEN}" for r in hub.requests)
    out, err = capfd.readouterr()
    assert f"uploaded to {hub.url}/datasets/{REPO_ID}" in out
    assert f"commit: {hub.url}/datasets/{REPO_ID}/commit/{main.head}" in out
    assert TOKEN not in out and TOKEN not in err
