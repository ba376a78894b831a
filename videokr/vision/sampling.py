"""The paper's frame settings, defined once, and `FrameSampling`, the one object that carries them.

Every consumer (the SFT collator, GRPO prompt encoding, the rollout engine, the lighteval model, the
benches, the scripts' arguments) takes a `FrameSampling`, so a model is evaluated on the clip exactly as it
was trained on it unless someone changes a setting on purpose, and then the change is one visible value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

__all__ = [
    "PAPER_FPS",
    "PAPER_MAX_FRAMES",
    "PAPER_MAX_PIXELS",
    "PAPER_MIN_PIXELS",
    "QWEN2_5_VL_FACTOR",
    "FrameSampling",
    "smart_size",
]

#: Frames sampled per second of video (paper: 2).
PAPER_FPS = 2.0
#: At most this many frames per clip (paper: 128; a longer clip gets them spread over its length).
PAPER_MAX_FRAMES = 128
#: The paper's per-frame pixel budget, 128 × 28 × 28 (qwen-vl-utils' ``VIDEO_MAX_PIXELS`` default).
PAPER_MAX_PIXELS = 100_352
#: Smallest frame area after resizing, 4 × 28 × 28 (qwen-vl-utils' ``VIDEO_MIN_PIXELS``).
PAPER_MIN_PIXELS = 3136
#: The resize grid of Qwen2/2.5-VL, patch size × merge size (14 × 2); Qwen3-VL's is 32 (16 × 2).
QWEN2_5_VL_FACTOR = 28


@dataclass(frozen=True)
class FrameSampling:
    """How frames are taken from a clip: the paper's 2 fps and at most 128 frames by default.

    ``num_frames`` fixes the count instead (tests, ablations). ``max_pixels`` / ``min_pixels`` bound each
    frame after resizing. ``backend`` names a `videokr.vision.decode` backend (None: automatic).
    ``device`` decodes original clips there (``"cuda"``: NVDEC through torchcodec, so decoding stops
    taking the CPU cores a GPU's data needs; only where the clips are decoded in the main process or
    in spawned workers, since CUDA does not start in forked ones). Training views always decode on the
    CPU: reading one is a copy, and NVDEC does not decode their 4:4:4 coding.
    """

    fps: float = PAPER_FPS
    max_frames: int = PAPER_MAX_FRAMES
    num_frames: int | None = None
    max_pixels: int = PAPER_MAX_PIXELS
    min_pixels: int = PAPER_MIN_PIXELS
    backend: str | None = None
    device: str = "cpu"

    def index_rule(self) -> dict[str, Any]:
        """The `videokr.vision.decode.sample_frames` arguments that pick the frames, the same for the model
        loader and for a training view (so a view holds exactly the frames the loader would decode).

        The Qwen processors pair frames (temporal patch 2) and pad an odd count with a copy of the last
        frame; an even count spends that slot on a real frame instead. Qwen3-VL refuses fewer frames than
        one temporal patch, so a very short clip still gives two.
        """
        pairs = self.num_frames is None and self.max_frames >= 2
        return {
            "fps": self.fps,
            "max_frames": self.max_frames,
            "num_frames": self.num_frames,
            "multiple_of": 2 if pairs else 1,
            "min_frames": 2 if self.max_frames >= 2 else 1,
        }


def smart_size(height: int, width: int, factor: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """The qwen-vl-utils resize rule: sides multiples of ``factor``, area in [min_pixels, max_pixels],
    aspect ratio kept as closely as the grid allows.

    Defined here, beside the pixel budgets it applies, because three places must agree on it: the decoder
    scales to it (`videokr.vision.decode`), the loader checks against it, and a training view is encoded
    at it; none of them should need torch to compute a size.
    """
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
