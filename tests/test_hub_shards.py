"""The sharded layout: ZIP shards that `datasets` reads in place, rebuilt only where something changed."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import datasets
import pytest
import torch

import videokr_sft
from videokr.data import shards
from videokr.data.hub import JOURNAL_PATH, build_repo
from videokr.data.release import RELEASE_FILES

SPEC = videokr_sft.SPEC


def build(source: Path, out: Path, layout: str, **options: object):
    return build_repo(SPEC, source, out, layout=layout, workers=2, progress=False, **options)


def stamps(out: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (out / SPEC.split).glob("*.zip")}


@pytest.fixture(scope="module")
def both(sample_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The sample SFT set built loose and sharded (at most 10 clips a shard, so there are three)."""
    out = tmp_path_factory.mktemp("layouts")
    release = out / "release"
    shutil.copytree(sample_corpus, release)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(shards, "MAX_SHARD_CLIPS", 10)
        build(release, out / "sharded", "shards")
    build(release, out / "loose", "loose")
    return {"release": release, "loose": out / "loose", "sharded": out / "sharded"}


def test_a_sharded_build_loads_and_decodes_as_the_loose_one(both: dict[str, Path], tmp_path: Path) -> None:
    files = sorted(
        p.relative_to(both["sharded"]).as_posix() for p in both["sharded"].rglob("*") if p.is_file()
    )
    assert [f for f in files if f.startswith(SPEC.split)] == [
        f"{SPEC.split}/shard-0000{i}.zip" for i in range(3)
    ]
    loose = datasets.load_dataset(str(both["loose"]), split=SPEC.split, cache_dir=str(tmp_path / "a"))
    sharded = datasets.load_dataset(str(both["sharded"]), split=SPEC.split, cache_dir=str(tmp_path / "b"))
    assert sharded.features == loose.features
    by_id = {row["id"]: i for i, row in enumerate(loose.select_columns(["id"]))}
    text = ["id", "question", "options", "answer", "think", "duration_s", "license"]
    assert sorted(sharded.select_columns(text).to_list(), key=lambda r: r["id"]) == sorted(
        loose.select_columns(text).to_list(), key=lambda r: r["id"]
    )
    for index in range(0, len(sharded), 3):
        ours, theirs = sharded[index], loose[by_id[sharded[index]["id"]]]
        last = theirs["video"].metadata.num_frames - 1
        assert ours["video"].metadata.num_frames == last + 1
        for frame in (0, last):
            assert torch.equal(
                ours["video"].get_frame_at(frame).data, theirs["video"].get_frame_at(frame).data
            )
    streamed = datasets.load_dataset(str(both["sharded"]), split=SPEC.split, streaming=True)
    assert sorted(row["id"] for row in streamed.decode(False)) == sorted(by_id)


def test_a_no_change_rebuild_rewrites_no_shard_and_appends_the_journal(both: dict[str, Path]) -> None:
    out = both["sharded"]
    before, journal = stamps(out), (out / JOURNAL_PATH).read_bytes()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(shards, "MAX_SHARD_CLIPS", 10)
        report = build(both["release"], out, "shards")
    assert (report.clips_written, report.clips_reused) == (0, 26)
    assert stamps(out) == before
    assert (out / JOURNAL_PATH).read_bytes().startswith(journal)


def test_a_changed_row_rewrites_only_its_shard(both: dict[str, Path], tmp_path: Path) -> None:
    release, out = tmp_path / "release", tmp_path / "out"
    shutil.copytree(both["release"], release)
    shutil.copytree(both["sharded"], out)
    before = stamps(out)
    jsonl = release / "VideoKR-Train" / RELEASE_FILES["sft"]
    lines = jsonl.read_text().splitlines()
    lines[0] = lines[0].replace('"question": "', '"question": "Edited: ', 1)
    assert "Edited: " in lines[0]
    jsonl.write_text("\n".join(lines) + "\n")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(shards, "MAX_SHARD_CLIPS", 10)
        report = build(release, out, "shards")
    assert report.clips_written == 0
    after = stamps(out)
    assert sorted(name for name in before if after[name] != before[name]) == [
        name
        for name in sorted(before)
        if any(
            "Edited: " in q
            for q in shards.read_shard_rows(out / SPEC.split / name, ["question"])["question"].to_pylist()
        )
    ]
    assert len([n for n in before if after[n] != before[n]]) == 1


def test_auto_layout_is_loose_for_small_sets_and_shards_beyond() -> None:
    assert shards.choose_layout("auto", 26, 10**6) == "loose"
    assert shards.choose_layout("auto", 85_934, 3 * 10**8) == "shards"
    assert shards.choose_layout("loose", 85_934, 3 * 10**8) == "loose"


def test_publish_sends_the_card_files_and_the_shards_only(both: dict[str, Path], tmp_path: Path) -> None:
    from videokr.data.publish import PublishError, plan_upload

    plan = plan_upload(both["sharded"])
    assert [f.path for f in plan.files] == [
        "ATTRIBUTION.md",
        "README.md",
        "croissant.json",
        *(f"{SPEC.split}/shard-0000{i}.zip" for i in range(3)),
    ]
    broken = tmp_path / "broken"
    shutil.copytree(both["sharded"], broken)
    shard = broken / SPEC.split / "shard-00001.zip"
    shard.write_bytes(shard.read_bytes()[:-100])  # cut short: the central directory is gone
    with pytest.raises(PublishError, match=r"shard-00001\.zip: not a readable shard"):
        plan_upload(broken)


def _zero_inside_member(archive: Path, member: str) -> None:
    """Zero the middle third of a stored member's bytes in place: same size, same modification time, so
    the shard looks untouched to a rebuild (as bit rot or a bad copy would)."""
    import struct
    import zipfile

    with zipfile.ZipFile(archive) as handle:
        info = handle.getinfo(member)
    stat = archive.stat()
    with archive.open("r+b") as raw:
        raw.seek(info.header_offset + 26)
        name_length, extra_length = struct.unpack("<HH", raw.read(4))
        start = info.header_offset + 30 + name_length + extra_length
        third = info.file_size // 3
        raw.seek(start + third)
        raw.write(bytes(third))
    os.utime(archive, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_verify_decodes_clips_inside_their_shards_without_copying_them(
    both: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    shutil.copytree(both["sharded"], out)
    before = stamps(out)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(shards, "MAX_SHARD_CLIPS", 10)
        report = build(both["release"], out, "shards", verify=True)
        assert (report.clips_written, report.clips_reused, report.problems) == (0, 26, [])
        assert stamps(out) == before  # nothing copied out or packed again

        archive = out / SPEC.split / "shard-00001.zip"
        rows = shards.read_shard_rows(archive, ["file_name", "id"])
        member = rows["file_name"][0].as_py()
        on_clip = sorted(r["id"] for r in rows.to_pylist() if r["file_name"] == member)
        _zero_inside_member(archive, member)
        # Only the shard's stamp is checked. (No self-check here: it decodes the first row plain `datasets`
        # streams, whose shard order follows string hashing, so it would meet the damage only sometimes.)
        assert build(both["release"], out, "shards", check=False).problems == []
        report = build(both["release"], out, "shards", verify=True)
    assert sorted(report.rejected_ids("corrupt_clip")) == on_clip
    assert member not in {r["file_name"] for r in shards.read_shard_rows(archive, ["file_name"]).to_pylist()}
    after = stamps(out)
    assert [name for name in before if after.get(name) != before[name]] == ["shard-00001.zip"]
