"""What the model is shown for a row: the full clip, one frame of it, or nothing, at model resolution.

`VisualLoader.load` is the one way from a row's ``video`` value to frames, for every consumer: the SFT
collator and GRPO prompt encoding (full video), the evaluation's probes (one frame, or none), the
benches. So SFT, GRPO and evaluation see a clip exactly the same way (same frames, same resolution, same
timing) by construction, and anyone who wants to check what the model was shown calls the same function.

Why the resize happens here and not in the processor: the paper caps *each frame* at 100,352 pixels (as
qwen-vl-utils does), but transformers' two Qwen video processors read their ``size`` budget differently
(per frame for Qwen2.5-VL, per clip for Qwen3-VL), so one number would mean two resolutions. Resizing
once here, to the processor's own patch grid (``patch_size × merge_size``), and calling the processor
with ``do_resize=False`` (`videokr.vision.chat.process`) gives both models the same frames at the same
budget, and gives the single frame of the probe the resolution the frame had inside the video.

The resize happens as frames are decoded: `sample_frames(size=...)` delivers them at the target size
(frame by frame, or 16 at a time; see `videokr.vision.decode`), so a loader never holds a clip's frames at
full resolution (128 frames of 720p: 354 MB as RGB, 36 MB at the paper's budget). The frames are those of
an antialiased bicubic resize of the full frames (`resize_frames`, the qwen-vl-utils operation: the same
pixels with torchcodec, over 35 dB PSNR with the other backends, tested), and the token ids and positions
are identical, since they depend on the size only.
"""

from __future__ import annotations

import copy
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import numpy as np
import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as tv_functional

from videokr.data.training_view import ViewClip, ViewSettings, read_view_clip
from videokr.errors import VideoDecodeError
from videokr.vision.decode import BACKEND_ENV, decoding_backend, frame_indices, probe, sample_frames
from videokr.vision.sampling import FrameSampling, smart_size

if TYPE_CHECKING:
    from transformers import ProcessorMixin
    from transformers.video_utils import VideoMetadata

__all__ = [
    "VISUAL_KINDS",
    "Visual",
    "VisualKind",
    "VisualLoader",
    "resize_frames",
    "smart_size",
    "video_source",
]

#: What a generation or a training example shows: the clip, one frame of it (the single-frame probe), or
#: nothing (the text-only probe).
VisualKind = Literal["video", "single_frame", "text_only"]
VISUAL_KINDS: tuple[VisualKind, ...] = ("video", "single_frame", "text_only")

_T = TypeVar("_T")


@dataclass(frozen=True)
class Visual:
    """The visual input of one example.

    ``frames`` is T×3×h×w uint8, already at model resolution (T = 1 for a single frame, which the model
    gets as an image); ``metadata`` the clip's timing, for video only (the processor needs it for the
    temporal positions); ``frame_indices`` the clip's frame numbers shown. Text only: no frames.
    """

    kind: VisualKind
    frames: torch.Tensor | None = None
    metadata: VideoMetadata | None = None
    frame_indices: tuple[int, ...] = ()

    @property
    def num_frames(self) -> int:
        return 0 if self.frames is None else int(self.frames.shape[0])

    def fresh_metadata(self) -> VideoMetadata:
        """A copy per processor call: the Qwen processors write into the metadata they are given."""
        return copy.deepcopy(self.metadata)


def video_source(video: Any) -> tuple[str | None, bytes | None]:
    """(path, bytes) of a row's ``video`` value: a path, or ``datasets.Video(decode=False)``'s dict.

    A local path wins; bytes are used only when the dataset carries no readable path (embedded parquet,
    streaming), so a clip on disk is never copied.
    """
    if isinstance(video, str | os.PathLike):
        return os.fspath(video), None
    if isinstance(video, Mapping):
        path, data = video.get("path"), video.get("bytes")
        if path and os.path.exists(path):
            return str(path), None
        if data:
            return path, bytes(data)
        return path, None
    raise TypeError(
        f"unsupported video value {type(video).__name__}: cast the column with datasets.Video(decode=False)"
    )


def is_remote(path: str) -> bool:
    """A clip path that is no local file but an fsspec URL (``zip://member::https://…``, ``hf://…``)."""
    return "://" in path and not os.path.exists(path)


def read_clip_bytes(path: str) -> bytes:
    """A remote clip's bytes, read through fsspec (range requests inside a ZIP shard). A failure to read
    is not a bad clip: it raises as it is (never a `VideoDecodeError`, which a collator would drop)."""
    import fsspec

    with fsspec.open(path, "rb") as handle:
        return handle.read()


def resize_frames(frames: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """T×H×W×3 uint8 → T×3×h×w uint8 with antialiased bicubic, as qwen-vl-utils resizes.

    The loader no longer needs it (the decoder delivers frames at the target size); it stays as the
    reference the scaled decode is checked against, and for frames that come from elsewhere.

    torchvision's uint8 kernel on the channels-last view the decoder gives is about 14× faster on CPU
    than a float `interpolate` (1.2 ms vs 17 ms for 12 frames of 320×180), and it is the operation the
    common qwen-vl-utils path runs, so the pixels the model sees match that path.
    """
    video = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
    if tuple(video.shape[-2:]) == size:
        return video.contiguous()
    resized = tv_functional.resize(video, list(size), interpolation=InterpolationMode.BICUBIC, antialias=True)
    return resized.contiguous()


class VisualLoader:
    """Decodes a row's clip into the `Visual` of a kind, sized for `processor`'s vision tower."""

    def __init__(self, processor: ProcessorMixin, sampling: FrameSampling | None = None) -> None:
        self.sampling = sampling or FrameSampling()
        video_processor = processor.video_processor
        self.factor = int(video_processor.patch_size) * int(video_processor.merge_size)

    def load(self, video: Any, kind: VisualKind = "video", *, frame_index: int | None = None) -> Visual:
        """`video` (a path or a ``{"path", "bytes"}`` dict) shown as `kind`.

        ``video``: the frames `sampling` picks. ``single_frame``: the clip's frame ``frame_index`` (of
        `frame_count`'s frames), resized as the video's frames are. ``text_only``: nothing is decoded.
        Every decoding failure is a `VideoDecodeError` naming the clip.
        """
        if kind == "text_only":
            return Visual("text_only")
        if kind == "video":
            return self._on_file(video, self._video)
        if kind == "single_frame":
            if frame_index is None:
                raise ValueError("a single frame needs frame_index (see frame_count)")
            return self._on_file(video, lambda path: self._frame(path, frame_index))
        raise ValueError(f"unknown visual kind {kind!r}; choose from {', '.join(VISUAL_KINDS)}")

    def video_metadata(self, video: Any) -> VideoMetadata:
        """The metadata `load` gives `video` as a video (which frames, their timing, the clip's size and
        rate) without decoding a frame: what the single-frame probe's held still needs from the clip."""
        return self._on_file(video, self._planned)

    def _planned(self, path: str) -> VideoMetadata:
        if read_view_clip(path) is not None:
            raise ValueError(f"{path} is a training-view clip: plan frames on the original clips")
        s = self.sampling
        info = probe(path)
        indices = frame_indices(info.num_frames, info.fps, **s.index_rule())
        return info.metadata(indices, backend=decoding_backend(s.backend, s.device))

    def frame_count(self, video: Any) -> int:
        """How many frames the clip has (what a single-frame index is drawn from)."""
        return self._on_file(video, lambda path: probe(path).num_frames)

    def _on_file(self, video: Any, read: Callable[[str], _T]) -> _T:
        path, data = video_source(video)
        if data is None and path is not None and is_remote(path):
            data = read_clip_bytes(path)
        if data is None:
            if path is None:
                raise VideoDecodeError("<no path>", "row has neither a clip path nor clip bytes")
            return read(path)
        # The decoders read files; an embedded clip goes through a private temporary file.
        suffix = os.path.splitext(path or "")[1] or ".mp4"
        with tempfile.NamedTemporaryFile(suffix=suffix) as handle:
            handle.write(data)
            handle.flush()
            try:
                return read(handle.name)
            except VideoDecodeError as error:
                raise VideoDecodeError(
                    path or "<embedded bytes>", error.reason, backend=error.backend
                ) from error

    def _video(self, path: str) -> Visual:
        view = read_view_clip(path)
        if view is not None:
            return self._view(path, view)
        s = self.sampling
        sampled = sample_frames(
            path,
            **s.index_rule(),
            backend=s.backend,
            size=self.target_size,
            channels_first=True,
            device=s.device,
        )
        indices = tuple(int(i) for i in sampled.metadata.frames_indices)
        return Visual("video", torch.from_numpy(sampled.frames), sampled.metadata, indices)

    def _view(self, path: str, view: ViewClip) -> Visual:
        """A training-view clip: made for this run's settings (else `TrainingViewMismatch`), its frames
        decoded as they are, with the source's timing, so the processor places them as it would have
        placed the original's (see `videokr.data.training_view`)."""
        from transformers.video_utils import VideoMetadata

        view.settings.check(ViewSettings.of(self.sampling, self.factor), path)
        # Every frame, in order: PyAV decodes straight through and copies the RGB planes as they are
        # (see `videokr.data.training_view.VIEW_CODEC`), unless a backend was asked for.
        backend = self.sampling.backend or os.environ.get(BACKEND_ENV) or "pyav"
        sampled = sample_frames(path, indices=range(len(view.indices)), backend=backend, channels_first=True)
        expected = self.target_size(view.source_height, view.source_width)
        if sampled.frames.shape[2:] != expected:
            raise VideoDecodeError(
                path, f"training-view frames are {sampled.frames.shape[2:]}, its tag says {expected}"
            )
        metadata = VideoMetadata(
            total_num_frames=view.source_num_frames,
            fps=view.source_fps,
            width=view.source_width,
            height=view.source_height,
            duration=view.source_num_frames / view.source_fps,
            video_backend=sampled.backend,
            frames_indices=list(view.indices),
        )
        return Visual("video", torch.from_numpy(sampled.frames), metadata, view.indices)

    def _frame(self, path: str, index: int) -> Visual:
        if read_view_clip(path) is not None:
            raise ValueError(
                f"{path} is a training-view clip, which holds only the frames sampled for training; show "
                "single frames from the original clips"
            )
        s = self.sampling
        sampled = sample_frames(
            path,
            indices=[index],
            backend=s.backend,
            size=self.target_size,
            channels_first=True,
            device=s.device,
        )
        return Visual("single_frame", torch.from_numpy(sampled.frames), None, (int(index),))

    def target_size(self, height: int, width: int) -> tuple[int, int]:
        """The (height, width) a clip of this size is shown at: the processor's patch grid within the
        sampling's pixel bounds (`smart_size`)."""
        s = self.sampling
        return smart_size(height, width, self.factor, s.min_pixels, s.max_pixels)
