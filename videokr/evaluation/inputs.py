"""What the model is shown for one generation: the full clip, one seeded random frame, or nothing.

Kept apart from the model class so the probes are one small, testable rule: a probe run differs from
the full run *only* in the visual input (same prompt, same generation settings), which is what makes
its accuracy a measure of the shortcut.

Frames go through the training code's `ClipLoader` (paper's 2 fps, ≤ 128 frames, ≤ 100,352 pixels per
frame, resized once to the vision tower's patch grid), so a model is evaluated on the clip exactly as
it was trained on it. The single-frame probe draws its frame uniformly from *all* of the clip's frames,
seeded by (seed, item id, trial): reruns and different models see the same frames, trials differ.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import torch

from videokr.training.clips import ClipLoader, FrameSampling, resize_frames, smart_size
from videokr.video import probe as probe_clip
from videokr.video import sample_frames

if TYPE_CHECKING:
    from transformers import ProcessorMixin
    from transformers.video_utils import VideoMetadata

__all__ = ["GenerationRequest", "Visual", "VisualLoader", "probe_frame_index"]

Probe = Literal["video", "single_frame", "text_only"]


@dataclass(frozen=True)
class Visual:
    """The visual input of one generation. ``frames`` is T×3×h×w uint8 (T = 1 for the single frame,
    passed to the model as an image); None for text only."""

    kind: Probe
    frames: torch.Tensor | None = None
    metadata: VideoMetadata | None = None
    frame_indices: tuple[int, ...] = ()

    @property
    def num_frames(self) -> int:
        return 0 if self.frames is None else int(self.frames.shape[0])


@dataclass(frozen=True)
class GenerationRequest:
    """One generation: a doc (by position in the batch lighteval gave us), a trial and what to show."""

    doc_index: int
    trial: int
    item_id: str
    prompt: str
    visual: Visual
    extra: dict[str, Any] = field(default_factory=dict)


def probe_frame_index(item_id: str, trial: int, num_frames: int, *, seed: int = 0) -> int:
    """The frame the single-frame probe shows for ``trial`` of ``item_id`` (string-seeded, so the choice
    does not depend on Python's hash seed, the batch or the order items are evaluated in)."""
    if num_frames <= 0:
        raise ValueError(f"clip of item {item_id} has no frames")
    return random.Random(f"{seed}:{item_id}:{trial}").randrange(num_frames)


class VisualLoader:
    """Decodes a doc's clip into the `Visual` its probe mode asks for, at the processor's resolution."""

    def __init__(self, processor: ProcessorMixin, sampling: FrameSampling, *, frame_seed: int = 0) -> None:
        self.clips = ClipLoader(processor, sampling)
        self.sampling = sampling
        self.frame_seed = frame_seed

    def load(self, path: str, probe: Probe, *, item_id: str, trial: int) -> Visual:
        if probe == "text_only":
            return Visual("text_only")
        if probe == "video":
            clip = self.clips.load(path)
            return Visual(
                "video", clip.frames, clip.metadata, tuple(int(i) for i in clip.metadata.frames_indices)
            )
        if probe == "single_frame":
            index = probe_frame_index(item_id, trial, probe_clip(path).num_frames, seed=self.frame_seed)
            sampled = sample_frames(path, indices=[index], backend=self.sampling.backend)
            height, width = sampled.frames.shape[1:3]
            size = smart_size(
                height, width, self.clips.factor, self.sampling.min_pixels, self.sampling.max_pixels
            )
            return Visual("single_frame", resize_frames(sampled.frames, size), None, (index,))
        raise ValueError(f"unknown probe mode {probe!r}")
