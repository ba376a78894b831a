"""Planted faults a dataset build must survive: it never serves wrong bytes and never loses a user's data.

Each test plants one fault class in a copy of the sample Eval release (13 loose clips, 33 rows) and
checks what the build writes and reports: a same-size fixed clip, colliding flattened names, one name
in two archives, a clip corrupt in the middle, an `--out` that is not the tool's, a line that is not
UTF-8, licences that are not Creative Commons, non-finite durations, and a build killed mid-probe.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import textwrap
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import videokr_eval
import videokr_sft
from videokr.data.card import compute_statistics, honest_summary, is_creative_commons, render_card
from videokr.data.hub import build_repo, load_manifest_clips
from videokr.errors import VideoKRError

SPEC = videokr_eval.SPEC
JSONL = "VideoKR_eval.jsonl"


@pytest.fixture
def release(sample_corpus: Path, tmp_path: Path) -> Path:
    """A private copy of the sample Eval release (its JSONL and loose clips)."""
    root = tmp_path / "release"
    shutil.copytree(sample_corpus / "VideoKR-Eval", root)
    return root


def read_rows(root: Path) -> list[dict]:
    return [json.loads(line) for line in (root / JSONL).read_text().splitlines() if line.strip()]


def write_rows(root: Path, rows: list[dict | str]) -> None:
    lines = [row if isinstance(row, str) else json.dumps(row) for row in rows]
    (root / JSONL).write_text("\n".join(lines) + "\n")


def build(root: Path, out: Path, **kwargs):
    kwargs.setdefault("check", False)
    return build_repo(SPEC, root, out, workers=1, progress=False, **kwargs)


def written(out: Path) -> dict[str, dict]:
    """id → metadata row, with the clip's bytes under "bytes"."""
    rows = pq.read_table(out / "test" / "metadata.parquet").to_pylist()
    return {r["id"]: r | {"bytes": (out / "test" / r["file_name"]).read_bytes()} for r in rows}


def snapshot(folder: Path) -> dict[str, tuple[int, bytes]]:
    """Every entry under `folder` with its mtime and content: to prove a refused build touched nothing."""
    return {
        p.relative_to(folder).as_posix(): (p.stat().st_mtime_ns, p.read_bytes() if p.is_file() else b"")
        for p in sorted(folder.rglob("*"))
    }


def distinct_clips(root: Path) -> list[Path]:
    return sorted((root / "videos").rglob("*.mp4"))


# ---------------------------------------------------------------------------------- 1. content identity


def test_a_clip_fixed_in_place_with_the_same_size_is_copied_again(release: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = build(release, out)
    clip = release / read_rows(release)[0]["video_path"]
    data = clip.read_bytes()
    at = data.index(b"Lavf")  # the muxer's name in the metadata: editing it keeps the clip valid
    fixed = data[:at] + b"Xavf" + data[at + 4 :]
    assert len(fixed) == len(data)
    clip.write_bytes(fixed)

    again = build(release, out)
    assert (again.clips_written, again.clips_reused) == (1, first.clips_written - 1)
    rows = written(out)
    assert rows[read_rows(release)[0]["id"]]["bytes"] == fixed
    manifest = load_manifest_clips(out)
    assert hashlib.sha256(fixed).hexdigest() in {entry["sha256"] for entry in manifest.values()}

    # A copy damaged in the output (same size) is not trusted either: it is written again from source.
    copy = out / "test" / rows[read_rows(release)[1]["id"]]["file_name"]
    original = copy.read_bytes()
    copy.write_bytes(bytes(len(original)))
    third = build(release, out)
    assert third.clips_written == 1 and copy.read_bytes() == original


# ---------------------------------------------------------------------- 2. names that collide or repeat


def test_names_that_collide_after_flattening_get_their_own_files(release: Path, tmp_path: Path) -> None:
    clips = distinct_clips(release)
    (release / "a").mkdir()
    (release / "a__b").mkdir()
    shutil.copy(clips[0], release / "a" / "b__c.mp4")  # both flatten to a__b__c.mp4
    shutil.copy(clips[1], release / "a__b" / "c.mp4")
    shutil.copy(clips[2], release / "a" / "B__C.mp4")  # and this one on a case-insensitive disk
    rows = read_rows(release)
    rows[0]["video_path"], rows[1]["video_path"], rows[2]["video_path"] = (
        "a/b__c.mp4",
        "a__b/c.mp4",
        "a/B__C.mp4",
    )
    write_rows(release, rows)

    report = build(release, tmp_path / "out", check=True)
    assert report.problems == []
    out_rows = written(tmp_path / "out")
    for row, clip in zip(rows[:3], clips[:3], strict=True):
        assert out_rows[row["id"]]["bytes"] == clip.read_bytes(), row["video_path"]
    names = [out_rows[row["id"]]["file_name"] for row in rows[:3]]
    assert len({n.casefold() for n in names}) == 3 and all("a__b__c" in n.lower() for n in names)


def make_tar(path: Path, members: dict[str, bytes]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_one_name_in_two_archives_with_different_bytes_is_ambiguous_not_guessed(
    release: Path, tmp_path: Path
) -> None:
    clips = [c.read_bytes() for c in distinct_clips(release)]
    make_tar(release / "Videos" / "extra_0.tar", {"dup/clip.mp4": clips[0], "same/clip.mp4": clips[2]})
    make_tar(release / "Videos" / "extra_1.tar", {"dup/clip.mp4": clips[1], "same/clip.mp4": clips[2]})
    rows = read_rows(release)
    rows[0]["video_path"] = "dup/clip.mp4"  # two different clips answer it
    rows[1]["video_path"] = "same/clip.mp4"  # two identical copies: fine
    write_rows(release, rows)

    report = build(release, tmp_path / "out")
    assert report.rejected_ids("ambiguous_clip") == [rows[0]["id"]]
    (problem,) = [p for p in report.problems if p.kind == "ambiguous_clip"]
    assert "extra_0.tar:dup/clip.mp4" in problem.detail and "extra_1.tar:dup/clip.mp4" in problem.detail
    out_rows = written(tmp_path / "out")
    assert rows[0]["id"] not in out_rows
    assert out_rows[rows[1]["id"]]["bytes"] == clips[2]
    assert "ambiguous_clip" in report.summary() and rows[0]["id"] in report.summary()


# --------------------------------------------------------------------------- 3. corrupt in the middle


def test_a_clip_corrupt_in_the_middle_is_caught_without_verify(release: Path, tmp_path: Path) -> None:
    from videokr.vision.decode import probe

    rows = read_rows(release)
    clip = release / rows[0]["video_path"]
    data = clip.read_bytes()
    third = len(data) // 3
    clip.write_bytes(data[:third] + bytes(third) + data[2 * third :])  # a zeroed stretch of the frames
    probe(clip)  # the container probe alone does not see it

    report = build(release, tmp_path / "out")
    on_clip = sorted(r["id"] for r in rows if r["video_path"] == rows[0]["video_path"])
    assert sorted(report.rejected_ids("corrupt_clip")) == on_clip
    assert "corrupt h264 stream" in report.summary()
    assert "run with --verify" in report.summary()
    assert "--verify" not in build(release, tmp_path / "verified", verify=True).summary()


# ------------------------------------------------------------------------------------- 4. --out rules


def test_out_pointing_at_the_source_is_refused_and_nothing_is_touched(release: Path) -> None:
    (release / "README.md").write_text("the release's own card\n")
    (release / "ATTRIBUTION.md").write_text("the release's attribution\n")
    (release / "test" / "videos").mkdir(parents=True)
    (release / "test" / "videos" / "mine.mp4").write_bytes(b"the user's clip")
    before = snapshot(release)
    with pytest.raises(VideoKRError, match=r"is not empty .* and is not a folder videokr built") as caught:
        build(release, release)
    assert "nothing was written" in str(caught.value) and "\n" not in str(caught.value)
    assert snapshot(release) == before


def test_building_another_kind_into_a_built_folder_is_refused(
    release: Path, sample_corpus: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    build(release, out)
    before = snapshot(out)
    with pytest.raises(VideoKRError, match=r"already holds the VideoKR-Eval dataset \(eval\)"):
        build_repo(videokr_sft.SPEC, sample_corpus, out, workers=1, progress=False, check=False)
    assert snapshot(out) == before


def test_a_non_empty_folder_of_the_user_is_refused_and_an_empty_one_is_used(
    release: Path, tmp_path: Path
) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / ".env").write_text("SECRET=1\n")
    with pytest.raises(VideoKRError, match=r"--out .*mine is not empty \(1 entries: \.env\)"):
        build(release, mine)
    assert [p.name for p in mine.iterdir()] == [".env"]
    (mine / ".env").unlink()
    assert build(release, mine).rows_written == len(read_rows(release))


def test_a_rebuild_deletes_only_files_the_build_wrote(release: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    build(release, out)
    theirs = [out / "test" / "videos" / "000" / "mine.mp4", out / "test" / "notes.txt", out / "keep.txt"]
    for path in theirs:
        path.write_text("not the tool's")
    rows = read_rows(release)
    dropped = rows[0]["video_path"]
    stale = next(r["file_name"] for r in written(out).values() if r["id"] == rows[0]["id"])
    write_rows(release, [r for r in rows if r["video_path"] != dropped])  # one clip no row uses any more

    build(release, out)
    assert not (out / "test" / stale).exists()  # the tool's own clip, no longer used: removed
    assert all(path.read_text() == "not the tool's" for path in theirs)


# ---------------------------------------------------------------------------------- 5. invalid UTF-8


def test_a_line_that_is_not_utf8_is_one_rejected_row_with_its_line(release: Path, tmp_path: Path) -> None:
    data = (release / JSONL).read_bytes().splitlines(keepends=True)
    data[4] = data[4].replace(b'"question": "', b'"question": "\xff', 1)  # a Latin-1 byte, say
    (release / JSONL).write_bytes(b"".join(data))
    report = build(release, tmp_path / "out")
    (problem,) = [p for p in report.problems if p.kind == "record"]
    assert f"{JSONL}:5: not valid UTF-8" in problem.detail
    assert report.rows_read == len(data) and report.rows_written == len(data) - 1


# ------------------------------------------------------------------------------------- 7. licences


def test_rows_whose_clip_licence_is_not_cc_are_kept_out_unless_allowed(release: Path, tmp_path: Path) -> None:
    rows = read_rows(release)
    by_clip: dict[str, list[dict]] = {}
    for row in rows:
        by_clip.setdefault(row["video_path"], []).append(row)
    clips = list(by_clip)
    for row in by_clip[clips[0]]:
        row["license"] = "All rights reserved"
    for row in by_clip[clips[1]]:
        del row["license"]
    for row in by_clip[clips[2]]:
        row["license"] = "CC BY-NC 4.0"  # a Creative Commons licence: kept
    write_rows(release, rows)

    report = build(release, tmp_path / "out")
    refused = {p.detail.split(";")[0]: p.row_ids for p in report.problems if p.kind == "license"}
    assert refused == {
        "licence 'All rights reserved' is not Creative Commons": [r["id"] for r in by_clip[clips[0]]],
        "no licence given": [r["id"] for r in by_clip[clips[1]]],
    }
    assert "--allow-non-cc" in report.summary()
    card = (tmp_path / "out" / "README.md").read_text()
    assert "All 11 clips are under Creative Commons licences" in card

    allowed = build(release, tmp_path / "allowed", allow_non_cc=True)
    assert allowed.problems == [] and allowed.rows_written == len(rows)
    card = (tmp_path / "allowed" / "README.md").read_text()
    assert "**2 of the 13 clips are not under a Creative Commons licence**" in card
    assert "All rights reserved (1)" in card and "(unknown) (1)" in card and "CC BY-NC 4.0 (1)" in card
    assert "All 13 clips are under" not in card


def test_the_card_never_calls_non_cc_clips_cc_licensed() -> None:
    """The SFT summary says "CC-licensed expert-domain videos": true only when every clip is."""
    rows = [
        {"file_name": "videos/000/a.mp4", "license": "CC-BY-4.0"},
        {"file_name": "videos/000/b.mp4", "license": "Standard YouTube License"},
    ]
    stats = compute_statistics(rows, {}) | {"data_bytes": 1}
    assert "CC-licensed" in videokr_sft.SPEC.summary
    assert "CC-licensed" not in honest_summary(videokr_sft.SPEC, stats)
    card = render_card(videokr_sft.SPEC, stats, "org/name")
    assert "CC-licensed" not in card and "**1 of the 2 clips are not under a Creative Commons" in card
    cc_only = compute_statistics(rows[:1], {}) | {"data_bytes": 1}
    assert "CC-licensed" in render_card(videokr_sft.SPEC, cc_only, "org/name")
    for spelling in [
        "CC0-1.0",
        "CC-BY-SA-4.0",
        "cc by-nc-nd 3.0",
        "https://creativecommons.org/licenses/by/4.0/",
    ]:
        assert is_creative_commons(spelling), spelling
    for spelling in [None, "", "MIT", "youtube", "All rights reserved", "CC", "GPL-3.0"]:
        assert not is_creative_commons(spelling), spelling


# ------------------------------------------------------------------------------ 8. non-finite numbers


def test_non_finite_durations_are_not_written_and_are_counted(release: Path, tmp_path: Path) -> None:
    rows = read_rows(release)
    raw: list[dict | str] = list(rows)
    rows[0]["duration"] = float("nan")  # json.dumps writes NaN
    rows[1]["duration"] = "inf"
    raw[0] = json.dumps(rows[0])
    raw[1] = json.dumps(rows[1])
    raw[2] = json.dumps(rows[2]).replace(f'"duration": {rows[2]["duration"]}', '"duration": 1e999')
    assert "1e999" in raw[2]
    write_rows(release, raw)

    report = build(release, tmp_path / "out")
    ids = [rows[i]["id"] for i in range(3)]
    durations = {r["id"]: r["duration_s"] for r in written(tmp_path / "out").values()}
    assert all(durations[i] is not None and 0 < durations[i] < 1e6 for i in ids)  # the probed ones
    assert report.rows_written == len(rows) and report.problems == []
    (notice,) = report.notices
    assert notice.kind == "non_finite" and sorted(notice.row_ids) == sorted(ids)
    assert "3 rows gave a non-finite duration_s" in report.summary()


# ----------------------------------------------------------------------- 11. workers die with the build


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rpartition(")")[2].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _running(pid: int) -> bool:
    """Alive and not a zombie (a dead child waits for a reaper that may never come in a container)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_killing_a_build_mid_probe_leaves_no_worker_running(release: Path, tmp_path: Path) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    script = tmp_path / "slow_build.py"
    script.write_text(
        textwrap.dedent(
            """
            import os, sys, time
            from pathlib import Path

            import videokr_eval
            from videokr.data import hub

            def slow_probe(path):
                (Path(sys.argv[3]) / str(os.getpid())).touch()
                time.sleep(120)
                return path, 1.0, None

            hub._probe_clip = slow_probe  # the pool runs this instead: a probe that takes its time
            hub.build_repo(videokr_eval.SPEC, Path(sys.argv[1]), Path(sys.argv[2]), workers=2,
                           progress=False, check=False)
            """
        )
    )
    build_process = subprocess.Popen(
        [sys.executable, str(script), str(release), str(tmp_path / "out"), str(markers)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while not list(markers.iterdir()):
            assert build_process.poll() is None, build_process.stderr.read().decode()  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "the build never reached the probe"
            time.sleep(0.05)
        workers = _children(build_process.pid)
        assert len(workers) == 2 and all(_running(w) for w in workers)
        os.kill(build_process.pid, signal.SIGKILL)
        build_process.wait(10)
        deadline = time.monotonic() + 10
        while any(_running(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        survivors = [w for w in workers if _running(w)]
        assert survivors == [], "probe workers outlived the killed build"
    finally:
        build_process.kill()
        for pid in workers or _children(build_process.pid):
            if _running(pid):
                os.kill(pid, signal.SIGKILL)
