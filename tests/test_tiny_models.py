"""Tiny real Qwen2.5-VL / Qwen3-VL models: a decoded clip goes through the real processor, chat template,
M-RoPE and vision tower, reaches the loss, generates, and survives save → reload bit for bit.

Every other test that trains or evaluates on video leans on these models, so these tests pin the facts
that make them stand in for a 7B checkpoint: real placeholder arithmetic, real timing in the positions,
and token ids that agree between tokenizer, model and generation config.
"""

from __future__ import annotations

import importlib.resources
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
import torch
from transformers import AutoModelForImageTextToText, AutoProcessor, BatchFeature
from transformers.video_utils import VideoMetadata

from videokr.models.tiny import (
    ARCHES,
    IM_END,
    IM_START,
    MC_SUFFIX,
    VIDEO_PAD,
    VISION_END,
    VISION_START,
    build_tiny_model,
    count_parameters,
    tiny_model_command,
)
from videokr.sample.encode import write_clip

HEIGHT, WIDTH, SOURCE_FPS, SOURCE_FRAMES, STRIDE = 96, 128, 4, 16, 2  # 4 s clip, sampled at 2 fps
QUESTION = "Which way does the square move?\nA. Left\nB. Right\n" + MC_SUFFIX
ANSWER = "<think>The square starts on the left and ends on the right.</think>\n<answer>B</answer>"
# The real smart-resize arithmetic on a 96 × 128 frame, 8 frames, temporal patch 2:
# Qwen2.5-VL (patch 14, factor 28) resizes to 84 × 140 -> 6 × 10 patches; Qwen3-VL (patch 16, factor 32)
# keeps 96 × 128 -> 6 × 8 patches.
EXPECTED_GRID = {"qwen2_5_vl": [4, 6, 10], "qwen3_vl": [4, 6, 8]}


@dataclass(frozen=True)
class Clip:
    """Frames decoded from a real MP4 and the facts a `VideoMetadata` must carry about them."""

    frames: np.ndarray  # (T, H, W, 3) uint8, the sampled frames only
    indices: list[int]  # their positions in the source clip
    total_frames: int
    fps: float

    def metadata(self) -> VideoMetadata:
        """A fresh metadata object per call: processors write into the one they are given."""
        return VideoMetadata(
            total_num_frames=self.total_frames,
            fps=self.fps,
            width=self.frames.shape[2],
            height=self.frames.shape[1],
            duration=self.total_frames / self.fps,
            video_backend="pyav",
            frames_indices=list(self.indices),
        )


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Clip:
    """A 4 s H.264 clip of a square crossing a noisy background, decoded with PyAV, every 2nd frame kept."""
    rng = np.random.default_rng(0)
    background = rng.integers(0, 60, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    frames = []
    for index in range(SOURCE_FRAMES):
        frame = background.copy()
        left = index * (WIDTH - 24) // (SOURCE_FRAMES - 1)
        frame[36:60, left : left + 24] = (230, 40, 40)
        frames.append(frame)
    path = write_clip(tmp_path_factory.mktemp("clip") / "square.mp4", frames, fps=SOURCE_FPS)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate)
        decoded = np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(stream)])
    indices = list(range(0, len(decoded), STRIDE))
    return Clip(frames=decoded[indices], indices=indices, total_frames=len(decoded), fps=fps)


@pytest.fixture(scope="module", params=ARCHES)
def tiny(request: pytest.FixtureRequest) -> tuple[str, Any, Any]:
    """(arch, model, processor), built once per architecture for the whole module."""
    model, processor = build_tiny_model(request.param)
    return request.param, model, processor


def conversation(clip: Clip | None, *, with_answer: bool) -> list[dict[str, Any]]:
    """User turn with a video part (carrying the frames when given) and the question; optional answer."""
    video_part: dict[str, Any] = {"type": "video"}
    if clip is not None:
        video_part["video"] = clip.frames
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": [video_part, {"type": "text", "text": QUESTION}]}
    ]
    if with_answer:
        messages.append({"role": "assistant", "content": [{"type": "text", "text": ANSWER}]})
    return messages


def encode(processor: Any, clip: Clip, *, with_answer: bool = True, metadata: bool = True) -> BatchFeature:
    """The two-step path a collator takes: render the template, then one processor call for the batch."""
    text = processor.apply_chat_template(
        conversation(None, with_answer=with_answer), add_generation_prompt=not with_answer
    )
    timing: dict[str, Any] = {"video_metadata": [clip.metadata()]} if metadata else {}
    return processor(text=[text], videos=[clip.frames], do_sample_frames=False, return_tensors="pt", **timing)


def video_mask(model: Any, inputs: BatchFeature) -> torch.Tensor:
    return inputs["input_ids"] == model.config.video_token_id


def temporal_positions(model: Any, inputs: BatchFeature) -> list[int]:
    """The distinct temporal M-RoPE positions the model gives the video tokens of the first sample."""
    positions, _ = model.model.get_rope_index(
        inputs["input_ids"],
        inputs["mm_token_type_ids"],
        video_grid_thw=inputs["video_grid_thw"],
        second_per_grid_ts=inputs.get("second_per_grid_ts"),
        attention_mask=inputs["attention_mask"],
    )
    return positions[0, 0][video_mask(model, inputs)[0]].unique().tolist()


def test_token_ids_agree_between_tokenizer_model_and_generation(tiny: tuple[str, Any, Any]) -> None:
    _, model, processor = tiny
    tokenizer = processor.tokenizer
    ids = tokenizer.convert_tokens_to_ids
    config = model.config
    assert config.text_config.vocab_size == len(tokenizer)
    assert config.video_token_id == ids(VIDEO_PAD) == processor.video_token_id
    assert config.image_token_id == ids("<|image_pad|>") == processor.image_token_id
    assert (config.vision_start_token_id, config.vision_end_token_id) == (ids(VISION_START), ids(VISION_END))
    assert config.text_config.eos_token_id == ids(IM_END) == tokenizer.eos_token_id
    assert config.text_config.pad_token_id == ids("<|endoftext|>") == tokenizer.pad_token_id
    generation = model.generation_config
    assert ids(IM_END) in generation.eos_token_id
    assert generation.pad_token_id == tokenizer.pad_token_id
    # Every added token is a single id above the BPE vocabulary, none of them unknown.
    added = [VIDEO_PAD, "<|image_pad|>", VISION_START, VISION_END, IM_START, IM_END]
    assert all(len(tokenizer(token)["input_ids"]) == 1 for token in added)


def test_shapes_are_the_real_architecture_shrunk(tiny: tuple[str, Any, Any]) -> None:
    arch, model, processor = tiny
    vision, text = model.config.vision_config, model.config.text_config
    patch = {"qwen2_5_vl": 14, "qwen3_vl": 16}[arch]
    assert vision.patch_size == processor.video_processor.patch_size == patch
    assert vision.temporal_patch_size == processor.video_processor.temporal_patch_size == 2
    assert vision.spatial_merge_size == processor.video_processor.merge_size == 2
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
    assert sum(text.rope_parameters["mrope_section"]) == head_dim // 2
    if arch == "qwen3_vl":
        assert int(vision.num_position_embeddings**0.5) ** 2 == vision.num_position_embeddings
        assert all(0 <= index < vision.depth for index in vision.deepstack_visual_indexes)
    params = count_parameters(model)
    assert 100_000 <= params["total"] <= 3_000_000, params
    assert len(model.model.visual.blocks) >= 2


def test_chat_template_is_trls_and_renders_video_and_assistant_turn(tiny: tuple[str, Any, Any]) -> None:
    arch, _, processor = tiny
    shipped = importlib.resources.files("trl") / "chat_templates" / f"{arch}.jinja"
    assert processor.chat_template == shipped.read_text(encoding="utf-8")

    rendered = processor.apply_chat_template(conversation(None, with_answer=True))
    user_turn = f"{IM_START}user\n{VISION_START}{VIDEO_PAD}{VISION_END}{QUESTION}{IM_END}\n"
    assert user_turn in rendered
    assert rendered.endswith(f"{IM_START}assistant\n{ANSWER}{IM_END}\n")

    prompt = processor.apply_chat_template(conversation(None, with_answer=False), add_generation_prompt=True)
    assert prompt.endswith(f"{IM_END}\n{IM_START}assistant\n")


def test_video_placeholders_match_the_grid(tiny: tuple[str, Any, Any], clip: Clip) -> None:
    arch, model, processor = tiny
    inputs = encode(processor, clip)
    grid = inputs["video_grid_thw"]
    assert grid.tolist() == [EXPECTED_GRID[arch]]
    t, h, w = grid[0].tolist()
    assert inputs["pixel_values_videos"].shape[0] == t * h * w
    assert int(video_mask(model, inputs).sum()) == t * h * w // processor.video_processor.merge_size**2
    # mm_token_type_ids marks exactly the video placeholders (2 = video); without it M-RoPE goes 1-D.
    assert torch.equal(inputs["mm_token_type_ids"] == 2, video_mask(model, inputs))


def test_timing_reaches_the_prompt_and_the_positions(tiny: tuple[str, Any, Any], clip: Clip) -> None:
    arch, model, processor = tiny
    inputs = encode(processor, clip, with_answer=False)
    temporal = temporal_positions(model, inputs)
    t = EXPECTED_GRID[arch][0]
    sampled_fps = clip.fps / STRIDE
    if arch == "qwen2_5_vl":
        # One temporal step per 2 frames = 2 / sampled_fps seconds, scaled by tokens_per_second.
        assert inputs["second_per_grid_ts"].tolist() == pytest.approx([2 / sampled_fps])
        step = model.config.vision_config.tokens_per_second * 2 / sampled_fps
        assert temporal == [temporal[0] + round(step * k) for k in range(t)]
    else:
        # Qwen3-VL writes a timestamp before each temporal patch and positions each frame after it.
        text = processor.decode(inputs["input_ids"][0])
        seconds = [index / clip.fps for index in clip.indices]
        for pair in range(t):
            stamp = (seconds[2 * pair] + seconds[2 * pair + 1]) / 2
            assert f"<{stamp:.1f} seconds>{VISION_START}" in text
        assert len(temporal) == t and temporal == sorted(temporal)


def test_without_metadata_the_clip_is_assumed_24_fps(tiny: tuple[str, Any, Any], clip: Clip) -> None:
    """Pins the pitfall the training collator avoids by always passing `video_metadata`."""
    arch, model, processor = tiny
    inputs = encode(processor, clip, with_answer=False, metadata=False)
    if arch == "qwen2_5_vl":
        assert inputs["second_per_grid_ts"].tolist() == pytest.approx([2 / 24])
        assert len(temporal_positions(model, inputs)) == 1  # all frames share one temporal position
    else:
        assert "<0.0 seconds>" in processor.decode(inputs["input_ids"][0])


def test_one_call_chat_template_path_equals_the_two_step_path(tiny: tuple[str, Any, Any], clip: Clip) -> None:
    _, _, processor = tiny
    one_call = processor.apply_chat_template(
        conversation(clip, with_answer=True),
        tokenize=True,
        return_dict=True,
        return_tensors="pt",
        processor_kwargs={"video_metadata": [clip.metadata()], "do_sample_frames": False},
    )
    two_step = encode(processor, clip)
    assert sorted(one_call.keys()) == sorted(two_step.keys())
    for key in two_step:
        assert torch.equal(one_call[key], two_step[key]), key


def test_loss_gradient_reaches_pixels_vision_tower_and_language_model(
    tiny: tuple[str, Any, Any], clip: Clip
) -> None:
    _, model, processor = tiny
    inputs = encode(processor, clip)
    pixels = inputs["pixel_values_videos"].clone().requires_grad_(True)
    labels = inputs["input_ids"].masked_fill(video_mask(model, inputs), -100)
    calls: list[int] = []
    hook = model.model.visual.register_forward_hook(lambda _m, args, _o: calls.append(args[0].shape[0]))
    model.train()
    try:
        loss = model(**{**inputs, "pixel_values_videos": pixels}, labels=labels).loss
        loss.backward()
        assert torch.isfinite(loss)
        assert calls == [pixels.shape[0]]
        assert pixels.grad is not None and pixels.grad.abs().sum() > 0
        without_grad = [
            name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0
        ]
        assert without_grad == []
    finally:
        hook.remove()
        model.zero_grad(set_to_none=True)
        model.eval()


def test_generate_returns_new_tokens_and_stops_at_im_end(tiny: tuple[str, Any, Any], clip: Clip) -> None:
    _, model, processor = tiny
    inputs = encode(processor, clip, with_answer=False)
    prompt_length = inputs["input_ids"].shape[1]
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=6)
    assert torch.equal(out[:, :prompt_length], inputs["input_ids"])
    assert 1 <= out.shape[1] - prompt_length <= 6

    im_end = processor.tokenizer.convert_tokens_to_ids(IM_END)
    with torch.no_grad():
        stopped = model.generate(**inputs, max_new_tokens=6, sequence_bias={(im_end,): 1e4})
    assert stopped[0, prompt_length:].tolist() == [im_end]


def test_saved_folder_reloads_with_auto_classes_and_identical_outputs(
    tiny: tuple[str, Any, Any], clip: Clip, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    arch, model, processor = tiny
    out = tiny_model_command(arch, tmp_path / arch)
    summary = capsys.readouterr().out
    assert "parameters" in summary and str(out) in summary

    reloaded = AutoModelForImageTextToText.from_pretrained(out)
    reprocessor = AutoProcessor.from_pretrained(out)
    assert type(reloaded) is type(model) and type(reprocessor) is type(processor)
    assert reloaded.generation_config.eos_token_id == model.generation_config.eos_token_id

    inputs, reinputs = encode(processor, clip), encode(reprocessor, clip)
    for key in inputs:
        assert torch.equal(inputs[key], reinputs[key]), key
    reloaded.eval()
    with torch.no_grad():
        assert torch.equal(model(**inputs).logits, reloaded(**reinputs).logits)


def test_build_is_deterministic_and_leaves_the_global_rng_alone(tiny: tuple[str, Any, Any]) -> None:
    arch, model, processor = tiny
    state = torch.random.get_rng_state()
    again, reprocessor = build_tiny_model(arch, seed=0)
    other, _ = build_tiny_model(arch, seed=1)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert reprocessor.tokenizer.get_vocab() == processor.tokenizer.get_vocab()
    weights, same, different = model.state_dict(), again.state_dict(), other.state_dict()
    assert all(torch.equal(weights[name], same[name]) for name in weights)
    assert not all(torch.equal(weights[name], different[name]) for name in weights)


def test_unknown_arch_names_the_choices() -> None:
    with pytest.raises(ValueError, match="qwen2_5_vl, qwen3_vl"):
        build_tiny_model("qwen2_vl")
