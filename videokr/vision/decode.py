"""Open a clip and sample frames: one entry point for training collators, evaluation and the builders.

Three things matter to the callers and are decided here once:

1. **Which frames.** `frame_indices` is the sampling rule (the paper's 2 fps, at most 128 frames, or a
   fixed count), a pure function of the clip's frame count and native fps, so a collator, an evaluator
   and a dataset builder pick the same frames for the same clip.
2. **What "frame i" means.** Containers disagree with their own headers (edit lists that hide frames,
   headers without counts, truncated files). `probe` reads the container with PyAV and scans its packets
   without decoding them; frame *i* is the *i*-th displayed frame, i.e. the *i*-th smallest presentation
   timestamp among the video packets the demuxer delivers that are not marked *discard*. That count is
   what decodes (checked against decoded output on normal, edit-list, MPEG-TS, Matroska and WebM
   clips), and every backend is held to it, so the same indices give the same frames on every backend.
3. **How to decode.** torchcodec, decord or PyAV behind one interface (`sample_frames(backend=...)`),
   chosen automatically unless named (see `resolve_backend`). All three convert YUV to RGB with the same
   swscale path: on yuv420p, yuvj420p and yuv444p clips, BT.601- and BT.709-tagged, even and odd sizes,
   they returned bit-identical pixels (max abs difference 0); the tests allow `COLOUR_TOLERANCE`.
4. **At what size.** `sample_frames(size=...)` delivers the frames at the target size, shrinking each one
   as it is decoded (PyAV: swscale frame by frame; torchcodec and decord: chunks of 16 frames shrunk with
   torchvision's or swscale's bicubic), so a clip's sampled frames are never all held at full size:
   128 frames of 720p are 354 MB as RGB, 36 MB at the paper's 100,352 pixels. The model loader
   asks for exactly the size the Qwen processor would resize to, so the processor's resize is a no-op.

The result carries a `transformers.video_utils.VideoMetadata` with the clip's native fps, true frame
count, size and the sampled `frames_indices`, so Qwen processors can be called with
`video_metadata=[...]` and `do_sample_frames=False` and get the right temporal positions (without it
they assume 24 fps).

Thread and process safety: nothing is cached between calls except which backends import. Every call
opens its own container / `VideoDecoder` / `VideoReader` and closes it, so `sample_frames` is safe in
DataLoader workers (nothing is opened before a fork) and from several threads at once. `num_threads=0`
lets the decoder pick its thread count; with many DataLoader workers pass `num_threads=1`.
"""

from __future__ import annotations

import functools
import importlib
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import av
import numpy as np

from videokr.errors import VideoDecodeError
from videokr.vision.sampling import PAPER_FPS, PAPER_MAX_FRAMES

Size = tuple[int, int]
"""(height, width) of decoded frames, in display orientation."""

SizeRule = Size | Callable[[int, int], Size]
"""A fixed (height, width), or a function of the clip's displayed (height, width) giving it."""

if TYPE_CHECKING:
    from collections.abc import Iterator

    from av.container import InputContainer
    from av.video.stream import VideoStream
    from transformers.video_utils import VideoMetadata

__all__ = [
    "AUTO_ORDER",
    "BACKENDS",
    "BACKEND_ENV",
    "COLOUR_TOLERANCE",
    "SCALER",
    "SampledVideo",
    "Size",
    "SizeRule",
    "VideoInfo",
    "available_backends",
    "frame_indices",
    "probe",
    "resolve_backend",
    "sample_frames",
]

BACKENDS: tuple[str, ...] = ("torchcodec", "decord", "pyav")
"""Every backend this module knows, by the name `sample_frames(backend=...)` and the metadata use."""

AUTO_ORDER: tuple[str, ...] = ("torchcodec", "pyav", "decord")
"""Automatic choice, first importable wins. Speed does not decide it: with the strategies below the three
were within run-to-run noise of each other on 2 CPU cores (32 / 120 frames of a 60 s 480p clip with
250-frame GOPs: torchcodec 1.2 / 1.8 s, decord 1.0 / 1.4 s, PyAV 1.0 / 1.1 s; 32 / 128 frames of a
180 s 720p clip: 2.3–3.9 s / 5.2–7.2 s for each), decoding up to the target dominates. Why this order:

- torchcodec: maintained, one C++ call per batch (no per-frame Python, so it also suits threads), exact
  on edit-list clips, and the decoder `datasets`' `Video` feature uses. It needs the system FFmpeg
  (4–8); without it the import fails and the next backend is used. Its first call in a process pays
  for importing torch.
- pyav: always installed (a hard dependency; bundles its own FFmpeg) and exact, because it seeks by the
  same packet table `probe` builds.
- decord: no release since 0.6.0 and wrong on clips whose container hides frames with an edit list (it
  counts the hidden frames and its index drifts after a seek); it is used only when named or when
  neither of the others imports, and it refuses such clips rather than return wrong frames.
"""

BACKEND_ENV = "VIDEOKR_VIDEO_BACKEND"
"""Environment variable naming the backend when the call does not; read at call time, so DataLoader
workers and tests can set it. Naming one that is unknown or not importable is an error."""

COLOUR_TOLERANCE = 2
"""Max abs difference (uint8) allowed between backends for the same frame. Measured: 0 on every clip
tried (all three use swscale's default YUV→RGB); 2 leaves room for rounding in other library builds."""

SCALER = (
    av.video.reformatter.Interpolation.BICUBIC
    | av.video.reformatter.Interpolation.FULL_CHR_H_INT
    | av.video.reformatter.Interpolation.ACCURATE_RND
)
"""swscale flags PyAV scales with: bicubic, as qwen-vl-utils resizes (swscale widens its kernel when
shrinking, so it is antialiased too), with accurate rounding.

Each frame is scaled in two swscale passes, YUV to RGB at full size, then RGB to RGB at the target size;
only that one frame is ever held at full size. Scaling the YUV planes directly in the conversion is
faster but shrinks the subsampled chroma plane on its own: measured against torchvision's antialiased
bicubic of the full RGB frames (the reference), 720p shrunk to 420×224 came out at 30 dB (38.7 with full
chroma interpolation, 32.9 on sharp-edged texture) against 50–53 dB for the two passes, which cost
12–17 ms a frame on one core."""

logger = logging.getLogger(__name__)

_ALIASES = {"av": "pyav", "torchcodec": "torchcodec", "decord": "decord", "pyav": "pyav"}


# --------------------------------------------------------------------------------------------------
# Which frames
# --------------------------------------------------------------------------------------------------


def frame_indices(
    total_frames: int,
    native_fps: float,
    *,
    fps: float = PAPER_FPS,
    max_frames: int | None = PAPER_MAX_FRAMES,
    num_frames: int | None = None,
    min_frames: int = 1,
    multiple_of: int = 1,
) -> np.ndarray:
    """Frame indices to sample from a clip of `total_frames` frames at `native_fps`; sorted, deterministic.

    How many (`n`):
      - `num_frames` given: exactly that many (`fps`, `max_frames`, `min_frames`, `multiple_of` ignored).
      - otherwise the count the target rate gives over the clip, `round(duration × fps)` (halves up), at
        least 1 (a clip shorter than one sampling interval still gives a frame), at most `total_frames`
        (a rate above the native one gives every frame once), at most `max_frames` (a clip longer than
        `max_frames / fps` seconds gets `max_frames` spread over the whole clip, as in the paper), then
        at least `min_frames`, then rounded to a multiple of `multiple_of` (up, or down if up would pass
        `max_frames`).

    Where: the clip is cut into `n` equal intervals and each sample is the frame at the *centre* of its
    interval, `floor((k + ½) · total / n)`, in exact integer arithmetic. Centres treat both ends alike
    (start-of-interval sampling never sees the last part of the clip and always shows the first frame,
    often a black fade-in) and never ask for the very last frame, the one most often damaged.

    When `n > total_frames` (only through `num_frames` or `min_frames`) indices repeat, so the caller
    gets exactly `n` frames rather than fewer.

    Qwen2-VL/2.5-VL/3-VL video processors group frames in temporal pairs (`temporal_patch_size=2`) and pad
    an odd count by repeating the last frame (Qwen3-VL also averages that pair's timestamps); an odd `n`
    costs as many tokens as `n + 1`. Pass `multiple_of=2` to spend that slot on a real frame instead, and
    `min_frames=4` to match the processors' own minimum.
    """
    if total_frames < 1:
        raise ValueError(f"total_frames must be ≥ 1, got {total_frames}")
    if num_frames is not None:
        if num_frames < 1:
            raise ValueError(f"num_frames must be ≥ 1, got {num_frames}")
        n = num_frames
    else:
        n = _count_for_rate(total_frames, native_fps, fps, max_frames, min_frames, multiple_of)
    k = np.arange(n, dtype=np.int64)
    return (2 * k + 1) * total_frames // (2 * n)


def _count_for_rate(
    total_frames: int,
    native_fps: float,
    fps: float,
    max_frames: int | None,
    min_frames: int,
    multiple_of: int,
) -> int:
    """The number of samples `frame_indices` takes in rate mode; see its docstring for the rule."""
    if not native_fps > 0:
        raise ValueError(f"native_fps must be > 0, got {native_fps}")
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_frames must be ≥ 1 or None, got {max_frames}")
    if min_frames < 1 or (max_frames is not None and min_frames > max_frames):
        raise ValueError(f"min_frames must be in [1, max_frames], got {min_frames} (max_frames={max_frames})")
    if multiple_of < 1:
        raise ValueError(f"multiple_of must be ≥ 1, got {multiple_of}")
    n = int(np.floor(total_frames * fps / native_fps + 0.5))
    n = min(max(n, 1), total_frames)
    if max_frames is not None:
        n = min(n, max_frames)
    n = max(n, min_frames)
    if n % multiple_of:
        up = -(-n // multiple_of) * multiple_of
        n = up if max_frames is None or up <= max_frames else max(n // multiple_of * multiple_of, multiple_of)
    return n


# --------------------------------------------------------------------------------------------------
# What "frame i" means: probing
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VideoInfo:
    """What `probe` learns about a clip without decoding it (beyond its first frame).

    `fps` is the container's average frame rate (exact for constant-rate clips, e.g. 30000/1001);
    `num_frames` the displayable frames (see the module docstring); `duration` is `num_frames / fps`,
    the same convention transformers uses, so `VideoMetadata.timestamps` (index / fps) and `duration`
    agree. `width`/`height` are the displayed size, after the container's rotation.

    The frame table (`frame_pts`, `keyframe_pts`, `time_base`, `start_pts`) lets every
    backend be checked, and PyAV seek, against the same frame identity.
    """

    path: str
    fps: float
    num_frames: int
    duration: float
    width: int
    height: int
    rotation: int
    codec: str
    time_base: Fraction
    start_pts: int
    frame_pts: np.ndarray = field(repr=False)
    keyframe_pts: np.ndarray = field(repr=False)

    def timestamps(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """Presentation times (seconds) of `indices`, counted from the first displayed frame."""
        pts = self.frame_pts[np.asarray(indices, dtype=np.int64)]
        return ((pts - self.frame_pts[0]) * float(self.time_base)).astype(np.float64)

    def metadata(self, indices: Sequence[int] | np.ndarray, backend: str | None = None) -> VideoMetadata:
        """The `VideoMetadata` a Qwen processor needs for frames sampled at `indices`."""
        # Imported here: transformers.video_utils pulls in torch and torchvision (~3 s), which `probe`
        # alone (e.g. in a dataset builder) does not need.
        from transformers.video_utils import VideoMetadata

        return VideoMetadata(
            total_num_frames=self.num_frames,
            fps=self.fps,
            width=self.width,
            height=self.height,
            duration=self.duration,
            video_backend=backend,
            frames_indices=[int(i) for i in indices],
        )


def probe(path: str | os.PathLike[str]) -> VideoInfo:
    """Read a clip's fps, true frame count, duration and size with PyAV, decoding only its first frame.

    Cost: one pass over the container's packets without decoding them (about 15 ms for a 60 s 480p
    clip, 60 ms for a 150 MB 180 s 720p one, file in page cache) plus one decoded frame, which proves
    the stream decodes and gives the displayed orientation.
    The header's own frame count is not trusted: it is absent in Matroska/WebM/MPEG-TS and counts
    edit-list-hidden frames in MP4. Raises `VideoDecodeError` (backend "pyav") for a missing file, a
    directory, an empty file, bytes that are not a container, a container without video or without
    frames, a truncated file (a packet cut short, or a sample index pointing past the end of the file),
    and a first frame that does not decode.
    """
    path = _checked_path(path)
    try:
        container = av.open(path)
    except (av.FFmpegError, OSError) as e:
        raise VideoDecodeError(path, f"not a readable video container ({_short(e)})", backend="pyav") from e
    with container:
        if not container.streams.video:
            raise VideoDecodeError(path, "container has no video stream", backend="pyav")
        stream = container.streams.video[0]
        _check_index_within_file(path, stream)
        return _scan(path, container, stream)


def _checked_path(path: str | os.PathLike[str]) -> str:
    """Catch the path problems every backend reports differently (or obscurely) before opening."""
    p = Path(path)
    if not p.exists():
        raise VideoDecodeError(p, "file not found")
    if p.is_dir():
        raise VideoDecodeError(p, "is a directory, not a video file")
    if p.stat().st_size == 0:
        raise VideoDecodeError(p, "empty file (0 bytes)")
    return str(p)


def _check_index_within_file(path: str, stream: VideoStream) -> None:
    """A truncated MP4 with its index up front (faststart) still opens; its index then points past EOF."""
    size = os.path.getsize(path)
    entries = stream.index_entries
    if len(entries) and max(e.pos + e.size for e in entries) > size:
        raise VideoDecodeError(
            path, "truncated: the container index points past the end of the file", backend="pyav"
        )


def _scan(path: str, container: InputContainer, stream: VideoStream) -> VideoInfo:
    """One demux pass: the displayed frames' timestamps, the keyframes, and the first decoded frame."""
    pts: list[int] = []
    key_pts: list[int] = []
    first = None
    try:
        for packet in container.demux(stream):
            if packet.size == 0 or packet.is_discard:
                continue
            if packet.is_corrupt:
                raise VideoDecodeError(
                    path, f"truncated or corrupt: video packet {len(pts)} is incomplete", backend="pyav"
                )
            stamp = packet.pts if packet.pts is not None else packet.dts
            if stamp is None:
                stamp = pts[-1] + 1 if pts else 0  # no timestamps at all: decode order is display order
            pts.append(stamp)
            if packet.is_keyframe:
                key_pts.append(stamp)
            if first is None:
                first = next(iter(stream.decode(packet)), None)
        if first is None and pts:
            first = next(iter(stream.decode(None)), None)
    except av.FFmpegError as e:
        raise VideoDecodeError(path, f"corrupt video stream ({_short(e)})", backend="pyav") from e
    if not pts:
        raise VideoDecodeError(path, "video stream has no frames", backend="pyav")
    if first is None:
        raise VideoDecodeError(path, "no frame of the video stream decodes", backend="pyav")
    return _info(path, stream, first, np.sort(np.asarray(pts, dtype=np.int64)), np.sort(np.asarray(key_pts)))


def _info(
    path: str,
    stream: VideoStream,
    first: av.VideoFrame,
    pts: np.ndarray,
    key_pts: np.ndarray,
) -> VideoInfo:
    time_base = stream.time_base or Fraction(1, 1)
    fps = _native_fps(stream, pts, time_base)
    rotation = round((first.rotation or 0) / 90) % 4 * 90
    width, height = (first.height, first.width) if rotation in (90, 270) else (first.width, first.height)
    return VideoInfo(
        path=path,
        fps=fps,
        num_frames=len(pts),
        duration=len(pts) / fps,
        width=width,
        height=height,
        rotation=rotation,
        codec=stream.codec_context.name,
        time_base=time_base,
        start_pts=stream.start_time if stream.start_time is not None else int(pts[0]),
        frame_pts=pts,
        keyframe_pts=key_pts.astype(np.int64),
    )


def _native_fps(stream: VideoStream, pts: np.ndarray, time_base: Fraction) -> float:
    """The container's average rate; failing that, frames over the span of their timestamps."""
    for rate in (stream.average_rate, stream.guessed_rate):
        if rate:
            return float(rate)
    span = float((pts[-1] - pts[0]) * time_base)
    return (len(pts) - 1) / span if len(pts) > 1 and span > 0 else 1.0


# --------------------------------------------------------------------------------------------------
# How to decode: backends
# --------------------------------------------------------------------------------------------------

_Decoder = Callable[[VideoInfo, np.ndarray, int, "Size | None", bool], np.ndarray]
"""(info, unique sorted indices, num_threads, target size or None, channels first) -> frames
(len(indices), h, w, 3), or (len(indices), 3, h, w) when channels first, uint8 RGB, at the target size
(display orientation) or the clip's own."""


@functools.cache
def _import_error(name: str) -> str | None:
    """Why backend `name` cannot be used here, or None when it can. Cached: imports are per process."""
    module = {"torchcodec": "torchcodec.decoders", "decord": "decord", "pyav": "av"}[name]
    try:
        importlib.import_module(module)
    except Exception as e:  # torchcodec raises RuntimeError, not ImportError, when FFmpeg is missing
        return f"{type(e).__name__}: {_short(e)}"
    return None


def available_backends() -> tuple[str, ...]:
    """The backends that import in this process, in automatic-choice order."""
    return tuple(name for name in AUTO_ORDER if _import_error(name) is None)


def decoding_backend(backend: str | None, device: str = "cpu") -> str:
    """The backend `sample_frames` decodes with: `backend`, else torchcodec on a GPU (the one that decodes
    there), else `resolve_backend`'s choice."""
    return resolve_backend(backend or ("torchcodec" if device != "cpu" else None))


def resolve_backend(backend: str | None = None) -> str:
    """The backend a call will use: `backend`, else `$VIDEOKR_VIDEO_BACKEND`, else the first of `AUTO_ORDER`
    that imports.

    A name given explicitly (argument or variable) must be known and importable: a typo or a missing
    library raises instead of quietly decoding with something else, because backends can differ on
    damaged clips and a run should say which one it used.
    """
    requested = backend or os.environ.get(BACKEND_ENV, "").strip() or None
    if requested is None:
        found = available_backends()
        if not found:
            raise ImportError("no video backend imports (torchcodec, pyav, decord)")
        return found[0]
    name = _ALIASES.get(requested.lower())
    source = "backend argument" if backend else f"${BACKEND_ENV}"
    if name is None:
        raise ValueError(
            f"unknown video backend {requested!r} ({source}); choose one of {', '.join(BACKENDS)}"
        )
    if (why := _import_error(name)) is not None:
        raise ImportError(f"video backend {name!r} ({source}) is not usable here: {why}")
    return name


def _decode_torchcodec(
    info: VideoInfo,
    indices: np.ndarray,
    num_threads: int,
    size: Size | None,
    channels_first: bool,
    device: str = "cpu",
) -> np.ndarray:
    """`get_frames_at` in exact seek mode (torchcodec scans the packets itself, as `probe` did).

    A target size: frames are decoded `_CHUNK` at a time and each chunk is shrunk with torchvision's
    antialiased bicubic (the operation of the full path, so the pixels are the same), so at most one
    chunk is held at full size. torchcodec 0.17's own `Resize` decoder transform was measured and not
    used: bilinear (40 dB from the full path on 720p), and 3–4× slower than this on small clips (314 ms
    against 100 ms for a 12-frame 192×144 clip; equal on 720p, where decoding dominates).

    On a CUDA `device` torchcodec decodes with NVDEC and the chunks are shrunk on the GPU by the same
    torchvision call; only the frames at the target size come back to host memory. A clip NVDEC cannot
    decode (4:4:4 H.264, which a training view is, or a codec the GPU lacks) is decoded by torchcodec on
    the CPU instead; that is logged once per process, never silent.
    """
    from torchcodec.decoders import VideoDecoder

    order = "NCHW" if channels_first or size is not None else "NHWC"
    decoder = VideoDecoder(
        info.path, seek_mode="exact", dimension_order=order, num_ffmpeg_threads=num_threads, device=device
    )
    if decoder.metadata.num_frames != info.num_frames:
        raise _Mismatch(
            f"torchcodec indexes {decoder.metadata.num_frames} frames, the container {info.num_frames}"
        )
    expected = info.frame_pts[indices] * float(info.time_base)
    if size is None:
        batch = decoder.get_frames_at(indices.tolist())
        _check_times(batch.pts_seconds.cpu().numpy(), expected, info)
        _note_fallback(decoder, device)
        return batch.data.cpu().numpy()
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.v2 import functional as tv_functional

    out = np.empty(_shape(len(indices), size, channels_first), dtype=np.uint8)
    for start in range(0, len(indices), _CHUNK):
        batch = decoder.get_frames_at(indices[start : start + _CHUNK].tolist())
        _check_times(batch.pts_seconds.cpu().numpy(), expected[start : start + _CHUNK], info)
        shrunk = tv_functional.resize(  # channels first, the layout `resize_frames` hands torchvision
            batch.data, list(size), interpolation=InterpolationMode.BICUBIC, antialias=True
        )
        shrunk = shrunk if channels_first else shrunk.permute(0, 2, 3, 1)
        out[start : start + len(shrunk)] = shrunk.cpu().numpy()
    _note_fallback(decoder, device)
    return out


def _note_fallback(decoder: Any, device: str) -> None:
    """Log (once per process and reason) a clip torchcodec decoded on the CPU although `device` was asked."""
    status = decoder.cpu_fallback
    if device != "cpu" and status:
        reason = str(status)
        if reason not in _FALLBACKS_LOGGED:
            _FALLBACKS_LOGGED.add(reason)
            logger.warning("decoding on %s fell back to the CPU for some clips: %s", device, reason)


_FALLBACKS_LOGGED: set[str] = set()


_CHUNK = 16
"""Frames decoded at full size before they are shrunk, for the backends that cannot scale while they
convert (16 frames of 720p: 44 MB, against 354 MB for 128)."""


def _decode_decord(
    info: VideoInfo, indices: np.ndarray, num_threads: int, size: Size | None, channels_first: bool
) -> np.ndarray:
    """`get_batch`, after checking decord's frame index is the container's.

    decord counts edit-list-hidden frames and its index then drifts after a seek; a count that differs
    from `probe` is refused. decord fills a frame it cannot decode with a copy of a neighbour unless told
    otherwise; `fault_tol` as a ratio (documented: raise once more than that fraction of the clip was so
    "recovered") set far below one frame makes it raise on the first.

    A target size is not given to decord's own reader size: its scaler shrinks the chroma plane on its
    own (30.6 dB from the reference on a 720p clip). Frames are read in chunks of `_CHUNK` at full
    size and each is shrunk by swscale as PyAV's are (RGB to RGB, `SCALER`: 50 dB), so at most one chunk
    is ever held at full resolution.
    """
    import decord

    reader = decord.VideoReader(info.path, ctx=decord.cpu(0), num_threads=num_threads, fault_tol=1e-9)
    if len(reader) != info.num_frames:
        raise _Mismatch(
            f"decord indexes {len(reader)} frames but {info.num_frames} are displayed (edit list?); "
            "decord would return the wrong frames, use torchcodec or pyav"
        )
    expected = (info.frame_pts[indices] - info.start_pts) * float(info.time_base)
    _check_times(reader.get_frame_timestamp(indices.tolist())[:, 0], expected, info)
    if size is None:
        frames = reader.get_batch(indices.tolist()).asnumpy()
        return frames.transpose(0, 3, 1, 2) if channels_first else frames
    out = np.empty(_shape(len(indices), size, channels_first), dtype=np.uint8)
    for start in range(0, len(indices), _CHUNK):
        chunk = reader.get_batch(indices[start : start + _CHUNK].tolist()).asnumpy()
        for offset, image in enumerate(chunk):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            scaled = frame.reformat(width=size[1], height=size[0], interpolation=SCALER).to_ndarray()
            out[start + offset] = scaled.transpose(2, 0, 1) if channels_first else scaled
    return out


def _decode_pyav(
    info: VideoInfo, indices: np.ndarray, num_threads: int, size: Size | None, channels_first: bool
) -> np.ndarray:
    """Decode forward through the clip, seeking to a keyframe only when one lies before the next target.

    Dense indices therefore decode sequentially with no seek, sparse ones skip whole GOPs. Frames are
    matched by presentation timestamp against `probe`'s table, never by counting, so a seek that lands
    early costs time but never a wrong frame; one that lands late is retried from the keyframe before.
    A frame that still does not come out is an error. A target size is applied by swscale frame by frame
    (`SCALER`), in the coded orientation, before the rotation.

    Frames stored as planar RGB (a training view: `videokr.data.training_view.VIEW_CODEC`) and asked for
    channels first at their own size are copied plane by plane, with no conversion at all.
    """
    height, width = size if size is not None else (info.height, info.width)
    coded = _coded((height, width), info.rotation)
    out = np.empty(_shape(len(indices), (height, width), channels_first), dtype=np.uint8)
    planar = channels_first and size is None and not info.rotation
    with av.open(info.path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        stream.thread_count = num_threads
        frames: Iterator[av.VideoFrame] | None = None
        last: int | None = None  # pts of the last frame decoded
        for i, target in enumerate(info.frame_pts[indices].tolist()):
            key = int(np.searchsorted(info.keyframe_pts, target, side="right")) - 1
            sought = frames is None or last is None or (key >= 0 and info.keyframe_pts[key] > last)
            if sought:
                frames = _seek(container, stream, info, key)
            frame, last = _advance(frames, target)
            while frame is None and sought and key >= 0:  # the seek landed late: back off a keyframe
                key -= 1
                frames = _seek(container, stream, info, key)
                frame, last = _advance(frames, target)
            if frame is None:
                raise _Mismatch(f"frame {int(indices[i])} (pts {target}) did not decode (last pts {last})")
            if planar and frame.format.name == "gbrp":
                _copy_gbrp(frame, out[i])
                continue
            if size is None:
                rgb = frame.to_ndarray(format="rgb24")
            else:
                full = frame.reformat(format="rgb24")
                rgb = full.reformat(width=coded[1], height=coded[0], interpolation=SCALER).to_ndarray()
            rgb = _rotate(rgb, info.rotation)
            out[i] = rgb.transpose(2, 0, 1) if channels_first else rgb
    return out


def _copy_gbrp(frame: av.VideoFrame, out: np.ndarray) -> None:
    """A planar G, B, R frame into `out` (3×H×W, R first), minding each plane's row padding."""
    height, width = out.shape[1:]
    for channel, plane in zip((1, 2, 0), frame.planes, strict=True):
        rows = np.frombuffer(plane, dtype=np.uint8).reshape(height, plane.line_size)
        out[channel] = rows[:, :width]


def _shape(count: int, size: Size, channels_first: bool) -> tuple[int, int, int, int]:
    return (count, 3, *size) if channels_first else (count, *size, 3)


def _seek(
    container: InputContainer, stream: VideoStream, info: VideoInfo, key: int
) -> Iterator[av.VideoFrame]:
    """Seek to keyframe `key` of the table (`-1`: the start of the stream).

    By the keyframe's presentation timestamp: MP4 seeks by it (its decode timestamp, smaller with
    B-frames, lands a whole GOP early), and demuxers that seek by decode timestamp still land on or
    before the keyframe.
    """
    offset = int(info.keyframe_pts[key]) if key >= 0 else int(info.start_pts)
    container.seek(offset, stream=stream, backward=True, any_frame=False)
    return container.decode(stream)


def _advance(frames: Iterator[av.VideoFrame], target: int) -> tuple[av.VideoFrame | None, int | None]:
    """Decode until the frame shown at `target`; None if the stream passes it or ends first."""
    last = None
    for frame in frames:
        last = frame.pts
        if frame.pts is None or frame.pts > target:
            return None, last
        if frame.pts == target:
            return frame, last
    return None, last


def _coded(size: Size, rotation: int) -> Size:
    """A display-orientation (height, width) in the stream's coded orientation, where scalers work."""
    return (size[1], size[0]) if rotation in (90, 270) else size


def _rotate(image: np.ndarray, rotation: int) -> np.ndarray:
    """Apply the container's display rotation (counter-clockwise degrees), as torchcodec and decord do."""
    return np.rot90(image, rotation // 90) if rotation else image


_DECODERS: dict[str, _Decoder] = {
    "torchcodec": _decode_torchcodec,
    "decord": _decode_decord,
    "pyav": _decode_pyav,
}


class _Mismatch(Exception):
    """A backend disagrees with the container's frame table; becomes a VideoDecodeError naming it."""


def _check_times(got: np.ndarray, expected: np.ndarray, info: VideoInfo) -> None:
    """The backend returned the frames shown at the expected times (within a quarter of a frame)."""
    bad = np.flatnonzero(np.abs(np.asarray(got, dtype=np.float64) - expected) > 0.25 / info.fps)
    if bad.size:
        i = int(bad[0])
        raise _Mismatch(f"returned the frame at {float(got[i]):.4f}s where {expected[i]:.4f}s was asked")


# --------------------------------------------------------------------------------------------------
# The entry point
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SampledVideo:
    """Frames sampled from one clip, with everything a processor or a prompt needs to place them in time.

    `frames` is T×H×W×3 (T×3×H×W if asked for channels first) uint8 RGB in display orientation; `indices` the
    native frame indices (sorted, unless given explicitly); `timestamps` their presentation times in seconds
    from the first frame (equal to `metadata.timestamps`, index / fps, for constant-rate clips); `metadata`
    the `VideoMetadata` to pass as `video_metadata=[...]` with `do_sample_frames=False`; `info` what `probe`
    found; `backend` the backend that decoded them.

    `metadata` is made on first use: it imports transformers (and torch, seconds per process), which
    a caller that only wants the frames (a training-view build's workers) should not pay for.
    """

    frames: np.ndarray
    indices: np.ndarray
    timestamps: np.ndarray
    info: VideoInfo
    backend: str

    @functools.cached_property
    def metadata(self) -> VideoMetadata:
        return self.info.metadata(self.indices, backend=self.backend)


def sample_frames(
    path: str | os.PathLike[str],
    *,
    fps: float = PAPER_FPS,
    max_frames: int | None = PAPER_MAX_FRAMES,
    num_frames: int | None = None,
    min_frames: int = 1,
    multiple_of: int = 1,
    indices: Sequence[int] | None = None,
    backend: str | None = None,
    num_threads: int = 0,
    size: SizeRule | None = None,
    channels_first: bool = False,
    device: str = "cpu",
) -> SampledVideo:
    """Decode the frames `frame_indices` picks (or exactly `indices`) from the clip at `path`.

    Defaults are the paper's: 2 fps, at most 128 frames. `indices` overrides the rule (any order, repeats
    allowed; frames come back in that order). `backend` overrides the automatic choice (see
    `resolve_backend`). `fps` is the sampling rate asked for; the clip's own rate is in `result.metadata.fps`.
    `num_threads=0` lets the decoder choose; use 1 per DataLoader worker when there are many workers. `size`
    is the (height, width) the frames are delivered at, or a function of the clip's displayed (height, width)
    giving it (see point 4 of the module docstring); the metadata keeps the clip's own size. `channels_first`
    delivers T×3×H×W, the processors' layout, with no extra copy of the frames (a training view's planar RGB
    is copied plane by plane). `device` other than ``"cpu"`` (``"cuda"``, ``"cuda:1"``) decodes on that
    GPU (torchcodec only; see `_decode_torchcodec`); the frames still come back as host arrays. Every
    failure, whatever the backend, is a `VideoDecodeError` naming the file (and the backend that met it);
    the call never returns fewer frames than asked.
    """
    name = decoding_backend(backend, device)
    _check_device(device, name)
    info = probe(path)
    if indices is None:
        wanted = frame_indices(
            info.num_frames,
            info.fps,
            fps=fps,
            max_frames=max_frames,
            num_frames=num_frames,
            min_frames=min_frames,
            multiple_of=multiple_of,
        )
    else:
        wanted = _checked_indices(info, indices)
    target = size(info.height, info.width) if callable(size) else size
    if target is not None:
        target = (int(target[0]), int(target[1]))
        if min(target) < 1:
            raise ValueError(f"size must be positive (height, width), got {target}")
        if target == (info.height, info.width):
            target = None  # nothing to scale: the plain conversion, bit-identical across backends
    frames = _decode(name, info, wanted, num_threads, target, channels_first, device)
    return SampledVideo(
        frames=frames,
        indices=wanted,
        timestamps=info.timestamps(wanted),
        info=info,
        backend=name,
    )


def _check_device(device: str, backend: str) -> None:
    """A decoding device is configuration: a wrong one raises here, before any clip is read, and never as a
    `VideoDecodeError` (which a collator would take for one bad clip and skip)."""
    if device == "cpu":
        return
    if backend != "torchcodec":
        raise ValueError(f"decoding on {device!r} needs the torchcodec backend, not {backend!r}")
    import torch

    if not device.startswith("cuda") or not torch.cuda.is_available():
        raise RuntimeError(
            f"cannot decode on {device!r}: "
            + ("no CUDA device is visible" if device.startswith("cuda") else "only 'cpu' and CUDA devices")
        )


def _checked_indices(info: VideoInfo, indices: Sequence[int]) -> np.ndarray:
    wanted = np.asarray(indices)
    if wanted.ndim != 1 or wanted.size == 0 or not np.issubdtype(wanted.dtype, np.integer):
        raise ValueError(f"indices must be a non-empty sequence of integers, got {indices!r}")
    wanted = wanted.astype(np.int64)
    outside = wanted[(wanted < 0) | (wanted >= info.num_frames)]
    if outside.size:
        raise VideoDecodeError(
            info.path, f"frame index {int(outside[0])} out of range: the clip has {info.num_frames} frames"
        )
    return wanted


def _decode(
    name: str,
    info: VideoInfo,
    wanted: np.ndarray,
    num_threads: int,
    size: Size | None,
    channels_first: bool = False,
    device: str = "cpu",
) -> np.ndarray:
    """Decode each distinct index once, then lay the frames out in the order (and repeats) asked."""
    unique, inverse = np.unique(wanted, return_inverse=True)
    decoder = _DECODERS[name] if device == "cpu" else functools.partial(_decode_torchcodec, device=device)
    try:
        frames = decoder(info, unique, num_threads, size, channels_first)
    except VideoDecodeError:
        raise
    except Exception as e:  # each library raises its own types (RuntimeError, DECORDError, FFmpegError)
        raise VideoDecodeError(info.path, f"decoding failed: {_short(e)}", backend=name) from e
    expected = _shape(len(unique), size or (info.height, info.width), channels_first)
    if frames.shape != expected or frames.dtype != np.uint8:
        raise VideoDecodeError(
            info.path, f"decoded {frames.shape} {frames.dtype}, expected {expected} uint8", backend=name
        )
    if len(unique) == len(wanted) and np.array_equal(unique, wanted):
        return np.ascontiguousarray(frames)  # the usual case: no second copy of the frames
    return np.ascontiguousarray(frames[inverse])


def _short(error: BaseException, limit: int = 300) -> str:
    """First line of a library's error, bounded: some (decord) put whole C++ stack traces in there."""
    text = str(error).strip().splitlines()
    first = text[0] if text else type(error).__name__
    return first if len(first) <= limit else first[:limit] + "…"
