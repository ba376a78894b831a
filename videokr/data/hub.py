"""Building a no-code Hub dataset repository (videofolder) from the release or from pipeline output.

Shared by the three dataset packages, which only contribute their `DatasetSpec` (name, split, card
text). A build reads the rows, finds every clip they use, copies each clip once into
`<split>/videos/NNN/`, writes `<split>/metadata.parquet`, the card, attribution and Croissant files,
and then proves the folder with `load_dataset`, normal and streaming. Nothing a row needs is silently
dropped or substituted: every problem lands in the report with the ids it affects.

Why a videofolder and not `push_to_hub`: rows share clips (six questions per video in the paper), and
`push_to_hub` would embed the bytes once per row; a videofolder keeps one file per clip and is still a
no-code dataset whose rows decode with `load_dataset`.
"""

from __future__ import annotations

import json
import math
import os
import zlib
from collections import defaultdict
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from videokr.atomic import atomic_path, write_text_atomic
from videokr.data.card import DatasetSpec, write_card_files
from videokr.data.croissant import validate_croissant
from videokr.data.records import Kind, Record, read_records, record_features
from videokr.data.release import ClipRef, ClipStore, find_release_file
from videokr.errors import VideoKRError

MANIFEST_PATH = Path(".videokr") / "build.json"
TARGET_CLIPS_PER_FOLDER = 500  # hash sharding at this mean keeps every folder far below the 1,000 cap
MAX_CLIPS_PER_FOLDER = 1000
MANIFEST_FLUSH_EVERY = 500


@dataclass
class Problem:
    """One thing wrong with the input, with every row id it keeps out of the build."""

    kind: str  # record | missing_clip | corrupt_clip | overlap
    detail: str
    row_ids: list[str] = field(default_factory=list)


@dataclass
class BuildReport:
    dataset: str
    source: str
    out: str
    rows_read: int = 0
    rows_written: int = 0
    clips_written: int = 0
    clips_reused: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def rows_rejected(self) -> int:
        return sum(len(p.row_ids) or 1 for p in self.problems)

    def rejected_ids(self, kind: str | None = None) -> list[str]:
        return [i for p in self.problems if kind in (None, p.kind) for i in p.row_ids]

    def summary(self) -> str:
        lines = [
            f"{self.dataset}: {self.rows_written} rows written from {self.rows_read} read; "
            f"{self.clips_written} clips copied, {self.clips_reused} unchanged clips reused",
        ]
        by_kind: dict[str, list[Problem]] = defaultdict(list)
        for problem in self.problems:
            by_kind[problem.kind].append(problem)
        for kind, problems in sorted(by_kind.items()):
            ids = [i for p in problems for i in p.row_ids]
            lines.append(f"  {kind}: {len(problems)} problems, {len(ids)} rows kept out")
            lines += [
                f"    {p.detail}" + (f" [ids: {', '.join(p.row_ids[:8])}]" if p.row_ids else "")
                for p in problems[:20]
            ]
            if len(problems) > 20:
                lines.append(f"    … {len(problems) - 20} more in {MANIFEST_PATH}")
        return "\n".join(lines)


def shard_count(num_clips: int) -> int:
    return max(1, math.ceil(num_clips / TARGET_CLIPS_PER_FOLDER))


def clip_file_name(source_name: str, shards: int) -> str:
    """Where a clip goes inside its split: `videos/NNN/<source path with / as __>`.

    The shard is a hash of the source path, so a clip keeps its place when other clips come and go
    (incremental rebuilds rewrite nothing), and the flattened source path keeps provenance readable.
    """
    shard = zlib.crc32(source_name.encode()) % shards
    flat = source_name.strip("/").replace("/", "__")
    return f"videos/{shard:03d}/{flat}"


def _probe_duration(path: str) -> tuple[str, float | None, str | None]:
    """(path, duration in seconds, error) — run in worker processes; never raises."""
    from videokr.vision.decode import probe

    try:
        info = probe(path)
    except Exception as exc:  # a corrupt clip must be reported, whatever the decoder raises
        return path, None, str(exc)
    return path, float(info.duration), None


def _verify_decode(path: str) -> tuple[str, str | None]:
    """Decode frames spread over the whole clip, the last one included; returns an error or None."""
    from videokr.vision.decode import sample_frames

    try:
        sample_frames(path, num_frames=8)
    except Exception as exc:
        return path, str(exc)
    return path, None


class _Manifest:
    """What a build wrote: clips (with sha256, for incremental rebuilds and overlap checks) and problems."""

    def __init__(self, out: Path) -> None:
        self.path = out / MANIFEST_PATH
        data = json.loads(self.path.read_text()) if self.path.exists() else {}
        self.clips: dict[str, dict[str, Any]] = data.get("clips", {})
        self.data = data

    def flush(self, **extra: Any) -> None:
        self.data.update(extra)
        self.data["clips"] = self.clips
        write_text_atomic(self.path, json.dumps(self.data, indent=1, sort_keys=True))


def load_clip_hashes(built: Path) -> dict[str, str]:
    """source clip name → sha256 for an already built repo folder (for the SFT/RL/Eval overlap check)."""
    manifest = Path(built) / MANIFEST_PATH
    if not manifest.exists():
        raise VideoKRError(f"{built}: no {MANIFEST_PATH}; is this a folder written by `videokr build`?")
    clips = json.loads(manifest.read_text()).get("clips", {})
    return {name: entry["sha256"] for name, entry in clips.items()}


def clip_key(name: str) -> str:
    """A clip's identity across datasets: its file stem (the video id in the release's naming)."""
    return Path(name).stem


def build_repo(
    spec: DatasetSpec,
    source: Path,
    out: Path,
    *,
    disjoint_from: Iterable[Path] = (),
    verify: bool = False,
    workers: int | None = None,
    progress: bool = True,
    check: bool = True,
    repo_id: str | None = None,
) -> BuildReport:
    """Build `out` as a no-code Hub dataset folder for `spec` from release files (or pipeline output).

    `disjoint_from` names other built folders (e.g. SFT and Eval when building RL): rows whose clip
    is also there (same video id or same bytes) are kept out and reported, so no clip is ever in two
    of SFT, RL and Eval. Re-running is incremental: clips already written with the same source are not
    copied again, and progress is saved as it goes, so a crash loses nothing already written.
    """
    out = Path(out)
    jsonl = find_release_file(Path(source), spec.kind)
    report = BuildReport(dataset=spec.name, source=str(jsonl), out=str(out))
    workers = workers or min(8, os.cpu_count() or 1)

    parsed = read_records(jsonl, spec.kind)
    report.rows_read = len(parsed.records) + len(parsed.errors)
    for error in parsed.errors:
        ids = [error.row_id] if error.row_id is not None else []
        report.problems.append(Problem("record", str(error), ids))

    store = ClipStore(jsonl.parent)
    rows_by_clip: dict[str, list[Record]] = defaultdict(list)
    refs: dict[str, ClipRef] = {}
    missing: dict[str, list[str]] = defaultdict(list)
    for record in parsed.records:
        ref = store.resolve(record.video)
        if ref is None:
            missing[record.video].append(record.id)
            continue
        refs[ref.name] = ref
        rows_by_clip[ref.name].append(record)
    for path, ids in sorted(missing.items()):
        report.problems.append(Problem("missing_clip", f"{path}: not found under {jsonl.parent}", ids))

    split_dir = out / spec.split
    shards = shard_count(len(refs))
    manifest = _Manifest(out)
    placed = _copy_clips(refs, split_dir, shards, manifest, report, workers, progress)

    _drop_overlaps(disjoint_from, manifest, rows_by_clip, report)
    durations = _check_clips(placed, rows_by_clip, manifest, report, workers, progress, verify)
    manifest.clips = {name: manifest.clips[name] for name in sorted(rows_by_clip)}

    features = record_features(spec.kind)
    rows = []
    for name in sorted(rows_by_clip):
        for record in rows_by_clip[name]:
            row = {name: value for name, value in record.to_dict().items() if name in features}
            del row["video"]
            if row["duration_s"] is None:
                row["duration_s"] = durations.get(name)
            rows.append({"file_name": manifest.clips[name]["file_name"], **row})
    rows.sort(key=lambda r: r["id"])
    _write_metadata(split_dir, rows, spec.kind)
    _remove_stale_clips(split_dir, {manifest.clips[n]["file_name"] for n in rows_by_clip})
    report.rows_written = len(rows)

    clip_durations = {manifest.clips[n]["file_name"]: durations.get(n) for n in rows_by_clip}
    write_card_files(spec, out, rows, durations=clip_durations, repo_id=repo_id)
    manifest.flush(dataset=spec.name, kind=spec.kind, report=asdict(report))
    if check:
        check_repo(out, spec.kind)
    return report


def _copy_clips(
    refs: dict[str, ClipRef],
    split_dir: Path,
    shards: int,
    manifest: _Manifest,
    report: BuildReport,
    workers: int,
    progress: bool,
) -> dict[str, Path]:
    """Copy each clip once (threads: the work is I/O and hashing, both release the GIL)."""
    placed: dict[str, Path] = {}
    todo: list[tuple[str, Path]] = []
    for name, ref in refs.items():
        file_name = clip_file_name(name, shards)
        destination = split_dir / file_name
        placed[name] = destination
        entry = manifest.clips.get(name)
        if (
            entry
            and entry.get("file_name") == file_name
            and entry.get("source_size") == ref.size
            and destination.exists()
            and destination.stat().st_size == ref.size
        ):
            report.clips_reused += 1
            continue
        todo.append((name, destination))

    def copy(item: tuple[str, Path]) -> tuple[str, str]:
        name, destination = item
        return name, refs[name].copy_to(destination)

    bar = tqdm(total=len(todo), desc="copy clips", unit="clip", disable=not progress or not todo)
    try:
        with ThreadPoolExecutor(workers) as pool:
            for done, (name, digest) in enumerate(pool.map(copy, todo), start=1):
                manifest.clips[name] = {
                    "file_name": clip_file_name(name, shards),
                    "sha256": digest,
                    "source_size": refs[name].size,
                    "source": refs[name].location,
                }
                report.clips_written += 1
                bar.update()
                if done % MANIFEST_FLUSH_EVERY == 0:
                    manifest.flush()
    finally:
        # Whatever happened, record the clips that are fully written, so a re-run skips them.
        bar.close()
        manifest.flush()
    for directory in {p.parent for p in placed.values()}:
        count = sum(1 for _ in directory.glob("*.mp4"))
        if count > MAX_CLIPS_PER_FOLDER:
            raise VideoKRError(
                f"{directory}: {count} clips exceeds the {MAX_CLIPS_PER_FOLDER} per-folder cap"
            )
    return placed


def _drop_overlaps(
    others: Iterable[Path],
    manifest: _Manifest,
    rows_by_clip: dict[str, list[Record]],
    report: BuildReport,
) -> None:
    """Keep out rows whose clip another built dataset already has (same video id or same sha256)."""
    for other in others:
        theirs = load_clip_hashes(Path(other))
        their_keys = {clip_key(n): n for n in theirs}
        their_hashes = {h: n for n, h in theirs.items()}
        for name in sorted(rows_by_clip):
            match = their_keys.get(clip_key(name)) or their_hashes.get(manifest.clips[name]["sha256"])
            if match is None:
                continue
            ids = [r.id for r in rows_by_clip.pop(name)]
            how = "same video id" if clip_key(match) == clip_key(name) else "same bytes (sha256)"
            report.problems.append(Problem("overlap", f"{name}: also in {other} as {match} ({how})", ids))


def _check_clips(
    placed: dict[str, Path],
    rows_by_clip: dict[str, list[Record]],
    manifest: _Manifest,
    report: BuildReport,
    workers: int,
    progress: bool,
    verify: bool,
) -> dict[str, float]:
    """Probe every new clip (duration; a corrupt container is caught); `verify` decodes all of them.

    Durations are kept in the manifest, so an incremental re-run probes only clips it copied anew.
    """
    names = [n for n in sorted(rows_by_clip) if n in placed]
    by_path = {str(placed[n]): n for n in names}
    unprobed = [p for p, n in by_path.items() if manifest.clips[n].get("duration_s") is None]
    broken: dict[str, str] = {}
    with ProcessPoolExecutor(workers) as pool:
        results = pool.map(_probe_duration, unprobed, chunksize=16)
        for path, duration, error in tqdm(
            results,
            total=len(unprobed),
            desc="probe clips",
            unit="clip",
            disable=not progress or not unprobed,
        ):
            if error is not None:
                broken[by_path[path]] = error
            else:
                manifest.clips[by_path[path]]["duration_s"] = duration
        if verify:
            healthy = [p for p, n in by_path.items() if n not in broken]
            results = pool.map(_verify_decode, healthy, chunksize=4)
            for path, error in tqdm(
                results, total=len(healthy), desc="decode clips", unit="clip", disable=not progress
            ):
                if error is not None:
                    broken[by_path[path]] = error
    for name, error in sorted(broken.items()):
        ids = [r.id for r in rows_by_clip.pop(name)]
        report.problems.append(Problem("corrupt_clip", f"{name}: does not decode: {error}", ids))
        placed[name].unlink(missing_ok=True)
        manifest.clips[name].pop("duration_s", None)
    return {n: manifest.clips[n]["duration_s"] for n in names if n not in broken}


def _write_metadata(split_dir: Path, rows: list[dict[str, Any]], kind: Kind) -> None:
    """metadata.parquet with the record's columns in the card's order, written atomically."""
    features = record_features(kind)
    columns = ["file_name"] + [name for name in features if name != "video"]
    schema_features = datasets.Features(
        {"file_name": datasets.Value("string")} | {c: features[c] for c in columns[1:]}
    )
    table = pa.Table.from_pylist(
        [{c: row.get(c) for c in columns} for row in rows], schema=schema_features.arrow_schema
    )
    with atomic_path(split_dir / "metadata.parquet") as tmp:
        pq.write_table(table, tmp)


def _remove_stale_clips(split_dir: Path, keep: set[str]) -> None:
    """Delete clips a previous build wrote that no row uses any more (and leftover partial files)."""
    for path in (split_dir / "videos").rglob("*"):
        if path.is_file() and path.relative_to(split_dir).as_posix() not in keep:
            path.unlink()


def check_repo(out: Path, kind: Kind) -> None:
    """Prove a built folder: `load_dataset`, normal and streaming, gives the record and videos decode.

    Uses a throw-away cache, so checking never leaves Arrow files in the user's cache.
    """
    import tempfile

    validate_croissant(out / "croissant.json")
    expected = record_features(kind)
    with tempfile.TemporaryDirectory(prefix="videokr-check-") as cache:
        dataset = datasets.load_dataset(str(out), cache_dir=cache)
        if len(dataset) != 1:
            raise VideoKRError(f"{out}: expected one split, load_dataset gave {list(dataset)}")
        split = next(iter(dataset.values()))
        if split.features != expected:
            raise VideoKRError(
                f"{out}: load_dataset features differ from the record:\n{split.features}\n!=\n{expected}"
            )
        if len(split):
            for index in {0, len(split) - 1}:
                _decode_one(out, split[index])
        streamed = next(iter(datasets.load_dataset(str(out), streaming=True).values()))
        first = next(iter(streamed), None)
        if len(split) and (first is None or first["id"] != split[0]["id"]):
            raise VideoKRError(f"{out}: streaming gives a different first row than load_dataset")
        if first is not None:
            _decode_one(out, first)


def _decode_one(out: Path, row: dict[str, Any]) -> None:
    decoder = row["video"]
    try:
        frame = decoder.get_frame_at(decoder.metadata.num_frames - 1)
    except Exception as exc:
        raise VideoKRError(
            f"{out}: the video of row {row['id']} does not decode through datasets: {exc}"
        ) from exc
    if frame.data.numel() == 0:
        raise VideoKRError(f"{out}: the video of row {row['id']} decoded to an empty frame")
