"""A learning corpus: procedural clips a tiny model can learn from, with what each question needs as truth.

The sample corpus (`videokr.sample.corpus`) looks like the release; this one is made to be *learned*, and
to check the probes against known truth. Every clip is ``frames`` frames (default 8) of ``size``×``size``
pixels (default 56, two 28-pixel Qwen2.5-VL tokens a side) on a flat grey background, showing one
coloured square (``SIDE`` pixels) of a six-colour palette. Every family has exactly four answer values,
and every question offers those four, always in the same order (as a test lists ordered or numeric
options in their natural order), so the letter names the value: what a model must learn is the value
from the clip or the text, not a search of the options. Each row records what answering it needs in the
``needs`` field:

``single_frame`` (any one frame answers it; the square is the same in every frame)
    ``colour``: what colour (of four) is the (moving) square; ``position``: which quadrant the (still)
    square is in.
``multi_frame`` (no single frame answers it: the same frames in another order answer differently)
    ``direction``: which way the square moves (it crosses the frame; played backwards it moves the other
    way); ``order`` and ``last``: which of four colours the square shows first, or last (each shown for
    a quarter of the clip; rotated, another comes first or last); ``count``: how many times the square
    flashes on (always on in half the frames, in 1–4 runs; rearranged, the count changes).
``text`` (the question alone answers it; the clip is borrowed from another item of the split)
    ``arithmetic``: the sum of two numbers (5 to 8); ``stated``: one of four names, the question states
    which.

Guessing and text-only sit at chance on the visual families: per family the answer values, and so the
letters, are exactly balanced (each of A–D equally often; sizes must be multiples of 4), and every
visual question of a family is the same sentence with the same four options.

The corpus is written in the release layout `videokr build` reads, like the sample corpus: SFT and RL
JSONL plus clips in tars under ``VideoKR-Train/`` (the last tar split into parts), the evaluation JSONL
and loose clips under ``VideoKR-Eval/``. SFT, RL and Eval items draw from disjoint seed streams, and no
clip (by name or by pixels) is in two splits or used by two visual items. The same seed gives the same
bytes. A few thousand rows take seconds.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from videokr.atomic import write_bytes_atomic
from videokr.data.records import LETTERS, MULTIPLE_CHOICE, NEEDS
from videokr.sample.archive import VIDEOS_DIR, write_release
from videokr.sample.encode import write_clip
from videokr.sample.options import lettered

__all__ = [
    "COLOURS",
    "DEFAULT_ROWS",
    "FAMILIES",
    "LEARN_DATASET",
    "Family",
    "LearningCorpus",
    "generate_learning_corpus",
    "learning_command",
]

TRAIN_DIR, EVAL_DIR = "VideoKR-Train", "VideoKR-Eval"
KINDS = ("sft", "rl", "eval")
#: Rows per family and split by default: 8 families → 2,048 SFT, 512 RL and 256 Eval rows.
DEFAULT_ROWS: dict[str, int] = {"sft": 256, "rl": 64, "eval": 32}
LEARN_DATASET = "VideoKR-Learn"
FRAMES, SIZE, SIDE = 8, 56, 14
CLIP_SECONDS = 2.0
CLIPS_PER_ARCHIVE = 500
N_OPTIONS = 4
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 190, 60),
    "blue": (50, 90, 235),
    "yellow": (235, 215, 40),
    "purple": (150, 60, 210),
    "orange": (245, 140, 20),
}
BACKGROUNDS = range(0, 49)  # grey levels: unsaturated, so the square is the only colour in a frame
DIRECTIONS = ("left", "right", "up", "down")
QUADRANTS = ("top left", "top right", "bottom left", "bottom right")
COUNTS = ("1", "2", "3", "4")
ANSWER_COLOURS = ("red", "green", "blue", "yellow")  # the colour and order families' four values
SUMS = ("5", "6", "7", "8")
NAMES = ("Ada", "Bo", "Cyd", "Dot")
PROVENANCE = {
    "source_url": None,
    "creator": "videokr learning-corpus generator",
    "license": "CC0-1.0",
    "attribution": "Procedurally rendered by the videokr learning-corpus generator; dedicated to the public "
    "domain (CC0 1.0), no attribution required.",
}


@dataclass(frozen=True)
class Geometry:
    frames: int = FRAMES
    size: int = SIZE
    side: int = SIDE

    @property
    def stops(self) -> list[int]:
        """Where a crossing square stands in each frame; lanes use the same stops, so a frame of a
        horizontal crossing looks like one of a vertical crossing."""
        span = self.size - self.side
        return [round(t * span / (self.frames - 1)) for t in range(self.frames)]


@dataclass
class Item:
    """One question before it becomes a row: its texts, its clip (None for text items) and its truth."""

    family: str
    needs: str
    question: str
    answer: str
    think: str
    frames: np.ndarray | None


@dataclass(frozen=True)
class Family:
    """A question family: what it needs, how many answer values it balances, how it makes an item."""

    name: str
    needs: str
    values: tuple[str, ...]  # the four answer values, in the order the options list them
    make: Callable[[np.random.Generator, str, Geometry], Item]


def _canvas(rng: np.random.Generator, g: Geometry) -> np.ndarray:
    level = int(rng.choice(BACKGROUNDS))
    return np.full((g.frames, g.size, g.size, 3), level, dtype=np.uint8)


def _paint(frame: np.ndarray, colour: str, x: int, y: int, side: int) -> None:
    frame[y : y + side, x : x + side] = COLOURS[colour]


def _other(values: tuple[str, ...], answer: str, rng: np.random.Generator, k: int = 3) -> list[str]:
    others = [v for v in values if v != answer]
    return [others[i] for i in rng.permutation(len(others))[:k]]


def _crossing(g: Geometry, direction: str, lane: int) -> list[tuple[int, int]]:
    stops = g.stops
    forward = direction in ("right", "down")
    path = stops if forward else stops[::-1]
    return [(p, lane) if direction in ("left", "right") else (lane, p) for p in path]


def _colour_item(rng: np.random.Generator, value: str, g: Geometry) -> Item:
    frames = _canvas(rng, g)
    direction, lane = str(rng.choice(DIRECTIONS)), int(rng.choice(g.stops))
    for frame, (x, y) in zip(frames, _crossing(g, direction, lane), strict=True):
        _paint(frame, value, x, y, g.side)
    return Item(
        "colour",
        "single_frame",
        "What colour is the square?",
        value,
        f"It is {value}.",
        frames,
    )


def _position_item(rng: np.random.Generator, value: str, g: Geometry) -> Item:
    frames = _canvas(rng, g)
    half = g.size // 2
    top, left = value.startswith("top"), value.endswith("left")
    x = int(rng.integers(0, half - g.side + 1)) + (0 if left else half)
    y = int(rng.integers(0, half - g.side + 1)) + (0 if top else half)
    colour = str(rng.choice(list(COLOURS)))
    for frame in frames:
        _paint(frame, colour, x, y, g.side)
    return Item(
        "position",
        "single_frame",
        "Where in the frame is the square?",
        value,
        f"It is in the {value}.",
        frames,
    )


def _direction_item(rng: np.random.Generator, value: str, g: Geometry) -> Item:
    frames = _canvas(rng, g)
    colour, lane = str(rng.choice(list(COLOURS))), int(rng.choice(g.stops))
    for frame, (x, y) in zip(frames, _crossing(g, value, lane), strict=True):
        _paint(frame, colour, x, y, g.side)
    return Item(
        "direction",
        "multi_frame",
        "Which way does the square move?",
        value,
        f"It moves {value}.",
        frames,
    )


def _spot(rng: np.random.Generator, g: Geometry) -> tuple[int, int]:
    return int(rng.integers(0, g.size - g.side + 1)), int(rng.integers(0, g.size - g.side + 1))


def _order_item(rng: np.random.Generator, value: str, g: Geometry) -> Item:
    frames = _canvas(rng, g)
    sequence = [value, *_other(ANSWER_COLOURS, value, rng)]
    x, y = _spot(rng, g)
    quarter = g.frames // 4
    for t, frame in enumerate(frames):
        _paint(frame, sequence[t // quarter], x, y, g.side)
    return Item(
        "order",
        "multi_frame",
        "Which colour does the square show first?",
        value,
        f"It is {value} first.",
        frames,
    )


def _last_item(rng: np.random.Generator, value: str, g: Geometry) -> Item:
    """The order family played backwards: the asked colour is the last of four, not the first."""
    item = _order_item(rng, value, g)
    assert item.frames is not None
    return Item(
        "last",
        "multi_frame",
        "Which colour does the square show last?",
        value,
        f"It is {value} last.",
        item.frames[::-1].copy(),
    )


def runs(pattern: tuple[bool, ...] | list[bool]) -> int:
    """How many separate runs of `True` (the square flashing on) a frame pattern has."""
    return sum(1 for t, on in enumerate(pattern) if on and (t == 0 or not pattern[t - 1]))


def _flash_patterns(frames: int) -> dict[int, list[tuple[bool, ...]]]:
    """Every pattern with the square on in exactly half the frames, by its number of flashes."""
    out: dict[int, list[tuple[bool, ...]]] = {}
    for on in itertools.combinations(range(frames), frames // 2):
        pattern = tuple(t in on for t in range(frames))
        out.setdefault(runs(pattern), []).append(pattern)
    return out


def _count_item(rng: np.random.Generator, value: str, g: Geometry) -> Item:
    frames = _canvas(rng, g)
    patterns = _flash_patterns(g.frames)[int(value)]
    pattern = patterns[int(rng.integers(len(patterns)))]
    colour, (x, y) = str(rng.choice(list(COLOURS))), _spot(rng, g)
    for frame, on in zip(frames, pattern, strict=True):
        if on:
            _paint(frame, colour, x, y, g.side)
    times = "time" if value == "1" else "times"
    return Item(
        "count",
        "multi_frame",
        "How many times does the square flash on?",
        value,
        f"It flashes {value} {times}.",
        frames,
    )


def _arithmetic_item(rng: np.random.Generator, value: str, g: Geometry) -> Item:
    total = int(value)
    a = int(rng.integers(1, total))
    b = total - a
    return Item(
        "arithmetic",
        "text",
        f"What is {a} + {b}?",
        value,
        f"{a} + {b} = {total}.",
        None,
    )


def _stated_item(rng: np.random.Generator, value: str, g: Geometry) -> Item:
    return Item(
        "stated",
        "text",
        f"The square in this clip is named {value}. What is the square named?",
        value,
        f"It is named {value}.",
        None,
    )


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family("colour", "single_frame", ANSWER_COLOURS, _colour_item),
        Family("position", "single_frame", QUADRANTS, _position_item),
        Family("direction", "multi_frame", DIRECTIONS, _direction_item),
        Family("order", "multi_frame", ANSWER_COLOURS, _order_item),
        Family("count", "multi_frame", COUNTS, _count_item),
        Family("arithmetic", "text", SUMS, _arithmetic_item),
        Family("stated", "text", NAMES, _stated_item),
        Family("last", "multi_frame", ANSWER_COLOURS, _last_item),
    )
}
assert all(f.needs in NEEDS and len(f.values) == N_OPTIONS for f in FAMILIES.values())


@dataclass
class Row:
    kind: str
    item: Item
    letter: str
    options: list[str]
    clip: str  # the clip's name (visual items own theirs; text items borrow one)
    path: str = ""


@dataclass(frozen=True)
class LearningCorpus:
    """Where a generated learning corpus lies and what it holds, by split (``sft``, ``rl``, ``eval``)."""

    root: Path
    train_root: Path
    eval_root: Path
    seed: int
    files: dict[str, Path]
    rows: dict[str, int]
    clips: dict[str, int]
    families: dict[str, dict[str, int]]
    needs: dict[str, dict[str, int]]
    archives: tuple[Path, ...]
    seconds: float

    def summary(self) -> str:
        lines = [f"VideoKR learning corpus, seed {self.seed}, in {self.root}"]
        header = f"  {'split':<5} {'rows':>5} {'clips':>6} " + " ".join(f"{n:>12}" for n in NEEDS)
        lines += [header, "  " + "-" * (len(header) - 2)]
        for kind in KINDS:
            counts = " ".join(f"{self.needs[kind].get(n, 0):>12}" for n in NEEDS)
            lines.append(f"  {kind:<5} {self.rows[kind]:>5} {self.clips[kind]:>6} {counts}")
        names = self.families["eval"] or self.families["sft"]
        lines.append("  families: " + ", ".join(f"{f} ({FAMILIES[f].needs})" for f in names))
        lines.append(f"  generated in {self.seconds:.1f} s")
        return "\n".join(lines)


def _clip_name(seed: int, kind: str, family: str, index: int, attempt: int) -> str:
    digest = hashlib.sha256(f"videokr-learning:{seed}:{kind}:{family}:{index}:{attempt}".encode()).digest()
    name = base64.urlsafe_b64encode(digest).decode()[:11]
    return name if name[0].isalnum() else "v" + name[1:]


def _plan(
    seed: int,
    rows_per_family: Mapping[str, int],
    families: Sequence[str],
    g: Geometry,
    encode: Callable[[np.ndarray], bytes],
) -> tuple[list[Row], dict[str, bytes]]:
    """Every row and every clip's encoded bytes, from the seed; each split and family has its own seed
    stream (seeded by its place in `FAMILIES`, whichever families are chosen). Clips are told apart by
    their encoded bytes, not their pixels: two renderings a grey level apart can encode to the same
    file, and `videokr build` would then (rightly) keep the rows of one split out as overlapping
    another."""
    clips: dict[str, bytes] = {}
    seen: set[bytes] = set()
    rows: list[Row] = []
    for code, kind in enumerate(KINDS, start=1):
        count = rows_per_family[kind]
        if count % N_OPTIONS:
            raise ValueError(f"{kind}: rows per family must be a multiple of {N_OPTIONS}, got {count}")
        text_rows: list[Row] = []
        own: list[str] = []
        for family_code, family in enumerate(FAMILIES.values()):
            if family.name not in families:
                continue
            options = list(family.values)
            for index in range(count):
                value = family.values[index % N_OPTIONS]
                letter = LETTERS[index % N_OPTIONS]
                for attempt in itertools.count():
                    rng = np.random.default_rng([seed, code, family_code, index, attempt])
                    item = family.make(rng, value, g)
                    if item.frames is None:
                        break
                    data = encode(item.frames)
                    digest = hashlib.sha256(data).digest()
                    if digest not in seen:  # no two visual items, in any split, share a clip's bytes
                        seen.add(digest)
                        break
                if item.frames is None:
                    text_rows.append(Row(kind, item, letter, list(options), ""))
                    continue
                name = _clip_name(seed, kind, family.name, index, attempt)
                clips[name] = data
                own.append(name)
                rows.append(Row(kind, item, letter, list(options), name))
        borrow = np.random.default_rng([seed, code, 0])
        for row in text_rows:
            row.clip = own[int(borrow.integers(len(own)))]
        rows += text_rows
    return rows, clips


def _labels(row: Row, duration: float) -> dict[str, Any]:
    return (
        {
            "skill": "VidR",
            "subject": row.item.family,
            "knowledge_point": f"{row.item.family} ({row.item.needs})",
            "needs": row.item.needs,
        }
        | PROVENANCE
        | {"duration": duration}
    )


def _release_rows(rows: list[Row], seed: int, duration: float) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {kind: [] for kind in KINDS}
    for kind in KINDS:
        mine = [r for r in rows if r.kind == kind]
        order = np.random.default_rng([seed, 9, KINDS.index(kind)]).permutation(len(mine))
        for n, i in enumerate(order, start=1):
            row = mine[i]
            base: dict[str, Any]
            if kind == "sft":
                base = {"id": f"cot-{n:06d}", "data_type": "video", "video_path": row.path}
            elif kind == "rl":
                base = {"problem_id": f"rl-{n:06d}", "data_type": "video"}
            else:
                base = {"id": f"learn_{n:04d}", "video_path": row.path}
            base |= {"question": row.item.question, "options": lettered(row.options)}
            if kind == "eval":
                base |= {"problem_type": "multiple-choice", "solution": row.letter, "dataset": LEARN_DATASET}
            else:
                base |= {"problem_type": MULTIPLE_CHOICE, "solution": f"<answer>{row.letter}</answer>"}
            if kind == "sft":
                base["think"] = f"<think>{row.item.think}</think>"
            if kind == "rl":
                base["videos"] = [row.path]
            out[kind].append(base | _labels(row, duration))
    return out


def generate_learning_corpus(
    out_dir: Path,
    *,
    seed: int = 0,
    rows_per_family: Mapping[str, int] | None = None,
    frames: int = FRAMES,
    size: int = SIZE,
    families: Sequence[str] | None = None,
) -> LearningCorpus:
    """Render and write the learning corpus under ``out_dir``; the same arguments give the same bytes.

    ``rows_per_family`` (default `DEFAULT_ROWS`) gives each split's rows per family, a multiple of 4.
    ``frames`` must be a multiple of 4 and at least 8 (the count family needs 1–4 flashes in half the
    frames); ``size`` even. ``families`` (default: all of `FAMILIES`) chooses the question families.
    Clips play for two seconds. Re-running into the same folder replaces the
    clips an earlier run wrote there.
    """
    started = time.perf_counter()
    if frames < 8 or frames % 4:
        raise ValueError(f"frames must be a multiple of 4 and at least 8, got {frames}")
    if size % 2 or size < 2 * SIDE:
        raise ValueError(f"size must be even and at least {2 * SIDE}, got {size}")
    sizes = dict(DEFAULT_ROWS) | dict(rows_per_family or {})
    chosen = list(FAMILIES) if families is None else list(families)
    unknown = sorted(set(chosen) - set(FAMILIES))
    if unknown or not chosen:
        raise ValueError(f"unknown or no families {unknown}; choose from {', '.join(FAMILIES)}")
    if not any(FAMILIES[f].needs != "text" for f in chosen):
        raise ValueError("choose at least one visual family: text items borrow a visual item's clip")
    g = Geometry(frames, size, SIDE if size >= 4 * SIDE else size // 4)
    fps = frames / CLIP_SECONDS
    with tempfile.TemporaryDirectory(prefix="videokr-learning-") as staging:
        clip_file = Path(staging) / "clip.mp4"
        rows, clips = _plan(
            seed, sizes, chosen, g, lambda frames: write_clip(clip_file, list(frames), fps).read_bytes()
        )
    out_dir = Path(out_dir)
    train_root, eval_root = out_dir / TRAIN_DIR, out_dir / EVAL_DIR

    owners = {row.clip: row.kind for row in rows if row.item.frames is not None}
    train_clips = sorted(name for name, kind in owners.items() if kind != "eval")
    shuffle = np.random.default_rng([seed, 7]).permutation(len(train_clips))
    paths = {
        train_clips[i]: f"videos_{pos // CLIPS_PER_ARCHIVE:04d}/{train_clips[i]}.mp4"
        for pos, i in enumerate(shuffle)
    }
    paths |= {name: f"videos/learning/{name}.mp4" for name, kind in owners.items() if kind == "eval"}
    for row in rows:
        row.path = paths[row.clip]

    if (train_root / VIDEOS_DIR).is_dir():
        for stale in (train_root / VIDEOS_DIR).glob("videos_*.tar*"):
            stale.unlink()
    if (eval_root / "videos").is_dir():
        shutil.rmtree(eval_root / "videos")
    train_root.mkdir(parents=True, exist_ok=True)
    eval_root.mkdir(parents=True, exist_ok=True)
    archives: dict[str, list[tuple[str, bytes]]] = {}
    for name in sorted(clips):
        data = clips[name]
        if owners[name] == "eval":
            write_bytes_atomic(eval_root / paths[name], data)
        else:
            archives.setdefault(paths[name].split("/")[0], []).append((paths[name], data))
    release = _release_rows(rows, seed, round(frames / fps, 3))
    written, files = write_release(train_root, eval_root, archives, {kind: release[kind] for kind in KINDS})

    return LearningCorpus(
        root=out_dir,
        train_root=train_root,
        eval_root=eval_root,
        seed=seed,
        files=files,
        rows={kind: len(release[kind]) for kind in KINDS},
        clips={kind: sum(1 for k in owners.values() if k == kind) for kind in KINDS},
        families={kind: dict(Counter(r.item.family for r in rows if r.kind == kind)) for kind in KINDS},
        needs={kind: dict(Counter(r.item.needs for r in rows if r.kind == kind)) for kind in KINDS},
        archives=tuple(written),
        seconds=time.perf_counter() - started,
    )


def learning_command(out: Path, seed: int = 0) -> LearningCorpus:
    """Generate the learning corpus with the default sizes and print its summary."""
    corpus = generate_learning_corpus(Path(out), seed=seed)
    print(corpus.summary())
    return corpus
