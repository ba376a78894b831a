"""Benchmark: an SFT step and a GRPO iteration (rollout, scoring, update) at 7–8B width on the paper's video
settings, through the trainers training runs (set-up in `bench.common`).

What it measures, each against an in-run reference so the figures mean something on any card:

- **reference matmul**: a plain bf16 ``N×N @ N×N`` matmul, in TFLOP/s: what this device reaches on the
  easiest possible work. MFU is printed against both it and ``--peak-tflops`` (datasheet dense bf16;
  989 for an H100 SXM).
- **SFT step** (vision tower and projector frozen, as in the paper): ``SFTTrainer.training_step`` (the
  trainer's loss with its fused LM head, backward) + optimizer step on one sample, collated by
  `VideoSFTCollator` from a clip of ``--frames`` frames at 100,352 px/frame with a ``--response``-token
  answer (512 by default; only the answer and its end token are labelled). Baseline: the **same sample
  read as text** (its video placeholders replaced by ordinary token ids, no pixels): same length, same
  labels, so "video / text" shows what the video path (vision tower, M-RoPE, placeholder scatter) costs on
  top of a language-model step of the same size.
- **GRPO rollout and scoring**: `VideoGRPOTrainer` preparing one generation (``--group`` completions of one
  prompt, 8 by default: one GRPO group) as at the start of each training cycle: clip decode and processor,
  the rollout on our engine (exactly ``--new-tokens`` tokens per completion, temperature 1.0), rewards,
  the reference forward. The rollout's prefill and decode times are the trainer's own logged figures;
  "scoring" is the rest.
- **GRPO update**: the trainer's loss (``compute_loss``) + backward on each ``--micro-batch`` of the group's
  sequences, then the optimizer step; everything trains, as in the GRPO recipe, with its loss settings
  (KL 0.01). See `bench.common` for the reference model (the policy's weights under ``no_grad``: peak
  memory is a lower bound by one bf16 copy of the model).

MFU (model FLOPs utilisation) uses the usual 6·N·T convention; attention's T² term and activation
recomputation are not counted (the share attention would add is printed):

    SFT     FLOPs = 6 · trainable params · LM tokens  +  vision forward
    vision forward = 2 · (tower params · patches + projector params · patches / 4)
    text    FLOPs = 6 · trainable params · LM tokens
    update  FLOPs = 6 · LM params · LM tokens  +  3 · (vision forward FLOPs above) per sequence
              (policy forward + backward = 3 forwards, for the LM and the vision tower alike; the LM head
              runs only on the completion, so this slightly overcounts)

"trainable params" counts the language model with its embedding and head (`freeze_vision`'s count once
the vision parts are frozen); "patches" are the vision tower's input patches (the projector merges 2×2 of
them into one LM token).

The architectures are those of Qwen2.5-VL-7B and Qwen3-VL-8B (`bench.common`): bf16, sdpa, activation
checkpointing on (the recipes'), the trainers' AdamW with bf16 states (``--optimizer none`` skips it).
Frames are ``--height``×``--width`` (224×448 = 100,352 px, the paper's per-frame budget exactly, a
multiple of both patch grids: 128 LM tokens per frame pair for Qwen2.5-VL, 98 for Qwen3-VL). Memory:
weights 2 B/param + gradient 2 + AdamW 4 per trainable param, so a full-depth 7–8B model needs ~60–70 GB
before activations; on one 80 GB card cut ``--layers`` (e.g. 20) when 128 frames or the GRPO update do
not fit.

    python -m bench.train_step --arch qwen2_5_vl --frames 32            # CUDA, full depth
    python -m bench.train_step --arch qwen3_vl --frames 128 --layers 18
    python -m bench.train_step --device cpu --tiny                      # smoke run of every phase

``--json PATH`` also writes the figures as JSON (rewritten after each phase, so a run cut short keeps what
it measured): ``config`` (model, video, reference matmul), ``sft`` (``text`` and ``video`` rows: seconds,
tokens/s, TFLOP/s, MFU against the datasheet and the matmul, peak GB) and ``grpo`` (rollout, scoring and
the ``update`` row).

Run from the repository root with the project installed (TRL, datasets and a video decoder included).
"""

from __future__ import annotations

import argparse
import gc
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from bench.common import (
    Bench,
    GRPOIteration,
    ParamCounts,
    add_model_args,
    bench_rows,
    freeze_for_sft,
    generation_batch,
    grpo_trainer,
    make_optimizer,
    matmul_tflops,
    open_bench,
    rationale,
    sequence_tokens,
    set_checkpointing,
    sft_step,
    sft_trainer,
)
from videokr.atomic import write_text_atomic
from videokr.training import to_grpo_rows, to_sft_rows

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


def figures(
    tokens: int, result: dict[str, float], flops: float, peak: float, matmul: float
) -> dict[str, float | None]:
    """One table row as numbers (what `row` prints), for ``--json``."""
    achieved = flops / result["seconds"] / 1e12
    return {
        "tokens": tokens,
        "seconds": result["seconds"],
        "tokens_per_s": tokens / result["seconds"],
        "tflops": achieved,
        "mfu": achieved / peak,
        "mfu_vs_matmul": achieved / matmul,
        "peak_gb": result.get("peak_gb"),
    }


class Report(dict):
    """The figures ``--json`` asks for, rewritten to its path whenever a phase adds some."""

    def __init__(self, path: str | None) -> None:
        super().__init__()
        self.path = path

    def add(self, key: str, value: dict[str, Any]) -> None:
        self[key] = value
        if self.path:
            write_text_atomic(self.path, json.dumps(self, indent=2) + "\n")


def peak_note(result: dict[str, float]) -> str:
    return f", peak {result['peak_gb']:.1f} GB" if "peak_gb" in result else ""


@dataclass
class Setup:
    """What every phase shares: the bench, the parameter counts, and how to time and report."""

    args: argparse.Namespace
    bench: Bench
    counts: ParamCounts
    steps: int
    warmup: int
    matmul: float  # measured reference TFLOP/s
    report: Report

    @property
    def vision_forward(self) -> int:
        """FLOPs of one clip through the vision tower and projector (forward)."""
        patches = self.bench.prompt.patches
        return 2 * (self.counts.tower * patches + self.counts.projector * patches // 4)

    def time(self, fn: Callable[[], Any]) -> dict[str, float]:
        return self.bench.clock.repeat(fn, self.steps, self.warmup)

    def row(self, label: str, tokens: int, result: dict[str, float], flops: float) -> str:
        return row(label, tokens, result, flops, self.args.peak_tflops, self.matmul)

    def figures(self, tokens: int, result: dict[str, float], flops: float) -> dict[str, float | None]:
        return figures(tokens, result, flops, self.args.peak_tflops, self.matmul)


def free_memory() -> None:
    """Collect the finished phase's trainer and optimizer (trainers hold reference cycles) before the next
    phase allocates its own."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# --------------------------------------------------------------------------------------------- phases


def text_only(batch: Any, vocab: int) -> dict[str, torch.Tensor]:
    """The same sample with its video placeholders read as ordinary token ids (below `vocab`, the
    tokenizer's plain BPE ids) and no pixels: same length, same labels."""
    ids = batch["input_ids"].clone()
    video = batch["mm_token_type_ids"] != 0
    ids[video] = torch.randint(0, vocab, (int(video.sum()),))
    return {
        "input_ids": ids,
        "attention_mask": batch["attention_mask"],
        "mm_token_type_ids": torch.zeros_like(ids),
        "labels": batch["labels"],
    }


def run_sft(s: Setup) -> None:
    """Text-only step (baseline) then the video step, same sample, vision tower and projector frozen."""
    bench, model = s.bench, s.bench.model
    freeze_for_sft(model)
    set_checkpointing(model, not s.args.no_grad_ckpt)
    tokenizer = bench.processor.tokenizer
    # The SFT target is the answer tokens; the collator labels it and the end-of-turn token after it.
    dataset = to_sft_rows(bench_rows([bench.clip], rationale(tokenizer, s.args.response - 1)))
    trainer = sft_trainer(bench, dataset)
    video = trainer.data_collator([dataset[0]])  # the batch the trainer's DataLoader would hand over
    plain = text_only(video, tokenizer.vocab_size)
    optimizer = make_optimizer(trainer, s.args.optimizer)
    tokens, labelled = video["input_ids"].shape[1], int((video["labels"] != -100).sum())
    print(f"SFT sample (VideoSFTCollator on the clip): {tokens:,} tokens, {labelled:,} labelled")
    text_result = s.time(lambda: sft_step(trainer, plain, optimizer))
    video_result = s.time(lambda: sft_step(trainer, video, optimizer))
    lm_flops = 6 * s.counts.language * tokens
    print(HEADER)
    print(s.row("SFT text-only (base)", tokens, text_result, lm_flops))
    print(s.row("SFT video", tokens, video_result, lm_flops + s.vision_forward))
    share = attention_flops(bench.config, tokens) / lm_flops
    print(
        f"video / text-only step time: {video_result['seconds'] / text_result['seconds']:.2f}x; "
        f"causal attention would add {100 * share:.0f}% to the counted FLOPs (not in MFU)\n"
    )
    s.report.add(
        "sft",
        {
            "labelled": labelled,
            "text": s.figures(tokens, text_result, lm_flops),
            "video": s.figures(tokens, video_result, lm_flops + s.vision_forward),
            "video_over_text": video_result["seconds"] / text_result["seconds"],
            "attention_share": share,
        },
    )


def run_grpo(s: Setup) -> None:
    """One generation of one group through `VideoGRPOTrainer`, then its optimizer update."""
    bench, model, args = s.bench, s.bench.model, s.args
    model.requires_grad_(True)  # the GRPO recipe trains everything
    set_checkpointing(model, not args.no_grad_ckpt)
    dataset = to_grpo_rows(bench_rows([bench.clip]))
    trainer = grpo_trainer(
        bench, dataset, group=args.group, micro_batch=args.micro_batch, new_tokens=args.new_tokens
    )
    iteration = GRPOIteration(
        trainer, generation_batch(dataset, args.group), make_optimizer(trainer, args.optimizer)
    )
    prepared: dict[str, list[dict[str, Any]]] = {}  # the last cycle's micro-batches, as the trainer keeps
    scored = s.time(lambda: prepared.update(last=iteration.score()))
    micro_batches = prepared["last"]
    prompt_tokens = micro_batches[0]["prompt_ids"].shape[1]
    if prompt_tokens != bench.prompt.tokens:
        raise SystemExit(
            f"the trainer's prompt from the clip file has {prompt_tokens} tokens, the in-memory one "
            f"{bench.prompt.tokens}: the figures would describe different prompts"
        )
    generation = iteration.generation_seconds(s.steps)
    assert generation is not None, "the trainer logged no rollout: is its rollout engine ours?"
    prefill_s, decode_s = generation
    rollout_s = prefill_s + decode_s
    group, new_tokens = args.group, args.new_tokens
    decode_rate = f"{group * new_tokens / decode_s:,.1f} tokens/s" if decode_s > 0 else "n/a"
    print(
        f"GRPO rollout (VideoGRPOTrainer, our engine; batch {group}, {prompt_tokens:,}-token prompt, "
        f"{new_tokens} new tokens each): {rollout_s:.2f} s, {group * new_tokens / rollout_s:,.1f} "
        f"new tokens/s (prefill {prefill_s:.2f} s; decode alone {decode_rate})"
    )
    scoring_s = scored["seconds"] - rollout_s
    print(
        f"GRPO scoring (clip decode and processor, reference forward, rewards, split): {scoring_s:.2f} s"
        f"{peak_note(scored)}"
    )

    tokens = sequence_tokens(micro_batches)
    flops = 6 * s.counts.language * tokens + 3 * s.vision_forward * group  # see the module docstring
    updated = s.time(lambda: iteration.update(micro_batches))
    print(HEADER)
    print(s.row(f"GRPO update (x{group})", tokens, updated, flops))
    total = scored["seconds"] + updated["seconds"]
    print(
        f"one GRPO iteration on this group: rollout {rollout_s:.2f} s + scoring {scoring_s:.2f} s + update "
        f"{updated['seconds']:.2f} s; rollout is {100 * rollout_s / total:.0f}% of it"
    )
    s.report.add(
        "grpo",
        {
            "group": group,
            "new_tokens": new_tokens,
            "prompt_tokens": prompt_tokens,
            "rollout_s": rollout_s,
            "prefill_s": prefill_s,
            "decode_s": decode_s,
            "rollout_tokens_per_s": group * new_tokens / rollout_s,
            "decode_tokens_per_s": group * new_tokens / decode_s if decode_s > 0 else None,
            "scoring_s": scoring_s,
            "scoring_peak_gb": scored.get("peak_gb"),
            "update": s.figures(tokens, updated, flops),
            "iteration_s": total,
        },
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_model_args(parser)
    parser.add_argument("--response", type=int, default=512, help="SFT answer tokens (end token included)")
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
    parser.add_argument("--json", metavar="PATH", default=None, help="also write the figures as JSON here")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    with open_bench(args) as bench:
        counts = freeze_for_sft(bench.model)
        steps = args.steps or (1 if args.tiny else 3)
        warmup = args.warmup if args.warmup is not None else (0 if args.tiny else 1)
        text = bench.config.text_config
        print(
            f"{args.arch}{' (tiny)' if args.tiny else ''} on {bench.device_name}: "
            f"LM {counts.language / 1e6:,.1f}M ({text.num_hidden_layers} layers, hidden {text.hidden_size}), "
            f"vision tower {counts.tower / 1e6:,.1f}M + projector {counts.projector / 1e6:,.1f}M; bf16, "
            f"sdpa, activation checkpointing {'off' if args.no_grad_ckpt else 'on'}, optimizer "
            f"{args.optimizer}; {steps} timed step(s) after {warmup} warm-up"
        )
        print(
            f"video prompt: {args.frames} frames of {args.height}x{args.width} -> "
            f"{bench.prompt.patches:,} patches, {bench.prompt.tokens:,} prompt tokens"
        )
        matmul = matmul_tflops(bench.device, args.matmul_size or (1024 if args.tiny else 8192), bench.clock)
        print(f"reference bf16 matmul: {matmul:.1f} TFLOP/s (peak flag {args.peak_tflops:g})\n")
        report = Report(args.json)
        report.add(
            "config",
            {
                "arch": args.arch,
                "tiny": args.tiny,
                "device": bench.device_name,
                "layers": text.num_hidden_layers,
                "hidden": text.hidden_size,
                "frames": args.frames,
                "height": args.height,
                "width": args.width,
                "patches": bench.prompt.patches,
                "prompt_tokens": bench.prompt.tokens,
                "lm_params": counts.language,
                "tower_params": counts.tower,
                "projector_params": counts.projector,
                "activation_checkpointing": not args.no_grad_ckpt,
                "optimizer": args.optimizer,
                "steps": steps,
                "warmup": warmup,
                "matmul_tflops": matmul,
                "peak_tflops": args.peak_tflops,
            },
        )
        setup = Setup(args, bench, counts, steps, warmup, matmul, report)
        run_sft(setup)
        free_memory()
        run_grpo(setup)


if __name__ == "__main__":
    main()
