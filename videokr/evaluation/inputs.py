"""What the model is shown for one generation: the full clip, one seeded random frame, or nothing.

Kept apart from the model class so the probes are one small, testable rule: a probe run differs from
the full run *only* in the visual input (same prompt, same generation settings), which is what makes
its accuracy a measure of the shortcut.

Frames come from `videokr.vision.VisualLoader`, the loader training uses (paper's 2 fps, ≤ 128 frames,
≤ 100,352 pixels per frame, resized once to the vision tower's patch grid), so a model is evaluated on the
clip exactly as it was trained on it. The single-frame probe draws its frame uniformly from *all* of the
clip's frames, seeded by (seed, item id, trial): reruns and different models see the same frames, trials
differ.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Literal

from videokr.vision import Visual, VisualKind, VisualLoader

__all__ = [
    "SINGLE_FRAME_FORMS",
    "UNREADABLE",
    "GenerationRequest",
    "Probe",
    "SingleFrameForm",
    "load_probe_visual",
    "probe_frame_index",
]

#: The answer recorded for an item whose clip could not be read (then the reason): scored as wrong and
#: counted apart by the metric, so a broken clip never aborts a run and never passes unnoticed.
UNREADABLE = "<videokr: clip unreadable>"

#: A probe mode is the visual kind a task shows.
Probe = VisualKind

#: How the single-frame probe's frame reaches the model. ``image``, the paper's: the frame as an image.
#: ``still``: a video of that one frame held for the clip's length (the full clip's frame count and
#: timing, every frame the same), so the model gets the input form and the number of visual tokens it
#: gets for the clip, with one frame's information. For models trained on video only: the demo's model,
#: trained from scratch on clips, never saw an image, and asked with the frame as an image it was at
#: chance even on the items any frame answers.
SingleFrameForm = Literal["image", "still"]
SINGLE_FRAME_FORMS: tuple[SingleFrameForm, ...] = ("image", "still")


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


def load_probe_visual(
    loader: VisualLoader,
    video: Any,
    probe: Probe,
    *,
    item_id: str,
    trial: int,
    frame_seed: int = 0,
    single_frame_as: SingleFrameForm = "image",
) -> Visual:
    """The `Visual` of `probe` for one trial of an item: for the single frame, the frame
    `probe_frame_index` draws from all the clip's frames, as an image or held as a still video
    (`SingleFrameForm`)."""
    if probe != "single_frame":
        return loader.load(video, probe)
    if single_frame_as not in SINGLE_FRAME_FORMS:
        raise ValueError(f"unknown single-frame form {single_frame_as!r}; choose from {SINGLE_FRAME_FORMS}")
    # A still needs the clip's sampled frames and timing, read from its index (no frame of it decoded);
    # the clip's frame count, which the frame is drawn from, comes with them.
    metadata = loader.video_metadata(video) if single_frame_as == "still" else None
    total = loader.frame_count(video) if metadata is None else metadata.total_num_frames
    index = probe_frame_index(item_id, trial, total, seed=frame_seed)
    frame = loader.load(video, "single_frame", frame_index=index)
    if metadata is None:
        return frame
    assert frame.frames is not None
    count = len(metadata.frames_indices)
    held = frame.frames.expand(count, *frame.frames.shape[1:]).contiguous()
    return Visual("video", held, metadata, (index,) * count)
