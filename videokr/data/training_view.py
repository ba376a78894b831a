"""A training view of a built dataset: every clip re-encoded once to exactly what the model is shown.

Why: at the paper's settings a model sees at most 128 frames at 2 fps, each about 100,352 pixels, but the
originals are minutes of HD video, and decoding them is the whole cost of a training step's data (5.6 s
per sample for a 60 s 720p clip on 2 cores) and of moving the data (terabytes). A view holds the frames
the loader would decode, at the size it would scale them to, and nothing else.

What a view clip is: an H.264 MP4, coded as RGB (`VIEW_CODEC`), of exactly the frames `VisualLoader`
samples at the view's settings (`FrameSampling.index_rule`), scaled by the decoder as the loader scales
them (`smart_size` on the processor's patch grid), with presentation timestamps equal to the source
frames' own. It also carries,
in a container tag (`VIEW_TAG`, JSON), what the processor needs to place the frames in time as it would
have for the original: the source's fps, frame count, size and the sampled frame indices. So
Qwen2.5-VL's ``second_per_grid_ts`` and Qwen3-VL's per-frame timestamps come out identical to the full
path's, and the clip explains itself wherever it goes (a streamed row has only the clip's bytes).

How it is read: `videokr.vision.VisualLoader` recognises a view clip by its tag, checks that it was made
for the settings the run asks for (`TrainingViewMismatch` names both otherwise: a view silently read at
other settings would train on other frames than the run's configuration says), and decodes its frames as
they are. The collator, GRPO's rollouts and the training scripts need no change: point
``--dataset_name`` at the view folder. The evaluation keeps the originals (a view holds no other frames
for the single-frame probe, and is refused there).

The folder is a build's no-code layout, loose or sharded (``layout``; ``auto`` chooses as a build does,
by the number and bytes of the clips, so a view of the full release is sharded and fits the Hub's advice
of files per repo), whatever the source's layout (loose clips or ZIP shards, whose members are read one at
a time). Loose: ``<split>/metadata.parquet`` with every column of the source rows and ``<split>/videos/…``
(the source's clip names, suffix ``.mp4``). Sharded: ``<split>/shard-NNNNN.zip``, each holding its clips
and the ``metadata.parquet`` of the rows that use them (`videokr.data.shards`); the encoded clips stay
in ``.videokr/clips/`` (never published) so that a re-run reuses them, and a shard is rewritten only
when its clips or rows changed. Either way a card whose YAML carries the settings under
``videokr_training_view``, and the source's ``ATTRIBUTION.md`` (the clips are adaptations of the
originals, under the same licences).

Resumable at clip level: each clip is written under a temporary name and renamed, then appended to
``.videokr/training_view_clips.jsonl`` with its sha256; a re-run reuses a clip whose file still has that
hash and whose source has the recorded size and modification time, and encodes the rest. Encoding is
deterministic (constant quantiser, one thread: see `videokr.sample.encode`), so an interrupted-then-resumed
run ends with the same bytes as an uninterrupted one. A clip that does not decode keeps its rows out; they
are listed by id with the reason in the summary and in ``.videokr/training_view.json``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import multiprocessing
import os
import shutil
import tempfile
from collections import defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from videokr.atomic import atomic_path, write_text_atomic
from videokr.data import shards as shard_layout
from videokr.data.shards import ShardContent, assign_shards, choose_layout, shard_fingerprint, write_shard
from videokr.errors import VideoDecodeError, VideoKRError
from videokr.vision.decode import sample_frames
from videokr.vision.sampling import (
    PAPER_FPS,
    PAPER_MAX_FRAMES,
    PAPER_MAX_PIXELS,
    PAPER_MIN_PIXELS,
    QWEN2_5_VL_FACTOR,
    FrameSampling,
    smart_size,
)

__all__ = [
    "QWEN2_5_VL_FACTOR",
    "VIEW_TAG",
    "TrainingViewMismatch",
    "ViewClip",
    "ViewReport",
    "ViewSettings",
    "build_training_view",
    "encode_view_clip",
    "read_view_clip",
]

VIEW_TAG = "videokr_training_view"
"""The MP4 metadata key (and the card's YAML key) that marks a training view and holds its settings."""

FORMAT = "videokr-training-view/1"
"""The tag's format; a reader refuses one it does not know rather than misread it."""

VIEW_CODEC = "libx264rgb"
"""x264 coding the frames as RGB (planar G, B, R), not YCbCr. A view is read far more often than it is
written, and reading is what a training step pays for: an RGB view decodes to the planes the processor
takes, with no colour conversion at all (`videokr.vision.decode` copies the planes), and with no colour
matrix to disagree on, every backend returns the same pixels. On the 60 s 720p clip (120 frames at
420×224), decoding the view and converting it to RGB took 0.55 s as 4:4:4 YCbCr (qp 18; half of it
swscale's 4:4:4 conversion, which has no fast path) and 0.15 s as RGB (qp 26, `VIEW_OPTIONS`).

The cost is bytes on smooth natural footage, whose R, G and B planes are alike and which YCbCr
decorrelates: on the 320×180 real sample clip the RGB view is 126 KB against 87 KB at 38.1 dB against
39.3. On the grain-heavy 720p clip it is 1.45 MB against 1.31 MB at 36.4 dB against 35.3. Either is far
below HD originals; decoding speed is what a view is for."""

VIEW_PIX_FMT = "rgb24"
"""What the encoder is handed (libx264rgb stores it as planar GBR, 4:4:4): the decoder's RGB frames as
they are, so no colour conversion happens on the way in either."""

VIEW_QP = 26
"""H.264 constant quantiser of view clips (constant, not CRF: the bytes must repeat, see `_write_h264`).
The loss that counts is against the full path's frames (every sampled frame decoded at full size, then
torchvision's antialiased bicubic). On grain-heavy synthetic 720p shrunk to 420×224 (the worst case
tried; the decoder's scaler alone is at 50.6 dB there) qp 24 gave 38.0 dB at 2.12 MB, 25 37.2 dB at
1.74 MB, 26 36.4 dB at 1.45 MB; the 320×180 real sample clip 38.1 dB at 26. 26 keeps the 35 dB the view
promises with a margin, and the HD view 13× smaller than its source."""

VIEW_OPTIONS = {"preset": "slow", "tune": "fastdecode", "bf": "3", "g": "128", "threads": "1"}
"""x264 options besides the quantiser. One keyframe per clip at the paper's 128 frames (a view is read
whole, never sought) and B-frames: measured on 4:4:4 views of that 720p clip, 1.26 MB against 1.96 MB
with ``medium``, no B-frames and a keyframe every 32, at the same quality; ``veryslow`` saved another
20 % for twice the encoding time. ``fastdecode`` (CAVLC instead of CABAC, no deblocking or weighted
prediction) halves the decoding time of the RGB view (0.15 s against 0.27–0.39 s for 120 frames at
420×224) for 8 % more bytes at the same quality. One thread: the output then repeats byte for byte."""

VIEW_ENCODING = f"{VIEW_CODEC}/{VIEW_PIX_FMT}/qp{VIEW_QP}/" + ",".join(
    f"{k}={v}" for k, v in sorted(VIEW_OPTIONS.items())
)
"""How view clips are encoded, recorded with each clip in the manifest: a clip encoded otherwise (by an
earlier version) is encoded again on the next run, so one view never mixes encodings."""

STATE_DIR = ".videokr"
STATE_FILE = "training_view.json"
MANIFEST_FILE = "training_view_clips.jsonl"
SHARDS_FILE = "training_view_shards.json"
STAGED_CLIPS = "clips"


class TrainingViewMismatch(VideoKRError, ValueError):
    """A training view read (or resumed) with other frame settings than it was made for."""


@dataclass(frozen=True)
class ViewSettings:
    """What a view was made for: the frame sampling and pixel bounds, and the processor's patch grid."""

    fps: float = PAPER_FPS
    max_frames: int = PAPER_MAX_FRAMES
    num_frames: int | None = None
    max_pixels: int = PAPER_MAX_PIXELS
    min_pixels: int = PAPER_MIN_PIXELS
    factor: int = QWEN2_5_VL_FACTOR

    @classmethod
    def of(cls, sampling: FrameSampling, factor: int) -> ViewSettings:
        """The settings a run with `sampling` on a processor of patch grid `factor` reads at."""
        return cls(
            float(sampling.fps),
            int(sampling.max_frames),
            None if sampling.num_frames is None else int(sampling.num_frames),
            int(sampling.max_pixels),
            int(sampling.min_pixels),
            int(factor),
        )

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ViewSettings:
        return cls(**{name: values[name] for name in cls.__dataclass_fields__})

    def sampling(self) -> FrameSampling:
        return FrameSampling(
            fps=self.fps,
            max_frames=self.max_frames,
            num_frames=self.num_frames,
            max_pixels=self.max_pixels,
            min_pixels=self.min_pixels,
        )

    def size(self, height: int, width: int) -> tuple[int, int]:
        """The (height, width) a source of this displayed size is shown at."""
        return smart_size(height, width, self.factor, self.min_pixels, self.max_pixels)

    def describe(self) -> str:
        return ", ".join(f"{name}={value}" for name, value in asdict(self).items())

    def check(self, wanted: ViewSettings, where: str) -> None:
        """Raise `TrainingViewMismatch` naming both settings unless `wanted` is these."""
        if self != wanted:
            raise TrainingViewMismatch(
                f"{where} is a training view made for {self.describe()}, but this run asks for "
                f"{wanted.describe()}; build a view at these settings (videokr training-view) or use the "
                "original clips"
            )


@dataclass(frozen=True)
class ViewClip:
    """What a view clip says about itself (its `VIEW_TAG`): the settings, and the source's timing."""

    settings: ViewSettings
    source_fps: float
    source_num_frames: int
    source_width: int
    source_height: int
    indices: tuple[int, ...]
    source: str = ""

    def to_json(self) -> str:
        values = asdict(self)
        values["indices"] = list(self.indices)
        return json.dumps({"format": FORMAT, **values}, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str, where: str) -> ViewClip:
        try:
            values = json.loads(text)
            if values.get("format") != FORMAT:
                raise ValueError(f"unknown format {values.get('format')!r}, this version reads {FORMAT}")
            return cls(
                settings=ViewSettings.from_dict(values["settings"]),
                source_fps=float(values["source_fps"]),
                source_num_frames=int(values["source_num_frames"]),
                source_width=int(values["source_width"]),
                source_height=int(values["source_height"]),
                indices=tuple(int(i) for i in values["indices"]),
                source=str(values.get("source", "")),
            )
        except (ValueError, KeyError, TypeError) as error:
            raise TrainingViewMismatch(f"{where}: unreadable training-view tag ({error})") from error


def read_view_clip(path: str | os.PathLike[str]) -> ViewClip | None:
    """The clip's training-view tag, or None for any other clip (or one that does not open: the decoder
    reports that with its own words)."""
    try:
        with av.open(os.fspath(path)) as container:
            text = container.metadata.get(VIEW_TAG)
    except (av.FFmpegError, OSError):
        return None
    return None if text is None else ViewClip.from_json(text, os.fspath(path))


def encode_view_clip(source: str, dest: Path, settings: ViewSettings, *, name: str = "") -> ViewClip:
    """Sample `source` as the loader would at `settings`, scale by the decoder, and write an H.264 MP4 with
    the source frames' timestamps and the `VIEW_TAG` to `dest` (atomically). Raises `VideoDecodeError`."""
    sampled = sample_frames(
        source,
        **settings.sampling().index_rule(),
        backend="pyav",  # bicubic swscale, closest to the reference resize, and needs no torch
        num_threads=1,
        size=settings.size,
    )
    info = sampled.info
    clip = ViewClip(
        settings=settings,
        source_fps=float(info.fps),
        source_num_frames=int(info.num_frames),
        source_width=int(info.width),
        source_height=int(info.height),
        indices=tuple(int(i) for i in sampled.indices),
        source=name,
    )
    time_base = (
        info.time_base if info.time_base and info.time_base.denominator < 2**31 else Fraction(1, 90000)
    )
    first = int(info.frame_pts[0])
    pts = _increasing((int(p) - first) * info.time_base / time_base for p in info.frame_pts[sampled.indices])
    _write_h264(dest, sampled.frames, pts, time_base, clip.to_json())
    return clip


def _increasing(values: Iterable[Fraction]) -> list[int]:
    """Integer timestamps, nudged up a tick where a frame repeats (a clip shorter than the frames asked),
    since a container needs strictly increasing ones; the tag keeps the true indices."""
    out: list[int] = []
    for value in values:
        stamp = round(value)
        out.append(stamp if not out or stamp > out[-1] else out[-1] + 1)
    return out


def _write_h264(dest: Path, frames: np.ndarray, pts: list[int], time_base: Fraction, tag: str) -> None:
    """One H.264 MP4 of `frames` at timestamps `pts`, tagged. A constant quantiser on one thread, because
    that gives the same bytes on every run (libx264's CRF did not; `videokr.sample.encode`), which an
    interrupted-then-resumed build relies on to end where an uninterrupted one does."""
    height, width = frames.shape[1:3]
    options = {"movflags": "use_metadata_tags"}
    with atomic_path(dest) as tmp, av.open(str(tmp), "w", format="mp4", options=options) as container:
        container.metadata[VIEW_TAG] = tag
        stream = container.add_stream(VIEW_CODEC)
        stream.codec_context.time_base = time_base
        stream.time_base = time_base
        stream.width, stream.height = width, height
        stream.pix_fmt = VIEW_PIX_FMT
        stream.codec_context.thread_count = 1
        stream.options = {"qp": str(VIEW_QP), **VIEW_OPTIONS}
        for image, stamp in zip(frames, pts, strict=True):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = stamp, time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


# --------------------------------------------------------------------------------------------------
# Building a view of a folder
# --------------------------------------------------------------------------------------------------


@dataclass
class ViewReport:
    """What a view build did, for the summary line and ``.videokr/training_view.json``."""

    source: str
    out: str
    settings: ViewSettings
    rows: dict[str, int] = field(default_factory=dict)  # split -> rows read
    kept: dict[str, int] = field(default_factory=dict)  # split -> rows written
    layout: str = "loose"
    clips_encoded: int = 0
    clips_reused: int = 0
    source_bytes: int = 0
    view_bytes: int = 0
    kept_out: list[dict[str, str]] = field(default_factory=list)  # split, id, clip, reason

    def summary(self) -> str:
        rows, kept = sum(self.rows.values()), sum(self.kept.values())
        ratio = self.source_bytes / self.view_bytes if self.view_bytes else float("nan")
        lines = [
            f"training view ({self.settings.describe()}): {kept} rows written from {rows} read; "
            f"{self.clips_encoded} clips encoded, {self.clips_reused} reused; "
            f"{_mb(self.view_bytes)} of clips from {_mb(self.source_bytes)} ({ratio:.1f}× smaller)"
        ]
        for row in self.kept_out:
            lines.append(f"  kept out: {row['split']} row {row['id']} (clip {row['clip']}): {row['reason']}")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["format"] = FORMAT
        return values


@dataclass(frozen=True)
class _Job:
    """One clip to encode: where it comes from, where it goes."""

    name: str  # output path relative to the view folder
    source: str  # the source clip's path relative to its folder (or its sha256 when it has no path)
    path: str | None  # a readable source file
    data: bytes | None  # or its bytes (a dataset that embeds clips)
    size: int
    mtime_ns: int
    url: str | None = None  # or an fsspec URL, read in the worker (a member of a ZIP shard)


def build_training_view(
    source: str | os.PathLike[str],
    out: str | os.PathLike[str],
    settings: ViewSettings | None = None,
    *,
    workers: int = 1,
    progress: bool = True,
    layout: str = "auto",
) -> ViewReport:
    """Write the training view of the built folder `source` to `out` (new, empty, or an earlier view of
    the same source at the same settings and layout, which is resumed). See the module docstring."""
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    from videokr.data.local import load_local

    settings = settings or ViewSettings()
    source, out = Path(source), Path(out)
    card = _read_card(source)
    if VIEW_TAG in card:
        raise ValueError(f"{source} is itself a training view; build the view from the original folder")
    choose_layout(layout, 0, 0)  # a wrong name fails before anything is written
    made_as = _claim_out(out, source, settings, layout)
    report = ViewReport(str(source), str(out), settings)
    manifest = _Manifest(out / STATE_DIR / MANIFEST_FILE)

    loaded = load_local(source)
    tables: dict[str, tuple[Any, list[str | None]]] = {}
    jobs: dict[str, _Job] = {}
    for split in sorted(loaded):
        dataset = loaded[split].cast_column("video", datasets.Video(decode=False))
        names: list[str | None] = []
        for video in dataset["video"]:
            job = _job(source, split, video)
            names.append(None if job is None else job.name)
            if job is not None:
                jobs.setdefault(job.name, job)
        tables[split] = (dataset.remove_columns("video").with_format("arrow")[:], names)
        report.rows[split] = len(dataset)

    # A resumed view keeps the layout it was made in; a new one chooses as a build does.
    report.layout = made_as or choose_layout(layout, len(jobs), sum(job.size for job in jobs.values()))
    _write_state(out, source, settings, complete=False, layout=report.layout)
    clips = out if report.layout == "loose" else out / STATE_DIR / STAGED_CLIPS
    failed = _encode_all(clips, settings, jobs, manifest, report, workers=workers, progress=progress)
    used = {name for name in jobs if name not in failed}
    manifest.remove_unused(clips, used)
    placed = _ShardPlacement(out / STATE_DIR / SHARDS_FILE) if report.layout == "shards" else None
    for split, (table, names) in tables.items():
        keep = []
        for i, name in enumerate(names):
            reason = "the row has no clip" if name is None else failed.get(name)
            if reason is None:
                keep.append(i)
            else:
                row_id = str(table.column("id")[i].as_py()) if "id" in table.column_names else str(i)
                report.kept_out.append(
                    {
                        "split": split,
                        "id": row_id,
                        "clip": jobs[name].source if name else "",
                        "reason": reason,
                    }
                )
        kept = table.take(pa.array(keep, type=pa.int64()))
        files = pa.array([os.path.relpath(names[i], split) for i in keep], type=pa.string())
        kept = kept.add_column(0, "file_name", files)
        if placed is None:
            with atomic_path(out / split / "metadata.parquet") as tmp:
                pq.write_table(kept, tmp)
        else:
            placed.write(out, split, kept, {name: manifest.entries[name]["sha256"] for name in used})
        report.kept[split] = len(keep)
    report.view_bytes = sum((clips / name).stat().st_size for name in sorted(used))
    report.source_bytes = sum(jobs[name].size for name in used)
    _write_card(out, source, card, settings, report)
    _write_state(out, source, settings, complete=True, report=report)
    return report


def _read_card(folder: Path) -> dict[str, Any]:
    """The YAML header of a built folder's README.md (the card is the loader)."""
    import yaml

    readme = folder / "README.md"
    if not readme.is_file():
        raise ValueError(f"{folder}: not a built dataset folder (no README.md); build it with videokr build")
    text = readme.read_text(encoding="utf-8")
    if not text.startswith("---\n"):
        raise ValueError(f"{readme}: no YAML header; build the folder with videokr build")
    return yaml.safe_load(text.split("---\n", 2)[1]) or {}


def _claim_out(out: Path, source: Path, settings: ViewSettings, layout: str) -> str | None:
    """Refuse an `out` this command could damage, before writing anything: it must be new, empty, or a
    view of the same source at the same settings and layout (resumed). Returns the layout a resumed
    view was made in (None for a new one)."""
    state = out / STATE_DIR / STATE_FILE
    made_as = None
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: exists and is not a folder")
    if out.resolve() == source.resolve() or source.resolve() in out.resolve().parents:
        raise ValueError(f"{out}: the view cannot be written inside its source folder {source}")
    if state.is_file():
        previous = json.loads(state.read_text(encoding="utf-8"))
        made_for = ViewSettings.from_dict(previous["settings"])
        made_for.check(settings, str(out))
        if previous["source"] != str(source.resolve()):
            raise ValueError(
                f"{out} is the training view of {previous['source']}, not of {source.resolve()}; "
                "choose another output folder"
            )
        made_as = previous.get("layout", "loose")
        if layout not in ("auto", made_as):
            raise ValueError(
                f"{out} is a training view in the {made_as} layout, not {layout}; choose another output "
                "folder for the other layout"
            )
    elif out.is_dir() and any(out.iterdir()):
        raise ValueError(f"{out}: not empty and not a training view; choose a new or empty folder")
    _write_state(out, source, settings, complete=False, layout=made_as)
    return made_as


def _write_state(
    out: Path,
    source: Path,
    settings: ViewSettings,
    *,
    complete: bool,
    layout: str | None = None,
    report: ViewReport | None = None,
) -> None:
    state: dict[str, Any] = {
        "format": FORMAT,
        "source": str(source.resolve()),
        "settings": asdict(settings),
        "complete": complete,
        "layout": report.layout if report is not None else layout,
    }
    if report is not None:
        state["report"] = report.as_dict()
    write_text_atomic(out / STATE_DIR / STATE_FILE, json.dumps(state, indent=2) + "\n")


def _job(source: Path, split: str, video: dict[str, Any] | None) -> _Job | None:
    """The clip a row's ``video`` value names, as a job; None when the row has no clip at all."""
    video = video or {}
    path, data = video.get("path"), video.get("bytes")
    root = source.resolve()
    if path and not data and path.startswith("zip://") and "::" in path:
        # A member of a ZIP shard of a sharded build: named by its member path, reused while the shard
        # is unchanged, read in the worker (never all clips in memory at once).
        member, archive = path[len("zip://") :].split("::", 1)
        size = _member_sizes(archive)[member]
        name = Path(split, member).with_suffix(".mp4").as_posix()
        mtime = Path(archive).stat().st_mtime_ns
        return _Job(name, f"{Path(archive).name}:{member}", None, None, size, mtime, path)
    if path and os.path.isfile(path):
        real = Path(path).resolve()
        stat = real.stat()
        if root in real.parents:
            relative = real.relative_to(root).as_posix()
            name = str(Path(relative).with_suffix(".mp4").as_posix())
            return _Job(name, relative, str(real), None, stat.st_size, stat.st_mtime_ns)
        digest = _sha256_file(real)
        return _Job(
            f"{split}/videos/{digest[:3]}/{digest[:16]}.mp4", digest, str(real), None, stat.st_size, 0
        )
    if data:
        digest = hashlib.sha256(data).hexdigest()
        return _Job(f"{split}/videos/{digest[:3]}/{digest[:16]}.mp4", digest, None, bytes(data), len(data), 0)
    return None


@functools.cache
def _member_sizes(archive: str) -> dict[str, int]:
    """Member name → size of a ZIP shard (read once per shard from its central directory)."""
    import zipfile

    with zipfile.ZipFile(archive) as handle:
        return {info.filename: info.file_size for info in handle.infolist()}


class _Manifest:
    """Clips written so far, appended one JSON line per clip as each is renamed into place."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: dict[str, dict[str, Any]] = {}
        if path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue  # a line cut by a crash: its clip is encoded again
                self.entries[entry["name"]] = entry

    def done(self, out: Path, job: _Job) -> bool:
        """True when `job`'s clip is in place, unchanged, and made from the same source."""
        entry = self.entries.get(job.name)
        if entry is None or (entry["source_size"], entry["source_mtime_ns"]) != (job.size, job.mtime_ns):
            return False
        if entry.get("encoding") != VIEW_ENCODING:
            return False  # written by a version that encoded views otherwise
        target = out / job.name
        return target.is_file() and _sha256_file(target) == entry["sha256"]

    def add(self, out: Path, job: _Job) -> None:
        entry = {
            "name": job.name,
            "source": job.source,
            "source_size": job.size,
            "source_mtime_ns": job.mtime_ns,
            "sha256": _sha256_file(out / job.name),
            "encoding": VIEW_ENCODING,
        }
        self.entries[job.name] = entry
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry, sort_keys=True) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def remove_unused(self, out: Path, used: set[str]) -> None:
        """Delete clips this command wrote earlier that no row uses now (a source clip removed)."""
        for name in sorted(set(self.entries) - used):
            (out / name).unlink(missing_ok=True)


class _ShardPlacement:
    """Which shard holds each clip of a sharded view, and what each shard was written with.

    Kept clips stay in their shard and new ones fill the last shard, then new ones
    (`videokr.data.shards.assign_shards`), so a re-run with a few clips changed rewrites a few shards. A
    shard is rewritten only when its fingerprint (its members' sha256 and its rows' bytes) changed or its
    file is gone. The state is saved after every shard, so an interrupted run redoes at most one.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.state: dict[str, Any] = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}

    def write(self, out: Path, split: str, rows: Any, sha256: dict[str, str]) -> None:
        """Write `split`'s rows (a table whose ``file_name`` is the member path) into shards, and delete
        shards no clip is placed in any more. `sha256` holds the encoded clips (``<split>/videos/…``)."""
        import pyarrow as pa

        split_state = self.state.setdefault(split, {"clips": {}, "shards": {}})
        staged = out / STATE_DIR / STAGED_CLIPS
        members = rows.column("file_name").to_pylist()
        sizes = {f"{split}/{m}": (staged / split / m).stat().st_size for m in sorted(set(members))}
        limits = {"max_bytes": shard_layout.MAX_SHARD_BYTES, "max_clips": shard_layout.MAX_SHARD_CLIPS}
        placed = assign_shards(sizes, split_state["clips"], **limits)
        split_state["clips"] = placed
        rows_of: dict[str, list[int]] = defaultdict(list)
        for i, member in enumerate(members):
            rows_of[placed[f"{split}/{member}"]].append(i)
        for shard, indices in sorted(rows_of.items()):
            table = rows.take(pa.array(indices, type=pa.int64()))
            mine = sorted({members[i] for i in indices})  # member paths, relative to the split
            fingerprint = shard_fingerprint({m: sha256[f"{split}/{m}"] for m in mine}, table)
            target = out / split / shard
            if split_state["shards"].get(shard) == fingerprint and target.is_file():
                continue
            openers = {m: functools.partial(open, staged / split / m, "rb") for m in mine}
            write_shard(target, ShardContent(openers, table))  # type: ignore[arg-type]
            split_state["shards"][shard] = fingerprint
            write_text_atomic(self.path, json.dumps(self.state, indent=2) + "\n")
        for shard in sorted(set(split_state["shards"]) - set(placed.values())):
            (out / split / shard).unlink(missing_ok=True)
            del split_state["shards"][shard]
        write_text_atomic(self.path, json.dumps(self.state, indent=2) + "\n")


def _encode_all(
    out: Path,
    settings: ViewSettings,
    jobs: dict[str, _Job],
    manifest: _Manifest,
    report: ViewReport,
    *,
    workers: int,
    progress: bool,
) -> dict[str, str]:
    """Encode every clip not already done; returns the failures (clip name → reason)."""
    todo = []
    for name in sorted(jobs):
        if manifest.done(out, jobs[name]):
            report.clips_reused += 1
        else:
            todo.append(jobs[name])
    failed: dict[str, str] = {}

    def finish(job: _Job, error: str | None) -> None:
        if error is None:
            manifest.add(out, job)
            report.clips_encoded += 1
        else:
            failed[job.name] = error

    bar = _progress(len(todo), progress)
    if workers <= 1 or len(todo) <= 1:
        for job in todo:
            finish(job, _encode_job(str(out), settings, job))
            bar(1)
    else:
        context = multiprocessing.get_context("spawn")  # nothing inherited: av and numpy only
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures = {pool.submit(_encode_job, str(out), settings, job): job for job in todo}
            for future in _as_completed(futures):
                finish(futures[future], future.result())
                bar(1)
    bar(0, close=True)
    return failed


def _as_completed(futures: dict[Any, _Job]) -> Iterable[Any]:
    from concurrent.futures import as_completed

    return as_completed(futures)


def _encode_job(out: str, settings: ViewSettings, job: _Job) -> str | None:
    """Encode one clip; the reason it failed, or None. Runs in a worker process."""
    dest = Path(out) / job.name
    try:
        if job.path is not None:
            encode_view_clip(job.path, dest, settings, name=job.source)
        else:
            data = job.data
            if job.url is not None:
                import fsspec

                with fsspec.open(job.url, "rb") as source:
                    data = source.read()
            with tempfile.NamedTemporaryFile(suffix=".mp4") as handle:
                handle.write(data or b"")
                handle.flush()
                encode_view_clip(handle.name, dest, settings, name=job.source)
    except VideoDecodeError as error:
        return error.reason
    return None


def _progress(total: int, show: bool) -> Callable[..., None]:
    if not show or not total:
        return lambda n, close=False: None
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc="training view", unit="clip")

    def step(n: int, close: bool = False) -> None:
        bar.update(n)
        if close:
            bar.close()

    return step


def _write_card(
    out: Path, source: Path, card: dict[str, Any], settings: ViewSettings, report: ViewReport
) -> None:
    """The source card's YAML with this folder's files and settings, and a short prose of what it is."""
    import yaml

    meta = {key: value for key, value in card.items() if key not in ("configs", "dataset_info")}
    name = str(card.get("pretty_name") or source.name)
    meta["pretty_name"] = f"{name} (training view)"
    pattern = "{}/*.zip" if report.layout == "shards" else "{}/**"
    meta["configs"] = [
        {
            "config_name": "default",
            "data_files": [{"split": s, "path": pattern.format(s)} for s in sorted(report.kept)],
        }
    ]
    # The features only: sizes and split counts (if the source card has them) are the source's.
    info = {"features": (card.get("dataset_info") or {}).get("features")}
    if report.layout == "shards":
        info["download_size"] = sum(p.stat().st_size for s in report.kept for p in (out / s).glob("*.zip"))
    else:
        info["download_size"] = report.view_bytes + sum(
            (out / s / "metadata.parquet").stat().st_size for s in report.kept
        )
    meta["dataset_info"] = info
    meta[VIEW_TAG] = {"format": FORMAT, **asdict(settings)}
    ratio = report.source_bytes / report.view_bytes if report.view_bytes else float("nan")
    rows = "\n".join(f"| {field_} | {value} |" for field_, value in asdict(settings).items())
    body = f"""# {name} (training view)

The rows of {name}, each clip reduced to exactly the frames a model is trained on and at the size it
sees them: the frames the `videokr` loader samples at the settings below, scaled to the Qwen-VL
processor's patch grid and re-encoded once (H.264). Every frame keeps its source timestamp, and each clip
carries the source's frame rate, frame count, size and the sampled frame indices (MP4 tag
`{VIEW_TAG}`), so the model's temporal positions are those of the original clip.

| setting | value |
|---|---|
{rows}

`factor` is the processor's patch size × merge size (28: Qwen2/2.5-VL; 32: Qwen3-VL). Train on it with
the usual scripts (`--dataset_name` pointing here); a run whose frame settings differ is refused with
both settings named. Clips: {_mb(report.view_bytes)}, {ratio:.1f}× less than the originals'
{_mb(report.source_bytes)}. Evaluate on the original clips.

Changes to the original clips: frames subsampled, scaled and re-encoded as described above; licences
and attribution are those of the originals (`ATTRIBUTION.md`).
"""
    header = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True)
    write_text_atomic(out / "README.md", f"---\n{header}---\n\n{body}")
    attribution = source / "ATTRIBUTION.md"
    if attribution.is_file():
        with atomic_path(out / "ATTRIBUTION.md") as tmp:
            shutil.copyfile(attribution, tmp)


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB"
