"""Everything between a row's ``video`` value and a model's `BatchFeature`, once for every consumer.

    decode.py    open a clip, pick frames by the paper's rule, decode them (torchcodec, PyAV, decord)
    sampling.py  the paper's frame settings (2 fps, ≤ 128 frames, 100,352 pixels) and `FrameSampling`
    frames.py    `VisualLoader`: a row's clip as a `Visual` of one kind (full video, one frame, none),
                 resized once to the vision tower's patch grid
    chat.py      chat messages and text, and `process`: the one processor call
    batch.py     `VideoBatch` and `EncodedPrompts`: per-sample visual tensors and prompts, for the
                 generation engine (`encode_prompts` for GRPO rows, `encode_visual_prompts` for
                 evaluation requests of one kind)

The SFT collator, GRPO prompt encoding, the generation engine, the lighteval model and the benches all
come through here, so a model is evaluated on a clip exactly as it was trained on it by construction.

The names below load their module on first use: `videokr.vision.decode` needs only PyAV and numpy, and the
dataset build (which probes every clip with it) should not pay for importing torch in each worker.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from videokr.vision.batch import EncodedPrompts, VideoBatch, encode_prompts, encode_visual_prompts
    from videokr.vision.chat import VIDEO_KEYS, chat_messages, process, render
    from videokr.vision.decode import SampledVideo, probe, sample_frames
    from videokr.vision.frames import VISUAL_KINDS, Visual, VisualKind, VisualLoader, video_source
    from videokr.vision.sampling import (
        PAPER_FPS,
        PAPER_MAX_FRAMES,
        PAPER_MAX_PIXELS,
        PAPER_MIN_PIXELS,
        FrameSampling,
    )

_EXPORTS: dict[str, str] = {
    "EncodedPrompts": "videokr.vision.batch",
    "VideoBatch": "videokr.vision.batch",
    "encode_prompts": "videokr.vision.batch",
    "encode_visual_prompts": "videokr.vision.batch",
    "VIDEO_KEYS": "videokr.vision.chat",
    "chat_messages": "videokr.vision.chat",
    "process": "videokr.vision.chat",
    "render": "videokr.vision.chat",
    "SampledVideo": "videokr.vision.decode",
    "probe": "videokr.vision.decode",
    "sample_frames": "videokr.vision.decode",
    "VISUAL_KINDS": "videokr.vision.frames",
    "Visual": "videokr.vision.frames",
    "VisualKind": "videokr.vision.frames",
    "VisualLoader": "videokr.vision.frames",
    "video_source": "videokr.vision.frames",
    "PAPER_FPS": "videokr.vision.sampling",
    "PAPER_MAX_FRAMES": "videokr.vision.sampling",
    "PAPER_MAX_PIXELS": "videokr.vision.sampling",
    "PAPER_MIN_PIXELS": "videokr.vision.sampling",
    "FrameSampling": "videokr.vision.sampling",
}

__all__ = [
    "PAPER_FPS",
    "PAPER_MAX_FRAMES",
    "PAPER_MAX_PIXELS",
    "PAPER_MIN_PIXELS",
    "VIDEO_KEYS",
    "VISUAL_KINDS",
    "EncodedPrompts",
    "FrameSampling",
    "SampledVideo",
    "VideoBatch",
    "Visual",
    "VisualKind",
    "VisualLoader",
    "chat_messages",
    "encode_prompts",
    "encode_visual_prompts",
    "probe",
    "process",
    "render",
    "sample_frames",
    "video_source",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'videokr.vision' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value
