"""Benchmark: GRPO rollout throughput of our engine against transformers' ``generate``, beside the floor
that memory bandwidth sets, and where a GRPO step's time goes (rollout, scoring, update).

Same model, same video prompt, same batch, same run:

- **generate**: what TRL's transformers path runs: ``model.generate`` on the prompt repeated for every
  completion (``--prompts`` × ``--group`` sequences), dynamic cache, sampling at temperature 1.0.
- **videokr dynamic**: `VideoRolloutEngine` with a growing cache: each prompt prefilled once and fanned
  out, no compilation (what sharing the prefill alone buys).
- **videokr static**: the static KV cache, not compiled.
- **videokr compiled**: static cache + ``torch.compile`` of the decode step (CUDA graphs on a GPU); the
  first call's compile time is printed on its own line and not counted.

End-of-sequence tokens are suppressed in every variant, so each sequence produces exactly
``--new-tokens`` tokens and the variants do identical work.

**Bandwidth floor.** A decode step must read every language-model weight it multiplies (all of them but
the embedding table, of which it reads one row per sequence) and each sequence's keys and values so far.
At the measured read bandwidth of this device (a large ``sum``, printed) that bounds the decode rate:

    step bytes     = LM weight bytes + sequences × mean context × KV bytes per token
    floor tokens/s = sequences × bandwidth / step bytes

"% floor" compares each variant's *decode-only* rate (prefill excluded) with it. ``--bandwidth-gbs``
replaces the measurement (e.g. 3350 for an H100 SXM datasheet).

**Scaling** (``--scale``): the compiled engine at larger batches (more prompts per step), where the
floor rises because the weights are read once per step for more sequences.

**GRPO step** (``--update``, default on): one generation cycle of `VideoGRPOTrainer` on the same
prompts (``--prompts`` × ``--group`` sequences, its own rollout on our engine) as `bench.train_step` runs
it: "scoring" is its preparation of the cycle minus that rollout (clip decode and processor, reference
forward, rewards), "update" the trainer's loss and backward per ``--micro-batch`` and the AdamW step.
Both are printed beside the rollout time of ``generate`` and of the engine.

    python -m bench.rollout --arch qwen2_5_vl --frames 32 --new-tokens 256          # CUDA, 7B, vs generate
    # the recipe's rollout per GPU: 4 prompts x 8 completions of up to 2,048 tokens, 128 frames
    python -m bench.rollout --frames 128 --new-tokens 2048 --prompts 4 --skip-generate --scale ''
    python -m bench.rollout --arch qwen3_vl --scale 4,8 --layers 18
    python -m bench.rollout --device cpu --tiny                                       # smoke run

``--json PATH`` also writes the figures as JSON, rewritten after each row (a run cut short keeps the rows it
measured): ``config`` (prompt, floor, bandwidth), ``rows`` (one per table row: label, sequences, seconds,
new tokens/s, ratio to generate, prefill s, decode tokens/s, floor, share of the floor, peak GB; the engine's
untimed first call, compiling or not) and ``grpo_step`` (scoring and update seconds).

Random weights of the released architectures, the video prompt and the trainer set-up: `bench.common`.
Run from the repository root.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from typing import Any

import torch

from bench.common import (
    Bench,
    Clock,
    GRPOIteration,
    VideoPrompt,
    add_model_args,
    bench_rows,
    generation_batch,
    grpo_trainer,
    make_optimizer,
    never_sampled,
    open_bench,
    set_checkpointing,
)
from videokr.atomic import write_text_atomic
from videokr.generation import RolloutOptions, SamplingSettings, VideoRolloutEngine
from videokr.training import to_grpo_rows
from videokr.vision import EncodedPrompts

# ---------------------------------------------------------------------------------------------- inputs


def grouped_prompts(prompt: VideoPrompt, prompts: int, group: int, device: torch.device) -> EncodedPrompts:
    """`prompts` distinct prompts (the same clip, treated as different questions) × `group` completions."""
    samples = prompts * group
    ids, types = prompt.input_ids[0].tolist(), prompt.features["mm_token_type_ids"][0].tolist()
    distinct = [p * group for p in range(prompts) for _ in range(group)]
    return EncodedPrompts([ids] * samples, [types] * samples, prompt.video(samples, device), distinct)


def sampling(bench: Bench, new_tokens: int) -> SamplingSettings:
    """Sampling as in the GRPO recipe, never stopping early (see `never_sampled`): every variant then
    produces exactly `new_tokens` tokens."""
    return SamplingSettings(
        max_new_tokens=new_tokens,
        eos_token_ids=(),
        pad_token_id=bench.config.text_config.pad_token_id,
        do_sample=True,
        temperature=1.0,
        suppress_tokens=tuple(never_sampled(bench.config, bench.processor.tokenizer)),
    )


# ---------------------------------------------------------------------------------------------- floor


@dataclass(frozen=True)
class Floor:
    """What one decode step must read, and the device's read bandwidth."""

    weight_bytes: int  # language-model weights multiplied each step (embedding table excluded)
    kv_bytes_per_token: int  # keys + values of one token across all layers
    bandwidth: float  # bytes/s

    def tokens_per_s(self, sequences: int, prompt: int, new_tokens: int) -> float:
        context = prompt + new_tokens / 2  # mean over the decode
        step = (self.weight_bytes + sequences * context * self.kv_bytes_per_token) / self.bandwidth
        return sequences / step


def decode_floor(model: torch.nn.Module, config: Any, bandwidth: float) -> Floor:
    language = model.model.language_model
    embedding = language.get_input_embeddings().weight
    weights = sum(p.numel() * p.element_size() for p in language.parameters()) - embedding.numel() * (
        embedding.element_size()
    )
    head = model.get_output_embeddings().weight
    if head.data_ptr() != embedding.data_ptr():
        weights += head.numel() * head.element_size()
    text = config.text_config
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
    kv = 2 * text.num_hidden_layers * text.num_key_value_heads * head_dim * embedding.element_size()
    return Floor(weights, kv, bandwidth)


def read_bandwidth(device: torch.device, clock: Clock, gib: float) -> float:
    """Bytes/s this device reads in a large reduction: the practical ceiling for decode."""
    x = torch.ones(int(gib * 2**30) // 2, dtype=torch.bfloat16, device=device)
    result = clock.repeat(lambda: x.sum(), steps=10, warmup=3)
    return x.numel() * x.element_size() / result["seconds"]


# ---------------------------------------------------------------------------------------------- runs


@dataclass
class Result:
    label: str
    sequences: int
    seconds: float
    prefill_s: float | None  # None: not separable (generate)
    new_tokens: int
    peak_gb: float | None

    @property
    def tokens_per_s(self) -> float:
        return self.new_tokens / self.seconds

    @property
    def decode_tokens_per_s(self) -> float | None:
        if self.prefill_s is None or self.seconds <= self.prefill_s:
            return None
        return self.new_tokens / (self.seconds - self.prefill_s)


def run_generate(
    model: Any, prompt: VideoPrompt, sequences: int, s: SamplingSettings, clock: Clock
) -> Result:
    inputs = {k: v.to(clock.device) for k, v in prompt.repeated(sequences).items()}
    kwargs = {
        "do_sample": True,
        "temperature": s.temperature,
        "top_p": 1.0,
        "top_k": None,
        "eos_token_id": None,
        "pad_token_id": s.pad_token_id,
        "suppress_tokens": list(s.suppress_tokens),
    }
    with torch.no_grad():
        model.generate(**inputs, max_new_tokens=1, **kwargs)  # warm-up (kernels, allocator)
        with clock.measure() as timing:
            output = model.generate(
                **inputs, max_new_tokens=s.max_new_tokens, min_new_tokens=s.max_new_tokens, **kwargs
            )
    new = (output.shape[1] - inputs["input_ids"].shape[1]) * sequences
    return Result("generate", sequences, timing["seconds"], None, new, timing.get("peak_gb"))


def run_engine(
    label: str,
    model: Any,
    prompts: EncodedPrompts,
    s: SamplingSettings,
    options: RolloutOptions,
    clock: Clock,
) -> tuple[Result, float]:
    """One untimed call (compiles, warms up), then one timed; returns the result and the warm-up seconds."""
    engine = VideoRolloutEngine(s, options)
    with clock.measure() as warm:
        engine.generate(model, prompts)
    with clock.measure() as timing:
        rollout = engine.generate(model, prompts)
    result = Result(
        label, len(prompts), timing["seconds"], rollout.prefill_s, rollout.new_tokens, timing.get("peak_gb")
    )
    return result, warm["seconds"]


def grpo_step(bench: Bench, args: argparse.Namespace) -> tuple[float, float]:
    """(scoring, update) seconds of one `VideoGRPOTrainer` cycle on `--prompts` × `--group` sequences
    (see `bench.common.GRPOIteration`); the update is timed after one untimed update."""
    model, clock = bench.model, bench.clock
    model.requires_grad_(True)  # the GRPO recipe trains everything
    set_checkpointing(model, True)
    dataset = to_grpo_rows(bench_rows(bench.clips(args.prompts)))
    trainer = grpo_trainer(
        bench, dataset, group=args.group, micro_batch=args.micro_batch, new_tokens=args.new_tokens
    )
    rows = generation_batch(dataset, args.group)
    iteration = GRPOIteration(trainer, rows, make_optimizer(trainer, "adamw"))
    with clock.measure() as scored:
        micro_batches = iteration.score()
    generation = iteration.generation_seconds(1)
    assert generation is not None, "the trainer logged no rollout: is its rollout engine ours?"
    updated = clock.repeat(lambda: iteration.update(micro_batches), 1, 1)
    model.eval()
    set_checkpointing(model, False)
    return scored["seconds"] - sum(generation), updated["seconds"]


# ---------------------------------------------------------------------------------------------- report

HEADER = (
    f"{'variant':<20}{'seqs':>6}{'seconds':>9}{'new tok/s':>11}{'x generate':>11}"
    f"{'prefill s':>10}{'decode tok/s':>14}{'floor':>10}{'% floor':>9}{'peak GB':>9}"
)


def line(result: Result, baseline: Result | None, floor: float) -> str:
    ratio = f"{result.tokens_per_s / baseline.tokens_per_s:.1f}x" if baseline else "-"
    prefill = f"{result.prefill_s:.2f}" if result.prefill_s is not None else "-"
    decode = result.decode_tokens_per_s
    share = f"{100 * decode / floor:.1f}%" if decode else "-"
    memory = f"{result.peak_gb:.1f}" if result.peak_gb is not None else "n/a"
    return (
        f"{result.label:<20}{result.sequences:>6}{result.seconds:>9.2f}{result.tokens_per_s:>11,.0f}"
        f"{ratio:>11}{prefill:>10}{(f'{decode:,.0f}' if decode else '-'):>14}{floor:>10,.0f}{share:>9}"
        f"{memory:>9}"
    )


def figures(result: Result, baseline: Result | None, floor: float) -> dict[str, Any]:
    """One table row as numbers (what `line` prints), for ``--json``."""
    decode = result.decode_tokens_per_s
    return {
        "label": result.label,
        "sequences": result.sequences,
        "seconds": result.seconds,
        "new_tokens": result.new_tokens,
        "tokens_per_s": result.tokens_per_s,
        "x_generate": result.tokens_per_s / baseline.tokens_per_s if baseline else None,
        "prefill_s": result.prefill_s,
        "decode_tokens_per_s": decode,
        "floor_tokens_per_s": floor,
        "floor_share": decode / floor if decode else None,
        "peak_gb": result.peak_gb,
    }


class Report(dict):
    """The figures ``--json`` asks for, rewritten to its path whenever a row adds some."""

    def __init__(self, path: str | None) -> None:
        super().__init__(rows=[])
        self.path = path

    def save(self) -> None:
        if self.path:
            write_text_atomic(self.path, json.dumps(self, indent=2) + "\n")

    def add(self, key: str, value: Any) -> None:
        self[key] = value
        self.save()

    def row(self, value: dict[str, Any]) -> None:
        self["rows"].append(value)
        self.save()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_model_args(parser)
    parser.add_argument("--prompts", type=int, default=1, help="distinct prompts per rollout")
    parser.add_argument("--group", type=int, default=8, help="completions per prompt (paper: 8)")
    parser.add_argument("--new-tokens", type=int, default=256, help="tokens generated per completion")
    parser.add_argument("--scale", default="4,8", help="prompt counts for the scaling rows ('' for none)")
    parser.add_argument("--skip-generate", action="store_true", help="skip the generate baseline")
    parser.add_argument("--no-compile", action="store_true", help="skip the compiled variant")
    parser.add_argument("--update", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--micro-batch", type=int, default=8, help="GRPO update micro-batch (recipe: 8)")
    parser.add_argument(
        "--bandwidth-gbs", type=float, default=None, help="read bandwidth (default: measured)"
    )
    parser.add_argument("--json", metavar="PATH", default=None, help="also write the figures as JSON here")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    with open_bench(args) as bench:
        run(bench, args)


def run(bench: Bench, args: argparse.Namespace) -> None:
    device, clock, config, model, prompt = bench.device, bench.clock, bench.config, bench.model, bench.prompt
    model.eval()
    settings = sampling(bench, args.new_tokens)
    if args.bandwidth_gbs:
        bandwidth, source = args.bandwidth_gbs * 1e9, "given"
    else:
        bandwidth, source = read_bandwidth(device, clock, 0.25 if args.tiny else 4.0), "measured"
    floor = decode_floor(model, config, bandwidth)
    prompt_tokens = prompt.tokens
    sequences = args.prompts * args.group
    print(
        f"{args.arch}{' (tiny)' if args.tiny else ''} on {bench.device_name}: LM weights read per "
        f"decode step {floor.weight_bytes / 1e9:.2f} GB, KV {floor.kv_bytes_per_token / 1e3:.1f} KB/token; "
        f"read bandwidth {bandwidth / 1e9:,.0f} GB/s ({source})"
    )
    print(
        f"rollout: {args.prompts} prompt(s) x {args.group} completions = {sequences} sequences; "
        f"{prompt_tokens:,}-token video prompt ({args.frames} frames); {args.new_tokens} new tokens each\n"
    )

    def floor_at(rows: int) -> float:
        return floor.tokens_per_s(rows, prompt_tokens, args.new_tokens)

    report = Report(args.json)
    report.add(
        "config",
        {
            "arch": args.arch,
            "tiny": args.tiny,
            "device": bench.device_name,
            "layers": config.text_config.num_hidden_layers,
            "frames": args.frames,
            "prompt_tokens": prompt_tokens,
            "prompts": args.prompts,
            "group": args.group,
            "sequences": sequences,
            "new_tokens": args.new_tokens,
            "weight_bytes": floor.weight_bytes,
            "kv_bytes_per_token": floor.kv_bytes_per_token,
            "bandwidth_gbs": bandwidth / 1e9,
            "bandwidth_source": source,
        },
    )
    print(HEADER)
    baseline = None
    if not args.skip_generate:
        baseline = run_generate(model, prompt, sequences, settings, clock)
        print(line(baseline, None, floor_at(sequences)), flush=True)
        report.row(figures(baseline, None, floor_at(sequences)))
    prompts = grouped_prompts(prompt, args.prompts, args.group, device)
    variants = [
        ("videokr dynamic", RolloutOptions(cache="dynamic", compile=False)),
        ("videokr static", RolloutOptions(cache="static", compile=False)),
    ]
    if not args.no_compile:
        variants.append(("videokr compiled", RolloutOptions(cache="static", compile=True)))
    best: Result | None = None
    for label, options in variants:
        result, warm = run_engine(label, model, prompts, settings, options, clock)
        print(line(result, baseline, floor_at(sequences)), flush=True)
        if options.compile:
            print(f"{'':<20}(first call, compiling: {warm:.1f} s)")
        report.row({**figures(result, baseline, floor_at(sequences)), "first_call_s": warm})
        if best is None or result.tokens_per_s > best.tokens_per_s:
            best = result
    assert best is not None
    best_options = dict(variants)[best.label]

    for count in [int(c) for c in args.scale.split(",") if c.strip()]:
        scaled = grouped_prompts(prompt, count, args.group, device)
        result, _ = run_engine(f"{best.label} x{count}", model, scaled, settings, best_options, clock)
        print(line(result, None, floor_at(len(scaled))), flush=True)
        report.row(figures(result, None, floor_at(len(scaled))))

    if args.update:
        scoring_s, update_s = grpo_step(bench, args)
        report.add("grpo_step", {"sequences": sequences, "scoring_s": scoring_s, "update_s": update_s})
        print(
            f"\nGRPO step on {sequences} such sequences (VideoGRPOTrainer): scoring {scoring_s:.2f} s "
            f"(clip decode and processor, reference forward, rewards), update {update_s:.2f} s"
        )
        for result in [r for r in (baseline, best) if r is not None]:
            total = result.seconds + scoring_s + update_s
            print(
                f"  with {result.label:<17} rollout {result.seconds:.2f} s + scoring + update = "
                f"{total:.2f} s; rollout is {100 * result.seconds / total:.0f}% of the step"
            )


if __name__ == "__main__":
    main()
