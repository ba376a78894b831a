"""Turn a dataset row's clip into model-ready frames: decode, sample, cap the pixels per frame, time-stamp.

Both trainers go through `ClipLoader`, so SFT and GRPO see a clip exactly the same way (same frames, same
resolution, same timing), and so does anyone who wants to check what the model was shown.

Why the resize happens here and not in the processor: the paper caps *each frame* at 100,352 pixels (as
qwen-vl-utils does), but transformers' two Qwen video processors read their ``size`` budget differently
(per frame for Qwen2.5-VL, per clip for Qwen3-VL), so one number would mean two resolutions. Resizing
once here, to the processor's own patch grid (``patch_size × merge_size``), and calling the processor
with ``do_resize=False`` gives both models the same frames at the same budget.
"""

from __future__ import annotations

import copy
import math
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as tv_functional

from videokr.errors import VideoDecodeError
from videokr.video import sample_frames

if TYPE_CHECKING:
    from transformers import ProcessorMixin
    from transformers.video_utils import VideoMetadata

#: The paper's per-frame pixel budget (128 × 28 × 28).
PAPER_MAX_PIXELS = 100_352


@dataclass(frozen=True)
class FrameSampling:
    """How frames are taken from a clip: the paper's 2 fps and at most 128 frames by default.

    ``num_frames`` fixes the count instead (tests, ablations). ``max_pixels`` / ``min_pixels`` bound each
    frame after resizing. ``backend`` names a `videokr.video` backend (None: automatic).
    """

    fps: float = 2.0
    max_frames: int = 128
    num_frames: int | None = None
    max_pixels: int = PAPER_MAX_PIXELS
    min_pixels: int = 3136
    backend: str | None = None


@dataclass(frozen=True)
class Clip:
    """Frames (T×H×W×3 uint8, already at model resolution) and the timing the processor needs."""

    frames: torch.Tensor
    metadata: VideoMetadata

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


def smart_size(height: int, width: int, factor: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """The qwen-vl-utils resize rule: sides multiples of ``factor``, area in [min_pixels, max_pixels],
    aspect ratio kept as closely as the grid allows."""
    h = max(factor, round(height / factor) * factor)
    w = max(factor, round(width / factor) * factor)
    if h * w > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h = max(factor, math.floor(height / beta / factor) * factor)
        w = max(factor, math.floor(width / beta / factor) * factor)
    elif h * w < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h = math.ceil(height * beta / factor) * factor
        w = math.ceil(width * beta / factor) * factor
    return h, w


def resize_frames(frames: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """T×H×W×3 uint8 → T×3×h×w uint8 with antialiased bicubic, as qwen-vl-utils resizes.

    torchvision's uint8 kernel on the channels-last view the decoder gives is about 14× faster on CPU
    than a float `interpolate` (1.2 ms vs 17 ms for 12 frames of 320×180), and it is the operation the
    common qwen-vl-utils path runs, so the pixels the model sees match that path.
    """
    video = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
    if tuple(video.shape[-2:]) == size:
        return video.contiguous()
    resized = tv_functional.resize(video, list(size), interpolation=InterpolationMode.BICUBIC, antialias=True)
    return resized.contiguous()


class ClipLoader:
    """Decodes the clip of a row into a `Clip` sized for `processor`'s vision tower."""

    def __init__(self, processor: ProcessorMixin, sampling: FrameSampling | None = None) -> None:
        self.sampling = sampling or FrameSampling()
        video_processor = processor.video_processor
        self.factor = int(video_processor.patch_size) * int(video_processor.merge_size)

    def load(self, video: Any) -> Clip:
        """Decode `video` (a path or a ``{"path", "bytes"}`` dict); `VideoDecodeError` names the clip."""
        path, data = video_source(video)
        if data is None:
            if path is None:
                raise VideoDecodeError("<no path>", "row has neither a clip path nor clip bytes")
            return self._load_path(path)
        # The decoders read files; an embedded clip goes through a private temporary file.
        suffix = os.path.splitext(path or "")[1] or ".mp4"
        with tempfile.NamedTemporaryFile(suffix=suffix) as handle:
            handle.write(data)
            handle.flush()
            try:
                return self._load_path(handle.name)
            except VideoDecodeError as error:
                raise VideoDecodeError(
                    path or "<embedded bytes>", error.reason, backend=error.backend
                ) from error

    def _load_path(self, path: str) -> Clip:
        s = self.sampling
        sampled = sample_frames(
            path,
            fps=s.fps,
            max_frames=s.max_frames,
            num_frames=s.num_frames,
            # The Qwen processors pair frames (temporal patch 2) and pad an odd count with a copy of the
            # last frame; an even count spends that slot on a real frame instead.
            multiple_of=2 if s.num_frames is None and s.max_frames >= 2 else 1,
            # Qwen3-VL refuses fewer frames than one temporal patch; a very short clip still gives two.
            min_frames=2 if s.max_frames >= 2 else 1,
            backend=s.backend,
        )
        height, width = sampled.frames.shape[1:3]
        size = smart_size(height, width, self.factor, s.min_pixels, s.max_pixels)
        return Clip(frames=resize_frames(sampled.frames, size), metadata=sampled.metadata)
