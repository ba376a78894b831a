"""The learning corpus: deterministic, balanced, disjoint, and its ``needs`` labels proven from the pixels.

The truth checks read the written MP4s back and answer with trivial pixel oracles that know nothing of
how a clip was made beyond the palette's names: a ``single_frame`` item must be answered right from
*every* one of its frames alone; a ``multi_frame`` item must be answered right from its frames in
order, and the same frames in another order (the very same frames, so one random frame of either clip
is distributed identically) must give another of its options, so no reader of one frame can be right on
both; a ``text`` item must be answered from its question text alone.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
from collections import Counter
from pathlib import Path
from typing import Any

import av
import datasets
import numpy as np
import pytest

import videokr_eval
from videokr.data.hub import build_repo
from videokr.data.records import LETTERS, parse_row, read_records
from videokr.errors import RecordError
from videokr.sample.learning import COLOURS, FAMILIES, generate_learning_corpus

SIZES = {"sft": 16, "rl": 8, "eval": 48}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory):
    return generate_learning_corpus(tmp_path_factory.mktemp("learning"), seed=5, rows_per_family=SIZES)


def rows_of(corpus: Any, kind: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in corpus.files[kind].read_text().splitlines()]


def answer_text(row: dict[str, Any]) -> str:
    letter = re.sub(r"</?answer>", "", row["solution"])
    return row["options"][LETTERS.index(letter)].split(". ", 1)[1]


def option_texts(row: dict[str, Any]) -> list[str]:
    return [o.split(". ", 1)[1] for o in row["options"]]


def train_clips(corpus: Any) -> dict[str, bytes]:
    """Every clip in the training tars (split ones joined, as a user would), by member path."""
    out: dict[str, bytes] = {}
    videos = corpus.train_root / "Videos"
    stems = sorted({p.name.split(".tar")[0] for p in videos.glob("videos_*.tar*")})
    for stem in stems:
        parts = sorted(videos.glob(f"{stem}.tar.part.*")) or [videos / f"{stem}.tar"]
        with tarfile.open(fileobj=io.BytesIO(b"".join(p.read_bytes() for p in parts))) as tar:
            for member in tar.getmembers():
                if member.isfile():
                    out[member.name] = tar.extractfile(member).read()  # type: ignore[union-attr]
    return out


def decode(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


# ------------------------------------------------------------------------------------------ pixel oracles


def square(frame: np.ndarray) -> np.ndarray:
    """The coloured pixels: the background is grey, so saturation finds the square."""
    f = frame.astype(int)
    return (f.max(axis=2) - f.min(axis=2)) > 60


def colour_of(frame: np.ndarray) -> str | None:
    mask = square(frame)
    if mask.sum() < 20:
        return None
    mean = np.median(frame[mask].astype(float), axis=0)
    return min(COLOURS, key=lambda name: float(np.sum((mean - np.array(COLOURS[name])) ** 2)))


def centre(frame: np.ndarray) -> tuple[float, float]:
    ys, xs = np.nonzero(square(frame))
    return float(xs.mean()), float(ys.mean())


def quadrant(frame: np.ndarray) -> str:
    x, y = centre(frame)
    half = frame.shape[0] / 2
    return f"{'top' if y < half else 'bottom'} {'left' if x < half else 'right'}"


def direction(frames: list[np.ndarray]) -> str:
    (x0, y0), (x1, y1) = centre(frames[0]), centre(frames[-1])
    if abs(x1 - x0) >= abs(y1 - y0):
        return "right" if x1 > x0 else "left"
    return "down" if y1 > y0 else "up"


def flashes(frames: list[np.ndarray]) -> str:
    on = [colour_of(f) is not None for f in frames]
    return str(sum(1 for t, o in enumerate(on) if o and (t == 0 or not on[t - 1])))


MULTI_FRAME_ORACLES = {
    "direction": direction,
    "order": lambda frames: colour_of(frames[0]),
    "last": lambda frames: colour_of(frames[-1]),
    "count": flashes,
}
SINGLE_FRAME_ORACLES = {"colour": colour_of, "position": quadrant}


def reorderings(frames: list[np.ndarray]) -> list[list[np.ndarray]]:
    """The same frames in other orders: backwards, rotated by quarters, and shown-frames-first/alternating."""
    n = len(frames)
    out = [frames[::-1]] + [frames[k:] + frames[:k] for k in range(n // 4, n, n // 4)]
    shown = [f for f in frames if colour_of(f) is not None]
    blank = [f for f in frames if colour_of(f) is None]
    if shown and blank and len(shown) == len(blank):
        out += [shown + blank, [f for pair in zip(shown, blank, strict=True) for f in pair]]
    return out


# ---------------------------------------------------------------------------------------------- tests


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    small = {"sft": 8, "rl": 4, "eval": 4}

    def files(root: Path) -> dict[str, str]:
        return {
            p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*"))
            if p.is_file()
        }

    a = generate_learning_corpus(tmp_path / "a", seed=1, rows_per_family=small)
    b = generate_learning_corpus(tmp_path / "b", seed=1, rows_per_family=small)
    c = generate_learning_corpus(tmp_path / "c", seed=2, rows_per_family=small)
    assert files(a.root) == files(b.root)
    assert a.files["eval"].read_bytes() != c.files["eval"].read_bytes()
    assert a.rows == {"sft": 64, "rl": 32, "eval": 32} and a.clips == {"sft": 48, "rl": 24, "eval": 24}
    with pytest.raises(ValueError, match="multiple of 4"):
        generate_learning_corpus(tmp_path / "d", rows_per_family={"eval": 6})


def test_families_choose_the_questions(tmp_path: Path) -> None:
    """A chosen subset gives exactly those families, balanced as ever; a typo or a text-only choice (its
    items would have no clip to borrow) is refused before anything is written."""
    made = generate_learning_corpus(
        tmp_path / "a", seed=1, rows_per_family={"sft": 8, "rl": 4, "eval": 4}, families=["last", "stated"]
    )
    assert made.families == {
        "sft": {"last": 8, "stated": 8},
        "rl": {"last": 4, "stated": 4},
        "eval": {"last": 4, "stated": 4},
    }
    assert made.clips == {"sft": 8, "rl": 4, "eval": 4}
    assert "families: last (multi_frame), stated (text)" in made.summary()
    for families, message in ((["colour", "shape"], "shape"), (["stated"], "visual family")):
        with pytest.raises(ValueError, match=message):
            generate_learning_corpus(tmp_path / "b", families=families)
        assert not (tmp_path / "b").exists()


def test_letters_and_values_are_balanced_per_family(corpus: Any) -> None:
    for kind in ("sft", "rl", "eval"):
        rows = rows_of(corpus, kind)
        for family in FAMILIES.values():
            mine = [r for r in rows if r["subject"] == family.name]
            assert len(mine) == SIZES[kind]
            assert {r["needs"] for r in mine} == {family.needs}
            letters = Counter(re.sub(r"</?answer>", "", r["solution"]) for r in mine)
            assert letters == {letter: SIZES[kind] // 4 for letter in "ABCD"}, (kind, family.name)
            values = Counter(answer_text(r) for r in mine)
            assert values == {value: SIZES[kind] // 4 for value in family.values}, family.name


def test_text_alone_is_at_chance_on_visual_families(corpus: Any) -> None:
    """Every visual question of a family is one sentence with the same four options in the same order,
    and each option is the answer a quarter of the time: a reader of the text has nothing to go on. The
    letter names the value (options in a fixed order), so what is learned is the value, not a search."""
    for kind in ("sft", "rl", "eval"):
        rows = rows_of(corpus, kind)
        for family in FAMILIES.values():
            mine = [r for r in rows if r["subject"] == family.name]
            assert {tuple(option_texts(r)) for r in mine} == {family.values}, (kind, family.name)
            if family.needs != "text":
                assert len({r["question"] for r in mine}) == 1
            answered = Counter(answer_text(r) for r in mine)
            assert set(answered.values()) == {len(mine) // 4}, (kind, family.name)


def test_no_clip_is_in_two_splits_and_every_row_has_its_clip(corpus: Any) -> None:
    train = train_clips(corpus)
    evaluation = {
        p.relative_to(corpus.eval_root).as_posix(): p.read_bytes() for p in corpus.eval_root.rglob("*.mp4")
    }
    by_split: dict[str, set[str]] = {}
    for kind in ("sft", "rl", "eval"):
        paths = {r.get("video_path") or r["videos"][0] for r in rows_of(corpus, kind)}
        assert paths <= set(evaluation if kind == "eval" else train), kind
        by_split[kind] = paths
    assert not by_split["sft"] & by_split["rl"]
    assert not (by_split["sft"] | by_split["rl"]) & by_split["eval"]
    names = [Path(p).stem for p in [*train, *evaluation]]
    assert len(names) == len(set(names))
    digests = [hashlib.sha256(b).hexdigest() for b in [*train.values(), *evaluation.values()]]
    assert len(digests) == len(set(digests))  # no clip's bytes twice, in any split


def test_needs_labels_are_true_by_the_pixels(corpus: Any) -> None:
    rows = rows_of(corpus, "eval")
    checked: Counter[str] = Counter()
    visual_clips = {r["video_path"] for r in rows if r["needs"] != "text"}
    for row in rows:
        family, answer, options = row["subject"], answer_text(row), option_texts(row)
        if row["needs"] == "text":
            numbers = re.fullmatch(r"What is (\d+) \+ (\d+)\?", row["question"])
            stated = re.search(r"named (\w+)\.", row["question"])
            read = str(int(numbers[1]) + int(numbers[2])) if numbers else stated[1] if stated else None
            assert read == answer, row
            assert row["video_path"] in visual_clips  # its clip belongs to a visual question
            checked["text"] += 1
            continue
        frames = decode(corpus.eval_root / row["video_path"])
        assert len(frames) == 8 and frames[0].shape == (56, 56, 3)
        if row["needs"] == "single_frame":
            oracle = SINGLE_FRAME_ORACLES[family]
            assert [oracle(f) for f in frames] == [answer] * len(frames), row["id"]
        else:
            assert row["needs"] == "multi_frame"
            oracle = MULTI_FRAME_ORACLES[family]
            assert oracle(frames) == answer, row["id"]
            others = {oracle(order) for order in reorderings(frames)} - {answer}
            assert others & set(options), (row["id"], family)  # same frames, another answer
        checked[row["needs"]] += 1
    assert checked == {"text": 96, "single_frame": 96, "multi_frame": 192}


def test_needs_travels_through_records_and_the_built_eval_dataset(corpus: Any, tmp_path: Path) -> None:
    report = read_records(corpus.files["eval"], "eval")
    assert report.ok and Counter(r.needs for r in report.records) == corpus.needs["eval"]
    assert read_records(corpus.files["sft"], "sft").ok and read_records(corpus.files["rl"], "rl").ok
    row = {"id": "x", "video_path": "a.mp4", "question": "q?", "options": ["A. a", "B. b"], "answer": "A"}
    assert parse_row(row | {"needs": "Single-frame"}, "eval").needs == "single_frame"
    assert parse_row(row, "eval").needs is None
    with pytest.raises(RecordError, match="needs"):
        parse_row(row | {"needs": "two frames"}, "eval")

    out = tmp_path / "videokr_eval"
    built = build_repo(videokr_eval.SPEC, corpus.root, out, workers=1, progress=False)
    assert built.problems == [] and built.rows_written == corpus.rows["eval"]
    split = datasets.load_dataset(str(out), split="test", cache_dir=str(tmp_path / "cache"))
    source = {r.id: r.needs for r in report.records}
    assert {row_id: needs for row_id, needs in zip(split["id"], split["needs"], strict=True)} == source
    assert "What answering needs" in (out / "README.md").read_text()
