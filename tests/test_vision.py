"""`videokr.vision` is the one path from a clip to model inputs, for all three visual kinds.

The probes' premise is that a probe run differs from the full run only in what it shows: the single
frame must be a frame of the clip exactly as the video path shows it (same decode, same resize), and
text-only must carry no pixels at all. These tests hold the loader and the processor call to that on the
real Qwen processors.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from videokr.models.tiny import ARCHES, build_tiny_processor
from videokr.sample.encode import write_clip
from videokr.vision import FrameSampling, Visual, VisualLoader, chat_messages, process, render

SAMPLING = FrameSampling(fps=2.0, max_frames=8, max_pixels=64 * 64)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 s at 10 fps, 96×128, each frame a distinct flat grey level plus a gradient (resize is visible)."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 40, size=(96, 128, 3), dtype=np.uint8)
    frames = [np.clip(base + 6 * i, 0, 255).astype(np.uint8) for i in range(30)]
    return write_clip(tmp_path_factory.mktemp("vision") / "clip.mp4", frames, 10.0)


@pytest.mark.parametrize("arch", ARCHES)
def test_the_single_frame_is_the_videos_frame_at_the_same_resolution(arch: str, clip: Path) -> None:
    loader = VisualLoader(build_tiny_processor(arch), SAMPLING)
    video = loader.load(str(clip))
    assert video.kind == "video" and video.metadata is not None and video.num_frames == 6
    assert loader.frame_count(str(clip)) == 30
    for position, index in enumerate(video.frame_indices):
        frame = loader.load(str(clip), "single_frame", frame_index=index)
        assert frame.kind == "single_frame" and frame.frame_indices == (index,)
        assert frame.frames.shape == (1, *video.frames.shape[1:])
        assert torch.equal(frame.frames[0], video.frames[position])
    # The sides sit on the vision tower's patch grid and the area within the pixel budget.
    factor = loader.factor
    height, width = video.frames.shape[-2:]
    assert height % factor == 0 and width % factor == 0 and height * width <= SAMPLING.max_pixels


def test_text_only_decodes_nothing_and_a_single_frame_needs_its_index(tmp_path: Path) -> None:
    loader = VisualLoader(build_tiny_processor("qwen2_5_vl"), SAMPLING)
    # The path does not exist: text only never opens it.
    assert loader.load(str(tmp_path / "missing.mp4"), "text_only") == Visual("text_only")
    with pytest.raises(ValueError, match="frame_index"):
        loader.load(str(tmp_path / "missing.mp4"), "single_frame")
    with pytest.raises(ValueError, match="unknown visual kind"):
        loader.load(str(tmp_path / "missing.mp4"), "audio")  # type: ignore[arg-type]


@pytest.mark.parametrize("arch", ARCHES)
def test_one_processor_call_serves_every_kind(arch: str, clip: Path) -> None:
    processor = build_tiny_processor(arch)
    loader = VisualLoader(processor, SAMPLING)
    pad = {
        kind: processor.tokenizer.convert_tokens_to_ids(token)
        for kind, token in (("video", processor.video_token), ("single_frame", processor.image_token))
    }
    for kind in ("video", "single_frame", "text_only"):
        visual = loader.load(str(clip), kind, frame_index=3)
        text = render(processor, chat_messages("What moves?", kind), generation_prompt=True)
        batch = process(processor, [text, text], [visual, visual], padding_side="left")
        ids = batch["input_ids"]
        if kind == "video":
            t, h, w = batch["video_grid_thw"][0].tolist()
            assert t == visual.num_frames // 2 and "pixel_values" not in batch
            # Every placeholder was expanded to the clip's grid (merge 2×2 patches per token).
            assert int((ids[0] == pad["video"]).sum()) == t * h * w // 4
        elif kind == "single_frame":
            t, h, w = batch["image_grid_thw"][0].tolist()
            assert "pixel_values_videos" not in batch
            assert (h * 14 if arch == "qwen2_5_vl" else h * 16) == visual.frames.shape[-2]
            assert int((ids[0] == pad["single_frame"]).sum()) == t * h * w // 4
        else:
            assert not any(key.startswith("pixel_values") for key in batch)
            assert not any(int((ids == token).sum()) for token in pad.values())


def test_mixed_kinds_in_one_call_are_refused(clip: Path) -> None:
    processor = build_tiny_processor("qwen2_5_vl")
    loader = VisualLoader(processor, SAMPLING)
    visuals = [loader.load(str(clip)), loader.load(str(clip), "single_frame", frame_index=0)]
    with pytest.raises(ValueError, match="one kind"):
        process(processor, ["a", "b"], visuals)


def test_a_groups_shared_clip_is_moved_to_the_device_once() -> None:
    """A GRPO group's samples share one pixel tensor; moving the batch keeps it shared, not 8 copies."""
    from videokr.vision import VideoBatch

    shared, other = torch.zeros(4, 8), torch.ones(4, 8)
    batch = VideoBatch([shared, shared, other], torch.tensor([[1, 2, 2]] * 3), None)
    moved = batch.to("meta")  # a real move even on a CPU-only machine
    assert moved.pixel_values[0].device.type == "meta"
    assert (
        moved.pixel_values[0] is moved.pixel_values[1] and moved.pixel_values[2] is not moved.pixel_values[0]
    )


def test_a_device_that_cannot_decode_stops_the_collator_instead_of_dropping_rows(clip: Path) -> None:
    """The collator drops a row whose clip does not decode; a decoding device that does not exist is no
    bad clip, so it must stop training at the first batch rather than empty every batch."""
    from videokr.training.collator import VideoSFTCollator
    from videokr.vision.decode import available_backends

    if torch.cuda.is_available() or "torchcodec" not in available_backends():
        pytest.skip("needs torchcodec on a machine without CUDA")
    collator = VideoSFTCollator(build_tiny_processor("qwen2_5_vl"), replace(SAMPLING, device="cuda"))
    row = {"id": "r0", "video": str(clip), "prompt": "What happens?", "completion": "<answer>A</answer>"}
    with pytest.raises(RuntimeError, match="no CUDA device is visible"):
        collator([row])
    assert collator.failures == []
