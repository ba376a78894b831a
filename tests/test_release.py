"""Clips are found where the release keeps them: tars, split tars read in place, and loose folders."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from pathlib import Path

import pytest

from videokr.data.release import AmbiguousClipError, ClipStore, ConcatenatedReader, find_release_file
from videokr.errors import VideoKRError


def make_tar(path: Path, members: dict[str, bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def split_file(path: Path, chunk: int) -> list[Path]:
    data = path.read_bytes()
    parts = []
    for index in range(0, len(data), chunk):
        suffix = "a" + "abcdefghijklmnopqrstuvwxyz"[index // chunk]
        part = path.with_name(f"{path.name}.part.{suffix}")
        part.write_bytes(data[index : index + chunk])
        parts.append(part)
    path.unlink()
    return parts


@pytest.fixture
def release(tmp_path: Path) -> Path:
    root = tmp_path / "VideoKR-Train"
    make_tar(
        root / "Videos" / "videos_0000.tar", {"videos_0000/a.mp4": b"A" * 3000, "videos_0000/notes.txt": b"x"}
    )
    big = os.urandom(50_000)
    make_tar(
        root / "Videos" / "videos_0001.tar", {"videos_0001/b.mp4": big, "./videos_0001/c.mp4": b"C" * 10}
    )
    split_file(root / "Videos" / "videos_0001.tar", 7_000)  # members straddle part boundaries
    (root / "Videos" / "videos_0002").mkdir(parents=True)
    (root / "Videos" / "videos_0002" / "d.mp4").write_bytes(b"D" * 5)
    (root / "VideoKR-COT-201K.jsonl").write_text("{}\n")
    return root


def test_clips_in_tars_split_tars_and_folders_are_served_by_row_path(release: Path, tmp_path: Path) -> None:
    store = ClipStore(release)
    assert len(store) == 4  # the .txt member is not a clip
    assert len(store.archives) == 2
    for row_path, expected in [
        ("videos_0000/a.mp4", b"A" * 3000),
        ("./videos_0001/c.mp4", b"C" * 10),
        ("Videos/videos_0000/a.mp4", b"A" * 3000),
        ("videos_0002/d.mp4", b"D" * 5),
    ]:
        ref = store.resolve(row_path)
        assert ref is not None, row_path
        with ref.open() as handle:
            assert handle.read() == expected
    big = store.resolve("videos_0001/b.mp4")
    assert big is not None and len(big.archive) > 1
    digest = big.copy_to(tmp_path / "out" / "b.mp4")
    data = (tmp_path / "out" / "b.mp4").read_bytes()
    assert len(data) == 50_000 and hashlib.sha256(data).hexdigest() == digest
    assert not list((tmp_path / "out").glob("*.partial"))
    assert store.resolve("videos_0003/missing.mp4") is None


def test_rows_naming_clips_as_the_official_loaders_accept_them_are_found(release: Path) -> None:
    """The official evaluation loader tries the path as given and with each of "", .mp4, .MP4, .mkv,
    .avi, .mov as its suffix; the training loaders strip leading "./" and try with and without Videos/."""
    (release / "Videos" / "videos_0002" / "e.MP4").write_bytes(b"E" * 7)
    (release / "Videos" / "videos_0002" / "f.mov").write_bytes(b"F" * 7)
    store = ClipStore(release)
    for row_path, expected in [
        ("videos_0000/a", "videos_0000/a.mp4"),  # no extension
        ("videos_0000/a.avi", "videos_0000/a.mp4"),  # another extension
        ("Videos/videos_0002/e", "Videos/videos_0002/e.MP4"),
        (".//videos_0002/f", "Videos/videos_0002/f.mov"),
    ]:
        ref = store.resolve(row_path)
        assert ref is not None and ref.name == expected, row_path
    assert store.resolve("videos_0000/z") is None


def test_concatenated_reader_seeks_across_parts(tmp_path: Path) -> None:
    parts = []
    for index, text in enumerate([b"hello ", b"split ", b"world"]):
        parts.append(tmp_path / f"p{index}")
        parts[-1].write_bytes(text)
    with ConcatenatedReader(parts) as reader:
        assert reader.read() == b"hello split world"
        reader.seek(4)
        assert reader.read(5) == b"o spl"
        reader.seek(-3, os.SEEK_END)
        assert reader.read() == b"rld"


def test_a_missing_part_is_a_clear_error(release: Path) -> None:
    parts = sorted((release / "Videos").glob("videos_0001.tar.part.*"))
    parts[-1].unlink()
    with pytest.raises(VideoKRError, match=r"videos_0001\.tar\.part\.aa .*is a part missing"):
        ClipStore(release)


def test_a_missing_middle_part_is_named(release: Path) -> None:
    """`.aa, .ac` without `.ab`: the error names the part, instead of the clips after it going missing."""
    parts = sorted((release / "Videos").glob("videos_0001.tar.part.*"))
    assert len(parts) > 3
    parts[1].unlink()
    parts[2].unlink()
    with pytest.raises(
        VideoKRError, match=r"missing part videos_0001\.tar\.part\.ab, videos_0001\.tar\.part\.ac"
    ):
        ClipStore(release)


def test_a_missing_first_part_is_named(release: Path) -> None:
    sorted((release / "Videos").glob("videos_0001.tar.part.*"))[0].unlink()
    with pytest.raises(VideoKRError, match=r"missing part videos_0001\.tar\.part\.aa \("):
        ClipStore(release)


def test_an_archive_damaged_in_the_middle_is_an_error_not_fewer_clips(release: Path) -> None:
    """tarfile stops quietly at a header it cannot read; the store checks that the archive really ended."""
    archive = release / "Videos" / "videos_0000.tar"
    make_tar(archive, {f"videos_0000/{i}.mp4": bytes([i]) * 3000 for i in range(3)})
    data = bytearray(archive.read_bytes())
    second_header = 512 + 3072  # one header block, then 3,000 bytes padded to whole blocks
    data[second_header : second_header + 512] = b"\x07" * 512
    archive.write_bytes(bytes(data))
    with pytest.raises(VideoKRError, match=rf"no valid tar header at byte {second_header}"):
        ClipStore(release)


def test_a_path_two_different_clips_answer_is_ambiguous_and_identical_copies_are_fine(
    release: Path,
) -> None:
    make_tar(release / "Videos" / "more.tar", {"videos_0000/a.mp4": b"a different clip"})
    (release / "Videos" / "videos_0001").mkdir()
    (release / "Videos" / "videos_0001" / "c.mp4").write_bytes(b"C" * 10)  # extracted, same bytes
    store = ClipStore(release)
    with pytest.raises(AmbiguousClipError, match=r"videos_0000/a\.mp4: 2 different clips answer") as caught:
        store.resolve("videos_0000/a.mp4")
    assert {c.location for c in caught.value.candidates} == {
        "videos_0000.tar:videos_0000/a.mp4",
        "more.tar:videos_0000/a.mp4",
    }
    ref = store.resolve("videos_0001/c.mp4")
    assert ref is not None and ref.name == "videos_0001/c.mp4" and len(ref.archive) > 1

    (release / "Videos" / "videos_0002" / "d.mp4").unlink()
    make_tar(release / "Videos" / "d.tar", {"videos_0002/d.mp4": b"D" * 5})
    (release / "videos_0002").mkdir()
    (release / "videos_0002" / "d.mp4").write_bytes(b"d" * 5)  # same size, other bytes, other spelling
    with pytest.raises(AmbiguousClipError):
        ClipStore(release).resolve("videos_0002/d.mp4")


def test_find_release_file(release: Path, tmp_path: Path) -> None:
    assert find_release_file(release, "sft") == release / "VideoKR-COT-201K.jsonl"
    assert find_release_file(tmp_path, "sft") == release / "VideoKR-COT-201K.jsonl"
    with pytest.raises(VideoKRError, match=r"no VideoKR-RL-114K\.jsonl"):
        find_release_file(tmp_path, "rl")
