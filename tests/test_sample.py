"""The sample corpus looks like the official release, is deterministic, and its answers are true.

Layout and field checks read the files the way the official loaders and `cat part.* | tar -x` do; the
answer checks decode the clips and recount what the questions ask about from the pixels.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from videokr.cli import main as cli_main
from videokr.data.records import DISCIPLINES, LETTERS, SKILLS, Record, parse_row
from videokr.sample import EVAL_DIR, TRAIN_DIR, generate_sample_corpus, real_clips
from videokr.sample.families.healthcare import ECG_BASELINE, ECG_PX_PER_S
from videokr.sample.families.humanities import LAMP
from videokr.sample.families.natural_sciences import BURNER_BLUE, FLAME_COLOURS, FLAME_PATCH
from videokr.sample.real import ASSETS, SHOT_QUESTION
from videokr.sample.scene import FPS

FILES = {
    "sft": f"{TRAIN_DIR}/VideoKR-COT-201K.jsonl",
    "rl": f"{TRAIN_DIR}/VideoKR-RL-114K.jsonl",
    "eval": f"{EVAL_DIR}/VideoKR_eval.jsonl",
}
VIDEOS = f"{TRAIN_DIR}/Videos"
EVAL_SOURCES = {"MMVU", "VideoMMMU", "SciVideoBench"}
PROVENANCE = ("source_url", "creator", "license", "attribution", "duration")
LABELS = ("skill", "subject", "discipline", "knowledge_point")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def joined_archives(root: Path) -> dict[str, bytes]:
    """Each training archive's bytes by archive name, split parts joined in suffix order like `cat`."""
    archives: dict[str, bytes] = {}
    for path in sorted((root / VIDEOS).iterdir()):
        stem = path.name.split(".tar")[0] + ".tar"
        archives[stem] = archives.get(stem, b"") + path.read_bytes()
    return archives


def tar_members(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]


@dataclass
class Release:
    """A generated corpus read back: raw rows, canonical records, and every clip's bytes by row path."""

    root: Path
    rows: dict[str, list[dict[str, Any]]]
    records: dict[str, list[Record]]
    train_clips: dict[str, bytes]

    def clip(self, kind: str, record: Record) -> bytes:
        if kind == "eval":
            return (self.root / EVAL_DIR / record.video).read_bytes()
        return self.train_clips[record.video]

    def rows_asking(self, text: str, subject: str | None = None) -> Iterator[tuple[str, Record]]:
        for kind, records in self.records.items():
            for record in records:
                if text in record.question and (subject is None or record.subject == subject):
                    yield kind, record


def read_release(root: Path) -> Release:
    rows = {kind: read_jsonl(root / name) for kind, name in FILES.items()}
    records = {kind: [parse_row(r, kind) for r in rows[kind]] for kind in rows}  # type: ignore[arg-type]
    clips: dict[str, bytes] = {}
    for data in joined_archives(root).values():
        clips |= tar_members(data)
    return Release(root, rows, records, clips)


@pytest.fixture(scope="module")
def release(sample_corpus: Path) -> Release:
    return read_release(sample_corpus)


def decode(data: bytes, fmt: str = "rgb24") -> np.ndarray:
    with av.open(io.BytesIO(data)) as container:
        return np.stack([frame.to_ndarray(format=fmt) for frame in container.decode(video=0)])


def digests(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# --- layout -------------------------------------------------------------------------------------------


def test_release_layout_and_file_names(sample_corpus: Path) -> None:
    for name in FILES.values():
        assert (sample_corpus / name).is_file(), name
    videos = sorted(p.name for p in (sample_corpus / VIDEOS).iterdir())
    assert videos == [
        "videos_0000.tar",
        "videos_0001.tar",
        "videos_0002.tar.part.aa",
        "videos_0002.tar.part.ab",
    ]
    eval_clips = sorted((sample_corpus / EVAL_DIR / "videos").rglob("*.mp4"))
    assert {p.parent.name for p in eval_clips} == EVAL_SOURCES
    assert all(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{10}\.mp4", p.name) for p in eval_clips)


def test_split_parts_concatenate_into_a_tar_and_no_part_is_one(sample_corpus: Path) -> None:
    parts = sorted((sample_corpus / VIDEOS).glob("videos_0002.tar.part.*"))
    sizes = [p.stat().st_size for p in parts]
    joined = b"".join(p.read_bytes() for p in parts)
    assert len(joined) % tarfile.BLOCKSIZE == 0 and abs(sizes[0] - sizes[1]) <= 1
    members = tar_members(joined)
    assert members and all(name.startswith("videos_0002/") for name in members)
    assert all(data[4:8] == b"ftyp" for data in members.values())
    with pytest.raises(tarfile.TarError):  # a part on its own is truncated mid-member
        tar_members(parts[0].read_bytes())
    for whole in ("videos_0000.tar", "videos_0001.tar"):
        with tarfile.open(sample_corpus / VIDEOS / whole) as tar:
            infos = tar.getmembers()
        assert infos[0].isdir() and infos[0].name == whole.removesuffix(".tar")
        assert {(i.mtime, i.uid, i.gid, i.uname) for i in infos} == {(1_767_225_600, 0, 0, "root")}
        assert [i.name for i in infos] == sorted(i.name for i in infos)


def test_every_row_names_a_clip_in_its_release(release: Release) -> None:
    for row in release.rows["sft"]:
        assert row["video_path"] in release.train_clips
    for row in release.rows["rl"]:
        assert len(row["videos"]) == 1 and row["videos"][0] in release.train_clips
    for row in release.rows["eval"]:
        assert (release.root / EVAL_DIR / row["video_path"].removeprefix("./")).is_file()
    used = {r["video_path"] for r in release.rows["sft"]} | {r["videos"][0] for r in release.rows["rl"]}
    assert used == set(release.train_clips), "every archived clip is used by some row"


# --- rows -----------------------------------------------------------------------------------------------


def check_lettered(options: list[str]) -> None:
    assert [o[:3] for o in options] == [f"{LETTERS[i]}. " for i in range(len(options))]


def test_training_rows_carry_the_fields_the_official_loaders_read(release: Release) -> None:
    for kind, id_key in (("sft", "id"), ("rl", "problem_id")):
        ids = [row[id_key] for row in release.rows[kind]]
        assert len(set(ids)) == len(ids)
        for row in release.rows[kind]:
            assert set(LABELS + PROVENANCE) <= set(row)
            assert row["problem_type"] in ("multiple choice", "open-ended")
            assert re.fullmatch(r"<answer>[^<]+</answer>", row["solution"])
            assert bool(row["options"]) == (row["problem_type"] == "multiple choice")
            check_lettered(row["options"])
            if kind == "sft":
                assert re.fullmatch(r"<think>[^<]{40,}</think>", row["think"])
            else:
                assert "think" not in row and "video_path" not in row


def test_eval_rows_use_the_official_variants(release: Release) -> None:
    rows = release.rows["eval"]
    assert {row["dataset"] for row in rows} == EVAL_SOURCES
    assert {row["origin"] for row in rows} == {"retained", "re-annotated"}
    assert len({row["id"] for row in rows}) == len(rows)
    variants: Counter[str] = Counter()
    for row in rows:
        assert set(LABELS + PROVENANCE) <= set(row) and row["subject"]
        options = row.get("option", row.get("options"))
        answer = row.get("solution", row.get("answer"))
        if row["problem_type"] == "multiple-choice":
            if isinstance(options, dict):
                assert "".join(options) == LETTERS[: len(options)]
            else:
                check_lettered(options)
            assert answer in LETTERS[: len(options)]
            variants["option" if "option" in row else "options"] += 1
            variants[type(options).__name__] += 1
            variants["answer" if "answer" in row else "solution"] += 1
        else:
            assert row["problem_type"] == "open-ended" and not options
    assert variants["option"] and variants["options"] and variants["dict"] and variants["list"]
    assert variants["answer"] and variants["solution"]
    assert any(row["video_path"].startswith("./") for row in rows)


def test_rows_become_canonical_records_with_answers_among_the_options(release: Release) -> None:
    for kind, records in release.records.items():
        assert len(records) == len(release.rows[kind])
        for record in records:
            if record.is_multiple_choice:
                assert 4 <= len(record.options) <= 10 and record.answer in LETTERS[: len(record.options)]
            else:
                assert record.options == [] and len(record.answer.split()) <= 4
            assert record.duration_s and 3 <= record.duration_s <= 8
            assert record.license in ("CC0-1.0", "CC-BY-3.0") and record.attribution
    assert max(len(r.options) for r in release.records["eval"]) > 5, "some evaluation rows run past E"


def test_coverage_of_skills_disciplines_subjects_and_problem_types(release: Release) -> None:
    for kind, records in release.records.items():
        assert {r.skill for r in records} == set(SKILLS), kind
        assert {r.discipline for r in records} == set(DISCIPLINES), kind
        assert {r.problem_type for r in records} == {"multiple choice", "open-ended"}, kind
    everything = [r for records in release.records.values() for r in records]
    assert len({r.subject for r in everything}) >= 12
    for discipline in DISCIPLINES:
        assert len({r.subject for r in everything if r.discipline == discipline}) >= 3, discipline
    assert all(r.knowledge_point for r in everything if r.skill != "VidR")
    clips = {kind: {r.video for r in records} for kind, records in release.records.items()}
    assert 20 <= len(clips["sft"]) <= 30 and 15 <= len(clips["rl"]) <= 20 and 12 <= len(clips["eval"]) <= 15
    per_clip = Counter(r.video for r in everything)
    assert set(per_clip.values()) <= {2, 3}


def test_rationales_derive_the_answer_they_end_on(release: Release) -> None:
    for record in release.records["sft"]:
        assert record.think is not None
        if record.is_multiple_choice:
            assert record.think.endswith(f"That is option {record.answer}.")
        else:
            assert re.search(rf"(?<![\d.]){re.escape(record.answer)}(?![\d])", record.think), record.id


def test_videos_are_disjoint_across_sft_rl_and_eval(release: Release) -> None:
    paths = {kind: {r.video for r in records} for kind, records in release.records.items()}
    hashes = {
        kind: {hashlib.sha256(release.clip(kind, r)).hexdigest() for r in records}
        for kind, records in release.records.items()
    }
    names = {kind: {Path(p).name for p in paths[kind]} for kind in paths}
    for a, b in (("sft", "rl"), ("sft", "eval"), ("rl", "eval")):
        assert not hashes[a] & hashes[b] and not names[a] & names[b], (a, b)


# --- determinism --------------------------------------------------------------------------------------


def test_same_seed_is_byte_identical_another_differs_and_a_rerun_replaces_it(
    sample_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "corpus"
    assert cli_main(["sample", str(out), "--seed", "1"]) == 0
    table = capsys.readouterr().out
    assert "VideoKR-COT-201K.jsonl" in table and "MB on disk" in table
    reference, other = digests(sample_corpus), digests(out)
    for name in (*FILES.values(), f"{VIDEOS}/videos_0000.tar", f"{VIDEOS}/videos_0002.tar.part.aa"):
        assert reference[name] != other[name], name
    corpus = generate_sample_corpus(out, seed=0)
    assert digests(out) == reference, "same seed, same bytes, and nothing left over from seed 1"
    assert corpus.rows == {kind: len(read_jsonl(sample_corpus / name)) for kind, name in FILES.items()}
    assert corpus.files["eval"] == out / FILES["eval"] and len(corpus.archives) == 4


# --- answers, recounted from the pixels ---------------------------------------------------------------


def runs(values: list[bool]) -> int:
    """How many separate stretches of True."""
    return sum(1 for i, v in enumerate(values) if v and (i == 0 or not values[i - 1]))


def test_flash_counts_match_the_decoded_metronome(release: Release) -> None:
    checked = 0
    for kind, record in release.rows_asking("How many times does the light flash", "Music"):
        frames = decode(release.clip(kind, record))
        x, y = LAMP
        lamp = frames[:, y - 6 : y + 7, x - 6 : x + 7].mean(axis=(1, 2, 3))
        assert runs([bool(v > 150) for v in lamp]) == int(record.answer_text), record.id
        checked += 1
    assert checked >= 2


def flame_sequence(frames: np.ndarray) -> list[str]:
    """The colours the flame takes over the clip, one entry per sample, read from a patch of the flame."""
    palette = {name: rgb for name, rgb in FLAME_COLOURS.values()} | {"blue": BURNER_BLUE}
    names = list(palette)
    references = np.array([palette[n] for n in names], dtype=float)
    colours = frames[:, FLAME_PATCH[0], FLAME_PATCH[1]].reshape(len(frames), -1, 3).mean(axis=1)
    nearest = [names[int(np.argmin(np.linalg.norm(references - c, axis=1)))] for c in colours]
    sequence = [n for i, n in enumerate(nearest) if i == 0 or n != nearest[i - 1]]
    return [n for n in sequence if n != "blue"]


def test_flame_colour_order_and_sample_counts_match_the_decoded_flames(release: Release) -> None:
    checked = 0
    for kind, record in release.rows_asking("", "Chemistry"):
        sequence = flame_sequence(decode(release.clip(kind, record)))
        assert len(sequence) in (3, 4) and len(set(sequence)) == len(sequence)
        after = re.search(r"immediately after the (\S+) flame", record.question)
        if after:
            assert sequence[sequence.index(after.group(1)) + 1] == record.answer_text, record.id
            checked += 1
        elif "How many different samples" in record.question:
            assert len(sequence) == int(record.answer_text), record.id
            checked += 1
        elif "Which element" in record.question:
            ordinal = re.search(r"the (\w+) sample", record.question).group(1)  # type: ignore[union-attr]
            position = ["first", "second", "third", "fourth"].index(ordinal)
            assert FLAME_COLOURS[record.answer_text][0] == sequence[position], record.id
            checked += 1
    assert checked >= 4


def test_swing_counts_match_the_decoded_pendulum(release: Release) -> None:
    checked = 0
    for kind, record in release.rows_asking("How many complete back-and-forth swings", "Physics"):
        frames = decode(release.clip(kind, record)).astype(int)
        bob = (frames.max(axis=3) - frames.min(axis=3)) > 80
        xs = np.array([np.nonzero(mask)[1].mean() for mask in bob]) - 96
        side = np.sign(xs[0])
        last = len(xs) - 1
        returns = [
            i
            for i in range(1, len(xs))
            if xs[i] * side > 0
            and (xs[i] - xs[i - 1]) * side > 0
            and (i == last or (xs[i] - xs[i + 1]) * side > 0)
        ]
        assert len(returns) == int(record.answer_text), record.id
        checked += 1
    assert checked >= 1


def test_qrs_counts_match_the_decoded_scrolling_ecg(release: Release) -> None:
    newest = round(ECG_PX_PER_S / FPS)  # columns that scroll in per frame
    checked = 0
    for kind, record in release.rows_asking("How many QRS complexes", "Cardiology"):
        frames = decode(release.clip(kind, record)).astype(int)
        strip = np.concatenate([frame[:, -newest:] for frame in frames], axis=1)
        green = (strip[..., 1] > 120) & (strip[..., 1] > strip[..., 0] + 60)
        tops = [ECG_BASELINE - int(np.argmax(col)) if col.any() else 0 for col in green.T]
        assert runs([t > 30 for t in tops]) == int(record.answer_text), record.id
        checked += 1
    assert checked >= 1


def test_shot_counts_match_the_cuts_in_the_real_clips(release: Release) -> None:
    checked = 0
    for kind, record in release.rows_asking(SHOT_QUESTION):
        grey = decode(release.clip(kind, record), "gray").astype(float)
        cuts = int((np.abs(np.diff(grey, axis=0)).mean(axis=(1, 2)) > 25).sum())
        assert cuts + 1 == int(record.answer_text), record.id
        checked += 1
    assert checked == 2


# --- real clips ---------------------------------------------------------------------------------------


def test_real_clips_decode_and_carry_their_licences(release: Release) -> None:
    clips = real_clips()
    assert [c.name for c in clips] == ["bigbuckbunny", "city"]
    notice = (ASSETS / "LICENSES.md").read_text(encoding="utf-8")
    for clip in clips:
        data = clip.path.read_bytes()
        assert len(data) <= 300_000
        frames = decode(data)
        assert frames.shape == (clip.frames, clip.height, clip.width, 3)
        assert frames.std() > 10
        with av.open(str(clip.path)) as container:
            assert bool(container.streams.audio) == clip.audio
        assert clip.license in ("CC-BY-3.0", "CC0-1.0") and clip.license_url.startswith("https://")
        assert clip.path.name in notice and clip.attribution
        in_rows = [r for r in release.records["sft"] if release.clip("sft", r) == data]
        assert in_rows and all(
            (r.license, r.creator, r.attribution, r.source_url)
            == (clip.license, clip.creator, clip.attribution, clip.source_url)
            for r in in_rows
        )
    assert clips[0].license == "CC-BY-3.0" and clips[0].creator == "Blender Foundation"
