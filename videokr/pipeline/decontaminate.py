"""Keep benchmark videos out of the training data: same video id, or the same footage re-encoded.

Two checks, as in the paper:

1. **Video id.** A candidate whose YouTube id (from its URL or file name) is a benchmark video's id is
   dropped outright.
2. **Near-duplicate footage.** Every clip is reduced to a 64-bit perceptual hash (pHash) per second
   (1 fps). pHash survives re-encoding, rescaling, mild cropping and colour shifts, so the same footage
   gives nearby hashes. For each candidate frame the 10 nearest benchmark frames (Hamming distance) are
   the candidates; each names a benchmark clip and a time offset. At that offset the two clips' frames
   are aligned one to one, and a 20 s window slides along them with a 1 s stride: the candidate overlaps
   the benchmark clip when, in some window, at least 70 % of aligned frames are within Hamming distance
   30. Clips shorter than 20 s use their full common length as the window.

Windows, not whole clips, because a training video may contain only a short excerpt of a benchmark clip;
an alignment threshold on many frames, not a single close frame, because unrelated footage often has a
few similar frames (title cards, black fades).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from videokr.pipeline.common import Outcome, StageReport, read_jsonl, run_stage

HASH_FPS = 1.0
WINDOW_S = 20
STRIDE_S = 1
TOP_K = 10
MAX_HAMMING = 30
MIN_ALIGNED_FRACTION = 0.7
_YOUTUBE_ID = re.compile(r"(?:v=|youtu\.be/|/shorts/|/embed/)([A-Za-z0-9_-]{11})")
_BARE_ID = re.compile(r"^[A-Za-z0-9_-]{11}$")


def video_id(value: str | None) -> str | None:
    """The 11-character YouTube id in a URL or a file name (``…/dQw4w9WgXcQ.mp4``), if there is one."""
    if not value:
        return None
    match = _YOUTUBE_ID.search(value)
    if match:
        return match.group(1)
    stem = Path(value.split("?")[0]).stem
    return stem if _BARE_ID.match(stem) else None


def frame_hashes(path: str | Path, *, fps: float = HASH_FPS) -> np.ndarray:
    """One 64-bit pHash per second of the clip (uint64 array), in time order."""
    import imagehash
    from PIL import Image

    from videokr.vision.decode import sample_frames

    sampled = sample_frames(path, fps=fps, max_frames=None)
    hashes = []
    for frame in sampled.frames:
        bits = imagehash.phash(Image.fromarray(frame), hash_size=8).hash.flatten()
        hashes.append(int("".join("1" if b else "0" for b in bits), 2))
    return np.array(hashes, dtype=np.uint64)


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """All pairwise Hamming distances between two uint64 hash arrays: shape (len(a), len(b))."""
    return np.bitwise_count(a[:, None] ^ b[None, :]).astype(np.int16)


@dataclass(frozen=True)
class Match:
    """The best overlapping window found: benchmark clip, offset (benchmark s − candidate s), fraction."""

    benchmark: str
    offset: int
    start: int
    fraction: float


def aligned_overlap(distances: np.ndarray, offset: int, *, window: int = WINDOW_S) -> tuple[float, int]:
    """Best window fraction of aligned frames within `MAX_HAMMING` at `offset`, and its start (candidate s).

    `distances` is candidate × benchmark; frame i of the candidate is aligned with frame i + offset of the
    benchmark. Returns (0, -1) when the aligned stretch is shorter than the window.
    """
    diagonal = np.diagonal(distances, offset=offset)
    n_candidate, n_benchmark = distances.shape
    length = min(window, n_candidate, n_benchmark)
    if diagonal.size < length or length == 0:
        return 0.0, -1
    close = (diagonal <= MAX_HAMMING).astype(np.int32)
    sums = np.convolve(close, np.ones(length, dtype=np.int32), mode="valid")[::STRIDE_S]
    best = int(np.argmax(sums))
    start = best * STRIDE_S + max(0, -offset)
    return float(sums[best]) / length, start


class BenchmarkIndex:
    """Frame hashes of every benchmark clip, with their ids, searchable by candidate clip."""

    def __init__(self, clips: Mapping[str, np.ndarray], ids: Mapping[str, str | None] | None = None) -> None:
        self.names = sorted(clips)
        self.hashes = {name: np.asarray(clips[name], dtype=np.uint64) for name in self.names}
        self.ids = {name: (ids or {}).get(name) for name in self.names}
        self.video_ids = {v: name for name, v in self.ids.items() if v}
        owners = [np.full(len(self.hashes[n]), i, dtype=np.int64) for i, n in enumerate(self.names)]
        positions = [np.arange(len(self.hashes[n]), dtype=np.int64) for n in self.names]
        empty = np.zeros(0, dtype=np.int64)
        self._all = (
            np.concatenate([self.hashes[n] for n in self.names]) if self.names else np.zeros(0, np.uint64)
        )
        self._owner = np.concatenate(owners) if owners else empty
        self._position = np.concatenate(positions) if positions else empty

    @classmethod
    def from_paths(
        cls, paths: Mapping[str, str | Path], ids: Mapping[str, str | None] | None = None
    ) -> BenchmarkIndex:
        return cls({name: frame_hashes(path) for name, path in paths.items()}, ids)

    def save(self, path: str | Path) -> None:
        arrays = {f"h/{n}": self.hashes[n] for n in self.names}
        np.savez_compressed(
            path, names=np.array(self.names), ids=np.array([self.ids[n] or "" for n in self.names]), **arrays
        )

    @classmethod
    def load(cls, path: str | Path) -> BenchmarkIndex:
        with np.load(path) as data:
            names = [str(n) for n in data["names"]]
            ids = {n: (str(i) or None) for n, i in zip(names, data["ids"], strict=True)}
            return cls({n: data[f"h/{n}"] for n in names}, ids)

    def candidates(self, query: np.ndarray, k: int = TOP_K) -> set[tuple[int, int]]:
        """(benchmark clip, offset) pairs proposed by each query frame's `k` nearest benchmark frames."""
        if not len(self._all) or not len(query):
            return set()
        k = min(k, len(self._all))
        pairs: set[tuple[int, int]] = set()
        for start in range(0, len(query), 256):
            block = hamming(query[start : start + 256], self._all)
            nearest = np.argpartition(block, k - 1, axis=1)[:, :k]
            for row, columns in enumerate(nearest):
                for column in columns:
                    if block[row, column] <= MAX_HAMMING:
                        offset = int(self._position[column]) - (start + row)
                        pairs.add((int(self._owner[column]), offset))
        return pairs

    def match(self, query: np.ndarray) -> Match | None:
        """The strongest overlap of `query` with any benchmark clip, or None when there is none."""
        best: Match | None = None
        distances: dict[int, np.ndarray] = {}
        for owner, offset in sorted(self.candidates(query)):
            if owner not in distances:
                distances[owner] = hamming(query, self.hashes[self.names[owner]])
            fraction, start = aligned_overlap(distances[owner], offset)
            if fraction >= MIN_ALIGNED_FRACTION and (best is None or fraction > best.fraction):
                best = Match(self.names[owner], offset, start, fraction)
        return best


def benchmark_index_from_eval(eval_jsonl: str | Path) -> BenchmarkIndex:
    """Hash every clip an evaluation release file names (resolved like the dataset builder resolves them)."""
    from videokr.data.records import read_records
    from videokr.data.release import ClipStore

    jsonl = Path(eval_jsonl)
    store = ClipStore(jsonl.parent)
    paths: dict[str, Path] = {}
    for record in read_records(jsonl, "eval").records:
        ref = store.resolve(record.video)
        if ref is not None and ref.file is not None:
            paths[ref.name] = ref.file
    return BenchmarkIndex.from_paths(paths, {name: video_id(name) for name in paths})


def decontaminate_unit(index: BenchmarkIndex, row: dict[str, Any]) -> Outcome:
    """One candidate (``id``, ``path``): kept unless it is a benchmark video or overlaps one's footage."""
    vid = video_id(row.get("source_url")) or video_id(row.get("path")) or video_id(row["id"])
    if vid and vid in index.video_ids:
        reason = f"video_id: same video as benchmark clip {index.video_ids[vid]}"
        return Outcome(dropped=[(row["id"], reason)])
    found = index.match(frame_hashes(row["path"]))
    if found is not None:
        detail = f"{found.benchmark} at offset {found.offset}s ({found.fraction:.0%} of a window)"
        return Outcome(dropped=[(row["id"], f"near_duplicate: {detail}")])
    return Outcome(kept=[row])


def decontaminate(
    candidates: str | Path | Iterable[dict[str, Any]],
    index: BenchmarkIndex,
    out: str | Path,
    *,
    workers: int = 2,
    progress: bool = True,
) -> StageReport:
    """Keep the candidate videos (rows with ``id`` and ``path``) that overlap no benchmark clip."""
    rows = read_jsonl(candidates) if isinstance(candidates, str | Path) else list(candidates)
    return run_stage(
        "decontaminate",
        rows,
        lambda r: r["id"],
        lambda row: decontaminate_unit(index, row),
        out,
        workers=workers,
        progress=progress,
    )
