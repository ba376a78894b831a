"""Benchmark: an SFT step and a GRPO iteration (rollout, update) at 7–8B width on the paper's video settings.

What it measures, each against an in-run reference so the figures mean something on any card:

- **reference matmul**: a plain bf16 ``N×N @ N×N`` matmul, in TFLOP/s: what this device reaches on the
  easiest possible work. MFU is printed against both it and ``--peak-tflops`` (datasheet dense bf16;
  989 for an H100 SXM).
- **SFT step** (vision tower and projector frozen, as in the paper): forward + backward + optimizer step on
  one video sample = the prompt with ``--frames`` frames at 100,352 px/frame + a ``--response``-token
  answer (512 by default; only the answer is labelled). Baseline: a **text-only** step with the same total
  sequence length, so "video / text" shows what the video path (vision tower, M-RoPE, placeholder
  scatter) costs on top of a language-model step of the same size.
- **GRPO rollout**: ``model.generate`` on the video prompt, batch ``--group`` (8: one GRPO group), exactly
  ``--new-tokens`` new tokens per sequence, sampling at temperature 1.0; new tokens/s in total. A
  1-token generate is timed too, so prefill and decode separate.
- **GRPO update**: reference forward (no grad) + policy forward/backward + optimizer step on the group's
  sequences (prompt + completion) with a GRPO loss (clipped ratio, advantages, KL 0.01), vision trainable
  as in the GRPO recipe, logits only for the completion (as TRL computes them). The reference forward
  reuses the policy's weights under ``no_grad``: the same FLOPs as a separate reference copy without its
  memory, so the time is right and the peak memory is a lower bound by one bf16 copy of the model.

MFU (model FLOPs utilisation) uses the usual 6·N·T convention; attention's T² term and activation
recomputation are not counted (the share attention would add is printed):

    SFT     FLOPs = 6 · trainable params · LM tokens  +  vision forward
    vision forward = 2 · (tower params · patches + projector params · patches / 4)
    text    FLOPs = 6 · trainable params · LM tokens
    update  FLOPs = 8 · LM params · LM tokens  +  4 · (vision forward FLOPs above) per sequence
              (policy forward + backward = 3 forwards, reference = 1, for the LM and the vision tower alike;
              the LM head runs only on the completion here, so this slightly overcounts)

"trainable params" counts the language model with its embedding and head (the vision parts are frozen);
"patches" are the vision tower's input patches (the projector merges 2×2 of them into one LM token).

Architectures (random weights, built offline from these numbers; token ids are those of the tiny
tokenizer, which changes nothing about cost):

- Qwen2.5-VL-7B: text hidden 3584, 28 layers, 28 heads / 4 KV heads (head dim 128), intermediate 18944,
  vocab 152064, rope θ 1e6, M-RoPE sections [16, 24, 24]; vision depth 32, hidden 1280, intermediate 3420,
  16 heads, patch 14, window 112 px with full attention in blocks [7, 15, 23, 31], out 3584.
- Qwen3-VL-8B: text hidden 4096, 36 layers, 32 heads / 8 KV heads (head dim 128), intermediate 12288,
  vocab 151936, rope θ 5e6, interleaved M-RoPE [24, 20, 20]; vision depth 27, hidden 1152, intermediate
  4304, 16 heads, patch 16, 2304 learned position embeddings, DeepStack taps [8, 16, 24], out 4096.

Both: bf16 weights, ``attn_implementation="sdpa"``, activation checkpointing on (the recipes'), AdamW with
bf16 states (``--optimizer none`` skips it). Frames are ``--height``×``--width`` (224×448 = 100,352 px,
the paper's per-frame budget exactly, a multiple of both patch grids: 128 LM tokens per frame pair for
Qwen2.5-VL, 98 for Qwen3-VL). Memory: weights 2 B/param + gradient 2 + AdamW 4 per trainable param, so a
full-depth 7–8B model needs ~60–70 GB before activations; on one 80 GB card cut ``--layers`` (e.g. 20)
when 128 frames or the GRPO update do not fit.

    python bench/train_step.py --arch qwen2_5_vl --frames 32            # CUDA, full depth
    python bench/train_step.py --arch qwen3_vl --frames 128 --layers 18
    python bench/train_step.py --device cpu --tiny                      # smoke run of every phase

Needs torch and transformers only (and the project's tiny tokenizer, which needs ``tokenizers``); no
video decoding, TRL or datasets, so it runs on a bare GPU box.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from videokr.data import prompts
from videokr.models.tiny import ARCHES, build_tiny_tokenizer, tiny_config

# --------------------------------------------------------------------------------------------- model


def real_config(arch: str, tokenizer: Any, layers: int | None) -> Any:
    """The released 7B / 8B architecture (numbers in the module docstring) with the tokenizer's ids."""
    from transformers import Qwen2_5_VLConfig, Qwen3VLConfig

    tiny = tiny_config(arch, tokenizer)  # only for the special-token ids, so prompts and config agree
    ids = {k: getattr(tiny, k) for k in ("image_token_id", "video_token_id", "vision_start_token_id")}
    ids["vision_end_token_id"] = tiny.vision_end_token_id
    special = {k: getattr(tiny.text_config, k) for k in ("bos_token_id", "eos_token_id", "pad_token_id")}
    if arch == "qwen2_5_vl":
        depth = layers or 28
        text = {
            "vocab_size": 152064,
            "hidden_size": 3584,
            "intermediate_size": 18944,
            "num_hidden_layers": depth,
            "max_window_layers": depth,
            "num_attention_heads": 28,
            "num_key_value_heads": 4,
            "max_position_embeddings": 128000,
            "rms_norm_eps": 1e-6,
            "rope_parameters": {"rope_type": "default", "rope_theta": 1e6, "mrope_section": [16, 24, 24]},
            **special,
        }
        vision = {
            "depth": 32,
            "hidden_size": 1280,
            "intermediate_size": 3420,
            "num_heads": 16,
            "out_hidden_size": 3584,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "window_size": 112,
            "fullatt_block_indexes": [7, 15, 23, 31],
            "tokens_per_second": 2,
            "hidden_act": "silu",
        }
        return Qwen2_5_VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=False, **ids)
    text = {
        "vocab_size": 151936,
        "hidden_size": 4096,
        "intermediate_size": 12288,
        "num_hidden_layers": layers or 36,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "head_dim": 128,
        "max_position_embeddings": 262144,
        "rms_norm_eps": 1e-6,
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": 5e6,
            "mrope_section": [24, 20, 20],
            "mrope_interleaved": True,
        },
        **special,
    }
    vision = {
        "depth": 27,
        "hidden_size": 1152,
        "intermediate_size": 4304,
        "num_heads": 16,
        "out_hidden_size": 4096,
        "patch_size": 16,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
        "num_position_embeddings": 2304,
        "deepstack_visual_indexes": [8, 16, 24],
        "hidden_act": "gelu_pytorch_tanh",
    }
    return Qwen3VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=False, **ids)


def build_model(config: Any, device: torch.device) -> torch.nn.Module:
    """Random bf16 weights allocated directly on `device` (a 7B model never passes through host memory)."""
    from transformers import AutoModelForImageTextToText

    with device:
        model = AutoModelForImageTextToText.from_config(
            config, dtype=torch.bfloat16, attn_implementation="sdpa"
        )
    return model


@dataclass(frozen=True)
class ParamCounts:
    """The parameter groups the FLOP formulas need."""

    language: int  # embedding + decoder layers + norm + head
    tower: int  # vision tower (patch embedding, blocks, position embedding)
    projector: int  # patch merger (+ Qwen3-VL's DeepStack mergers)


def count_params(model: torch.nn.Module) -> ParamCounts:
    visual = model.model.visual
    projector = sum(
        p.numel() for n, p in visual.named_parameters() if n.startswith(("merger", "deepstack_merger_list"))
    )
    vision = sum(p.numel() for p in visual.parameters())
    total = sum(p.numel() for p in model.parameters())
    return ParamCounts(language=total - vision, tower=vision - projector, projector=projector)


# --------------------------------------------------------------------------------------------- inputs


@dataclass
class VideoPrompt:
    """One processed video prompt (batch 1): ids, modality ids and the video tensors for the forward."""

    input_ids: torch.Tensor
    mm_token_type_ids: torch.Tensor
    video: dict[str, torch.Tensor]  # pixel_values_videos, video_grid_thw[, second_per_grid_ts]

    @property
    def patches(self) -> int:
        return int(self.video["video_grid_thw"].prod())

    def repeated(self, n: int) -> dict[str, torch.Tensor]:
        """Model inputs for `n` copies of the prompt (a GRPO group: one prompt, n completions)."""
        video = {
            "pixel_values_videos": self.video["pixel_values_videos"].repeat(n, 1),
            "video_grid_thw": self.video["video_grid_thw"].repeat(n, 1),
        }
        if "second_per_grid_ts" in self.video:
            video["second_per_grid_ts"] = self.video["second_per_grid_ts"].repeat(n)
        return {
            "input_ids": self.input_ids.repeat(n, 1),
            "attention_mask": torch.ones_like(self.input_ids).repeat(n, 1),
            "mm_token_type_ids": self.mm_token_type_ids.repeat(n, 1),
            **video,
        }


def video_prompt(arch: str, tokenizer: Any, frames: int, height: int, width: int) -> VideoPrompt:
    """The official MC prompt with one clip of `frames` random frames, through the real processor class.

    Random pixels cost what real ones do. The frames are already on the patch grid (``do_resize=False``)
    and carry 2 fps timing, so placeholders, grids and M-RoPE positions are those of a real 2 fps clip.
    """
    from transformers import (
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
        Qwen3VLProcessor,
        Qwen3VLVideoProcessor,
    )
    from transformers.video_utils import VideoMetadata

    if arch == "qwen2_5_vl":
        processor = Qwen2_5_VLProcessor(
            image_processor=Qwen2VLImageProcessor(),
            tokenizer=tokenizer,
            video_processor=Qwen2VLVideoProcessor(cap_pixels_per_frame=True),
        )
    else:
        processor = Qwen3VLProcessor(
            image_processor=Qwen2VLImageProcessor(patch_size=16),
            tokenizer=tokenizer,
            video_processor=Qwen3VLVideoProcessor(cap_pixels_per_frame=True),
        )
    factor = processor.video_processor.patch_size * processor.video_processor.merge_size
    if height % factor or width % factor:
        raise SystemExit(f"--height/--width must be multiples of {factor} for {arch}")

    question = "Which principle explains the motion shown in the video?"
    options = ["A. Conservation of momentum", "B. Bernoulli's principle", "C. Hooke's law", "D. Ohm's law"]
    body = prompts.build_prompt(question, options, "multiple choice", style="sft")
    # The chat markup the released templates write (no system turn; its few tokens change nothing).
    video_part = "<|vision_start|><|video_pad|><|vision_end|>"
    text = f"<|im_start|>user\n{video_part}{body}<|im_end|>\n<|im_start|>assistant\n"
    native_fps, step = 30.0, 15  # a 30 fps clip sampled at 2 fps
    clip = torch.randint(0, 256, (frames, 3, height, width), dtype=torch.uint8)
    metadata = VideoMetadata(
        total_num_frames=frames * step,
        fps=native_fps,
        width=width,
        height=height,
        duration=frames * step / native_fps,
        frames_indices=[k * step + step // 2 for k in range(frames)],
    )
    batch = processor(
        text=[text],
        videos=[clip],
        video_metadata=[metadata],
        do_sample_frames=False,
        do_resize=False,
        return_tensors="pt",
    )
    video = {
        k: batch[k] for k in ("pixel_values_videos", "video_grid_thw", "second_per_grid_ts") if k in batch
    }
    return VideoPrompt(batch["input_ids"], batch["mm_token_type_ids"], video)


def response_ids(n: int, vocab: int, rows: int = 1) -> torch.Tensor:
    """`n` ordinary text token ids below `vocab` (the tokenizer's BPE ids: no special token, so nothing is
    mistaken for a video placeholder or an end of turn)."""
    return torch.randint(0, vocab, (rows, n))


def sft_batch(prompt: VideoPrompt, response: int, vocab: int) -> dict[str, torch.Tensor]:
    """Prompt + `response` answer tokens, labels on the answer only (what `VideoSFTCollator` produces)."""
    inputs = prompt.repeated(1)
    answer = response_ids(response, vocab)
    labels = torch.full_like(inputs["input_ids"], -100)
    inputs["input_ids"] = torch.cat([inputs["input_ids"], answer], dim=1)
    inputs["attention_mask"] = torch.ones_like(inputs["input_ids"])
    inputs["mm_token_type_ids"] = torch.cat([inputs["mm_token_type_ids"], torch.zeros_like(answer)], dim=1)
    inputs["labels"] = torch.cat([labels, answer], dim=1)
    return inputs


def text_batch(length: int, response: int, vocab: int) -> dict[str, torch.Tensor]:
    """A text-only sample of `length` tokens, the last `response` labelled: the in-run baseline."""
    ids = response_ids(length, vocab)
    labels = ids.clone()
    labels[:, : length - response] = -100
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}


# --------------------------------------------------------------------------------------------- timing


class Clock:
    """Wall time and peak memory of a block on one device (synchronised, so GPU work is included)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    @contextlib.contextmanager
    def measure(self) -> Iterator[dict[str, float]]:
        result: dict[str, float] = {}
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)
        self.sync()
        start = time.perf_counter()
        yield result
        self.sync()
        result["seconds"] = time.perf_counter() - start
        if self.device.type == "cuda":
            result["peak_gb"] = torch.cuda.max_memory_allocated(self.device) / 2**30

    def repeat(self, fn: Callable[[], Any], steps: int, warmup: int) -> dict[str, float]:
        """Mean time over `steps` runs after `warmup` untimed ones; peak memory over the timed runs."""
        for _ in range(warmup):
            fn()
        with self.measure() as result:
            for _ in range(steps):
                fn()
        result["seconds"] /= steps
        return result


def matmul_tflops(device: torch.device, size: int, clock: Clock) -> float:
    """Achieved TFLOP/s of a square bf16 matmul: the practical ceiling for the model's matmuls."""
    a = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    b = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    result = clock.repeat(lambda: a @ b, steps=10, warmup=3)
    return 2 * size**3 / result["seconds"] / 1e12


def to(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in batch.items()}


# --------------------------------------------------------------------------------------------- steps


def make_optimizer(model: torch.nn.Module, kind: str, device: torch.device) -> torch.optim.Optimizer | None:
    """AdamW over what trains now (states in the weights' bf16), or None for ``--optimizer none``."""
    if kind == "none":
        return None
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.AdamW(params, lr=1e-5, fused=device.type == "cuda")


def sft_step(
    model: torch.nn.Module, batch: dict[str, torch.Tensor], optimizer: torch.optim.Optimizer | None
) -> None:
    """Forward with labels (transformers' shifted cross-entropy), backward, optimizer step."""
    model(**batch).loss.backward()
    if optimizer is not None:
        optimizer.step()
    model.zero_grad(set_to_none=True)


def completion_logps(model: torch.nn.Module, batch: dict[str, torch.Tensor], completion: int) -> torch.Tensor:
    """Log-probabilities of the last `completion` tokens, logits computed only there (as TRL does)."""
    logits = model(**batch, logits_to_keep=completion + 1).logits[:, :-1].float()
    targets = batch["input_ids"][:, -completion:]
    return torch.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)


def grpo_update(
    model: torch.nn.Module,
    batch: dict[str, torch.Tensor],
    completion: int,
    micro_batch: int,
    optimizer: torch.optim.Optimizer | None,
    beta: float = 0.01,
    epsilon: float = 0.2,
) -> None:
    """One GRPO optimizer step on a group: reference log-probs, then policy loss per micro-batch.

    Rewards are random (their values do not change the cost); advantages are group-normalised as in GRPO.
    With one update per generation the old policy is the current one (TRL's default), so the ratio is
    ``exp(logp - logp.detach())``.
    """
    group = batch["input_ids"].shape[0]
    rewards = torch.rand(group, device=batch["input_ids"].device)
    advantages = (rewards - rewards.mean()) / (rewards.std() + 1e-4)
    for start in range(0, group, micro_batch):
        part = slice_batch(batch, start, start + micro_batch)
        with torch.no_grad():
            ref = completion_logps(model, part, completion)
        logps = completion_logps(model, part, completion)
        ratio = torch.exp(logps - logps.detach())
        adv = advantages[start : start + micro_batch, None]
        surrogate = torch.minimum(ratio * adv, torch.clamp(ratio, 1 - epsilon, 1 + epsilon) * adv)
        kl = torch.exp(ref - logps) - (ref - logps) - 1
        loss = (-(surrogate - beta * kl)).mean() * part["input_ids"].shape[0] / group
        loss.backward()
    if optimizer is not None:
        optimizer.step()
    model.zero_grad(set_to_none=True)


def slice_batch(batch: dict[str, torch.Tensor], start: int, end: int) -> dict[str, torch.Tensor]:
    """Samples `start:end` of a batch whose video tensors are concatenated per sample (patches × dim)."""
    grid = batch["video_grid_thw"]
    patches = grid.prod(dim=1)
    offsets = torch.cat([patches.new_zeros(1), patches.cumsum(0)])
    part = {
        k: batch[k][start:end] for k in ("input_ids", "attention_mask", "mm_token_type_ids", "video_grid_thw")
    }
    part["pixel_values_videos"] = batch["pixel_values_videos"][int(offsets[start]) : int(offsets[end])]
    if "second_per_grid_ts" in batch:
        part["second_per_grid_ts"] = batch["second_per_grid_ts"][start:end]
    return part


# --------------------------------------------------------------------------------------------- report


def attention_flops(config: Any, tokens: int) -> float:
    """Causal attention matmuls (QKᵀ, PV), forward + backward, of one sequence: 6 · layers · T² · d_attn."""
    text = config.text_config
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
    return 6 * text.num_hidden_layers * tokens**2 * text.num_attention_heads * head_dim


def row(label: str, tokens: int, result: dict[str, float], flops: float, peak: float, matmul: float) -> str:
    achieved = flops / result["seconds"] / 1e12
    memory = f"{result['peak_gb']:.1f}" if "peak_gb" in result else "n/a"
    return (
        f"{label:<22}{tokens:>8,}{result['seconds']:>10.3f}{tokens / result['seconds']:>11,.0f}"
        f"{achieved:>9.1f}{100 * achieved / peak:>7.1f}%{100 * achieved / matmul:>9.1f}%{memory:>9}"
    )


_TIMES = f"{'step':<22}{'tokens':>8}{'step s':>10}{'tokens/s':>11}"
HEADER = _TIMES + f"{'TFLOP/s':>9}{'MFU':>8}{'vs mm':>10}{'peak GB':>9}"


@dataclass
class Setup:
    """What every phase shares: the model, its inputs' makings, and how to time and report."""

    args: argparse.Namespace
    model: torch.nn.Module
    config: Any
    counts: ParamCounts
    prompt: VideoPrompt
    vocab: int  # plain token ids are below this
    device: torch.device
    clock: Clock
    steps: int
    warmup: int
    matmul: float  # measured reference TFLOP/s

    @property
    def vision_forward(self) -> int:
        """FLOPs of one clip through the vision tower and projector (forward)."""
        patches = self.prompt.patches
        return 2 * (self.counts.tower * patches + self.counts.projector * patches // 4)

    def time(self, fn: Callable[[], Any]) -> dict[str, float]:
        return self.clock.repeat(fn, self.steps, self.warmup)

    def row(self, label: str, tokens: int, result: dict[str, float], flops: float) -> str:
        return row(label, tokens, result, flops, self.args.peak_tflops, self.matmul)

    def checkpointing(self, on: bool) -> None:
        """Activation checkpointing on for training (unless --no-grad-ckpt), off for generation."""
        set_checkpointing(self.model, on and not self.args.no_grad_ckpt)


def set_checkpointing(model: torch.nn.Module, on: bool) -> None:
    """Activation checkpointing on or off (off for generation: it would disable the KV cache).

    transformers 5.2x renamed the methods; older 5.x (e.g. on a GPU box) only has the old names.
    """
    if on:
        if hasattr(model, "activation_checkpointing_enable"):
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    elif hasattr(model, "activation_checkpointing_disable"):
        model.activation_checkpointing_disable()
    else:
        model.gradient_checkpointing_disable()


def update_batch(rollout: dict[str, torch.Tensor], sequences: torch.Tensor) -> dict[str, torch.Tensor]:
    """The forward inputs of prompt + completion `sequences` generated from the `rollout` inputs: the
    video tensors as they were, the completion typed as text."""
    completion_types = torch.zeros_like(sequences[:, rollout["input_ids"].shape[1] :])
    return dict(
        rollout,
        input_ids=sequences,
        attention_mask=torch.ones_like(sequences),
        mm_token_type_ids=torch.cat([rollout["mm_token_type_ids"], completion_types], dim=1),
    )


def run_sft(s: Setup) -> None:
    """Text-only step (baseline) then the video step, same length, vision tower and projector frozen."""
    s.model.train()
    s.checkpointing(True)
    s.model.requires_grad_(True)
    s.model.model.visual.requires_grad_(False)  # tower and projector (the mergers live inside `visual`)
    optimizer = make_optimizer(s.model, s.args.optimizer, s.device)
    video = to(sft_batch(s.prompt, s.args.response, s.vocab), s.device)
    tokens = video["input_ids"].shape[1]
    plain = to(text_batch(tokens, s.args.response, s.vocab), s.device)
    text_result = s.time(lambda: sft_step(s.model, plain, optimizer))
    video_result = s.time(lambda: sft_step(s.model, video, optimizer))
    lm_flops = 6 * s.counts.language * tokens
    print(HEADER)
    print(s.row("SFT text-only (base)", tokens, text_result, lm_flops))
    print(s.row("SFT video", tokens, video_result, lm_flops + s.vision_forward))
    share = attention_flops(s.config, tokens) / lm_flops
    print(
        f"video / text-only step time: {video_result['seconds'] / text_result['seconds']:.2f}x; "
        f"causal attention would add {100 * share:.0f}% to the counted FLOPs (not in MFU)\n"
    )


def run_rollout(s: Setup) -> tuple[dict[str, torch.Tensor], torch.Tensor, float]:
    """`generate` for one group; returns the rollout inputs, the sequences and the seconds per rollout."""
    s.model.eval()
    s.checkpointing(False)
    group, new_tokens = s.args.group, s.args.new_tokens
    rollout = to(s.prompt.repeated(group), s.device)
    # Sampling as in the GRPO recipe; never stop early, and never sample a vision placeholder (it has no
    # features behind it and breaks the next forward; VideoGRPOTrainer suppresses them the same way).
    config = s.config
    placeholders = [config.image_token_id, config.video_token_id, config.vision_start_token_id]
    sampling = {"do_sample": True, "temperature": 1.0, "top_p": 1.0, "top_k": None, "eos_token_id": None}
    sampling["suppress_tokens"] = [*placeholders, config.vision_end_token_id]

    def generate(n: int) -> torch.Tensor:
        with torch.no_grad():
            return s.model.generate(**rollout, max_new_tokens=n, min_new_tokens=n, **sampling)

    prefill = s.time(lambda: generate(1))
    full = s.time(lambda: generate(new_tokens))
    decode_s = full["seconds"] - prefill["seconds"]
    # Two separate timings: with one noisy step (CPU smoke runs) the difference can come out ≤ 0.
    decode_rate = f"{group * (new_tokens - 1) / decode_s:,.1f} tokens/s" if decode_s > 0 else "n/a"
    memory = f", peak {full['peak_gb']:.1f} GB" if "peak_gb" in full else ""
    prompt_tokens = rollout["input_ids"].shape[1]
    print(
        f"GRPO rollout (batch {group}, {prompt_tokens:,}-token prompt, {new_tokens} new tokens each): "
        f"{full['seconds']:.2f} s, {group * new_tokens / full['seconds']:,.1f} new tokens/s "
        f"(prefill {prefill['seconds']:.2f} s; decode alone {decode_rate}){memory}"
    )
    return rollout, generate(new_tokens), full["seconds"]


def run_update(s: Setup, rollout: dict[str, torch.Tensor], sequences: torch.Tensor, rollout_s: float) -> None:
    """The GRPO optimizer step on the group's sequences; everything trains (the recipe freezes nothing)."""
    s.model.train()
    s.checkpointing(True)
    s.model.requires_grad_(True)
    optimizer = make_optimizer(s.model, s.args.optimizer, s.device)
    batch = update_batch(rollout, sequences)
    tokens = sequences.numel()
    flops = 8 * s.counts.language * tokens + 4 * s.vision_forward * s.args.group  # see the docstring
    result = s.time(lambda: grpo_update(s.model, batch, s.args.new_tokens, s.args.micro_batch, optimizer))
    print(HEADER)
    print(s.row(f"GRPO update (x{s.args.group})", tokens, result, flops))
    total = rollout_s + result["seconds"]
    print(
        f"one GRPO iteration on this group: rollout {rollout_s:.2f} s + update {result['seconds']:.2f} s; "
        f"rollout is {100 * rollout_s / total:.0f}% of it"
    )


def add_model_args(parser: argparse.ArgumentParser) -> None:
    """The options that pick the model and the video prompt (shared with `bench/rollout.py`)."""
    parser.add_argument("--arch", choices=ARCHES, default="qwen2_5_vl")
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument(
        "--tiny", action="store_true", help="the tiny test config instead of 7B/8B (smoke run)"
    )
    parser.add_argument("--layers", type=int, default=None, help="text layers (default: the real 28 / 36)")
    parser.add_argument("--frames", type=int, default=32, help="frames per clip (paper: 32 or 128)")
    parser.add_argument("--height", type=int, default=224, help="frame height on the patch grid")
    parser.add_argument("--width", type=int, default=448, help="frame width (224×448 = 100,352 px)")


@dataclass
class Bench:
    """The model and video prompt that `add_model_args`' options describe, built on the device."""

    device: torch.device
    clock: Clock
    tokenizer: Any
    config: Any
    model: torch.nn.Module
    prompt: VideoPrompt

    @property
    def device_name(self) -> str:
        return torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "cpu"


def build_bench(args: argparse.Namespace) -> Bench:
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: use --device cpu --tiny for a smoke run")
    torch.manual_seed(0)
    tokenizer = build_tiny_tokenizer(args.arch)
    config = (
        tiny_config(args.arch, tokenizer) if args.tiny else real_config(args.arch, tokenizer, args.layers)
    )
    model = build_model(config, device)
    prompt = video_prompt(args.arch, tokenizer, args.frames, args.height, args.width)
    return Bench(device, Clock(device), tokenizer, config, model, prompt)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_model_args(parser)
    parser.add_argument("--response", type=int, default=512, help="SFT answer tokens")
    parser.add_argument("--group", type=int, default=8, help="GRPO completions per prompt (paper: 8)")
    parser.add_argument("--new-tokens", type=int, default=256, help="tokens generated per completion")
    parser.add_argument("--micro-batch", type=int, default=8, help="GRPO update micro-batch (recipe: 8)")
    parser.add_argument("--optimizer", choices=("adamw", "none"), default="adamw")
    parser.add_argument("--no-grad-ckpt", action="store_true", help="turn activation checkpointing off")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default 3; --tiny: 1)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 1; --tiny: 0)")
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="datasheet dense bf16 (H100: 989)")
    parser.add_argument(
        "--matmul-size", type=int, default=None, help="reference matmul N (8192; --tiny 1024)"
    )
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    bench = build_bench(args)
    device, clock, tokenizer, config, model, prompt = (
        bench.device,
        bench.clock,
        bench.tokenizer,
        bench.config,
        bench.model,
        bench.prompt,
    )
    counts = count_params(model)
    steps = args.steps or (1 if args.tiny else 3)
    warmup = args.warmup if args.warmup is not None else (0 if args.tiny else 1)
    text = config.text_config
    print(
        f"{args.arch}{' (tiny)' if args.tiny else ''} on {bench.device_name}: "
        f"LM {counts.language / 1e6:,.1f}M ({text.num_hidden_layers} layers, hidden {text.hidden_size}), "
        f"vision tower {counts.tower / 1e6:,.1f}M + projector {counts.projector / 1e6:,.1f}M; bf16, sdpa, "
        f"activation checkpointing {'off' if args.no_grad_ckpt else 'on'}, optimizer {args.optimizer}; "
        f"{steps} timed step(s) after {warmup} warm-up"
    )
    print(
        f"video prompt: {args.frames} frames of {args.height}x{args.width} -> {prompt.patches:,} patches, "
        f"{prompt.input_ids.shape[1]:,} prompt tokens"
    )
    matmul = matmul_tflops(device, args.matmul_size or (1024 if args.tiny else 8192), clock)
    print(f"reference bf16 matmul: {matmul:.1f} TFLOP/s (peak flag {args.peak_tflops:g})\n")

    setup = Setup(
        args, model, config, counts, prompt, tokenizer.vocab_size, device, clock, steps, warmup, matmul
    )
    run_sft(setup)
    rollout, sequences, rollout_s = run_rollout(setup)
    run_update(setup, rollout, sequences, rollout_s)


if __name__ == "__main__":
    main()
