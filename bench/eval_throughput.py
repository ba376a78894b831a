"""Benchmark: evaluation throughput of the batched engine against transformers' ``generate``, beside the
floor that memory bandwidth sets.

Same model, same batch, same run: `VideoLightevalModel` (the lighteval model ``videokr eval`` runs) with
its model and processor replaced by the bench's, answering one batch of ``--batch`` different evaluation
items of the video probe (eight multiple-choice questions, each with its own clip of ``--frames`` random
frames), with ``engine="generate"`` (``model.generate``) and with ``engine="videokr"``
(`videokr.generation.VideoRolloutEngine`: one prefill of the batch, then on CUDA a static KV cache and a
compiled decode step, elsewhere a growing cache). Each call is the model's whole ``_generate_runs``: chat
text, the processor call, prefill, decode and the decoding of the answers.

Decoding is the official one (temperature 0.1, top-p 0.001; ``--greedy`` for the most likely token) with
the end-of-sequence, pad and vision tokens suppressed (`bench.common.never_sampled`, set in the model's
own generation config, which both engines read), so every answer is exactly ``--new-tokens`` long and
both engines do the same work. The count of answers the two engines give identically is printed: all,
off CUDA (the evaluation then decodes over a growing cache, with generate's own arithmetic); on CUDA, in
bf16, the static cache's attention rounds differently and a random model's many near-ties may part some.

**Runs.** The paper reports the mean of 3 runs. ``--runs 3`` (the default) also times the protocol as
``videokr eval --runs 3`` runs it (`VideoLightevalModel._generate_runs`): ``generate`` answers the batch
once per seed, the engine answers all three runs in one call, each item prefilled once for its runs and,
off CUDA, the runs of an item decoded as one row until their tokens part (keyed sampling; under the
official decoding they part only where two tokens tie). "rows" is the number of sequences the engine
decoded at the end; an item counts once however many runs it had, and every run's tokens count in the
token rates (the rate a user gets), so merged runs can pass the floor, which assumes one row per sequence.
The one-run table comes first.

Each engine is called once untimed (kernels, allocator; compilation on CUDA), then timed in
``--repeats`` rounds, taking turns, for one new token (the prefill and the first token, printed as
"prefill s") and for ``--new-tokens``, the fastest call counting; "decode tok/s" is the decode alone,
``batch × (new tokens − 1) / (t_N − t_1)``. The **floor** is the decode rate memory bandwidth allows, as
`bench.rollout` computes it: every language-model weight but the embedding table, plus each sequence's
keys and values, read once per decode step, at the bandwidth this device reaches in a large ``sum``
(``--bandwidth-gbs`` replaces the measurement).

    python -m bench.eval_throughput --arch qwen2_5_vl --frames 32 --new-tokens 256   # CUDA, 7B
    python -m bench.eval_throughput --device cpu --layers 2 --frames 2 --height 112 --width 224 \\
        --new-tokens 48 --repeats 1 --dtype float32                                 # CPU, 7B width
    python -m bench.eval_throughput --device cpu --tiny                              # smoke run

Random weights of the released architectures and the video frames: `bench.common`. Run from the
repository root.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from bench.common import Bench, add_model_args, never_sampled, open_bench, synthetic_visual
from bench.rollout import decode_floor, read_bandwidth
from videokr.data import prompts
from videokr.evaluation.inputs import GenerationRequest
from videokr.evaluation.model import PAPER_GENERATION, Generation, VideoLightevalModel, VideoModelConfig

#: Eight multiple-choice items of different lengths (their content changes nothing about cost but the
#: prompt lengths, which differ as real items' do, so the batch is left-padded as in an evaluation).
ITEMS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Which principle explains the motion shown in the video?", ("Momentum", "Bernoulli", "Hooke", "Ohm")),
    (
        "What happens to the pressure of the gas as the piston in the video moves down?",
        ("It rises", "It falls", "It stays the same", "It oscillates"),
    ),
    ("Which organelle is highlighted?", ("Nucleus", "Mitochondrion", "Ribosome", "Golgi apparatus")),
    (
        "The experiment in the video mixes two clear solutions and a precipitate forms. Which reaction type "
        "does it demonstrate, and why does the solid appear only after stirring?",
        ("Double displacement", "Combustion", "Decomposition", "Synthesis", "Redox"),
    ),
    ("What is the period of the pendulum?", ("1 s", "2 s", "3 s", "4 s")),
    (
        "Which law relates the current and voltage measured in the circuit the narrator builds?",
        ("Ohm's law", "Faraday's law", "Lenz's law", "Ampère's law"),
    ),
    ("Which layer of the Earth is shown in red?", ("Crust", "Mantle", "Outer core", "Inner core")),
    (
        "After the lens is moved closer to the screen, what happens to the image, given the focal length "
        "stated at the start of the video?",
        ("It blurs", "It sharpens", "It inverts", "It grows", "It shrinks", "Nothing changes"),
    ),
)
ENGINES = ("generate", "videokr")


class BenchModel(VideoLightevalModel):
    """The lighteval model with the bench's model and processor (built in memory, not loaded)."""

    def __init__(self, config: VideoModelConfig, bench: Bench) -> None:
        self.bench = bench
        super().__init__(config)

    def _load_processor(self) -> Any:
        return self.bench.processor

    def _load_model(self) -> Any:
        return self.bench.model

    @property
    def device(self) -> str:
        return str(self.bench.device)


def requests(bench: Bench, args: argparse.Namespace) -> list[GenerationRequest]:
    """`--batch` different video-probe items (items repeat with other clips past the eighth)."""
    out = []
    for i in range(args.batch):
        question, options = ITEMS[i % len(ITEMS)]
        text = prompts.build_prompt(question, list(options), "multiple choice", style="eval")
        visual = synthetic_visual(args.frames, args.height, args.width, seed=i)
        out.append(GenerationRequest(i, 0, f"bench-{i}", text, visual))
    return out


@dataclass
class Timing:
    engine: str
    items: int
    seconds: float  # --new-tokens
    prefill_s: float  # one new token
    new_tokens: int  # every run's
    answers: list[list[Generation]]  # per run
    rows: int  # sequences decoded at the end (the engine's merged runs), else items × runs

    @property
    def items_per_s(self) -> float:
        return self.items / self.seconds

    @property
    def tokens_per_s(self) -> float:
        return self.new_tokens / self.seconds

    def decode_tokens_per_s(self, new_tokens: int) -> float | None:
        decode_s = self.seconds - self.prefill_s
        runs = len(self.answers)
        return self.items * runs * (new_tokens - 1) / decode_s if decode_s > 0 and new_tokens > 1 else None


def measure(
    bench: Bench,
    config: VideoModelConfig,
    batch: list[GenerationRequest],
    new_tokens: int,
    repeats: int,
    runs: int = 1,
) -> list[Timing]:
    """Per engine, the fastest of `repeats` calls at one new token and at `new_tokens`, for `runs` runs
    (seeds 0 …), after an untimed call. The engines take turns within each round, so a busy machine slows
    both alike; each (engine, length) has its own model object, so the engine's static cache (and on CUDA
    its compiled graph) is that of the previous round's call. One new token needs no decode step."""
    models = {
        (engine, n): BenchModel(config.model_copy(update={"engine": engine}), bench)
        for engine in ENGINES
        for n in (1, new_tokens)
    }
    seeds = list(range(runs))
    # Kernels, allocator, compilation; on CPU nothing is compiled and two tokens warm up as well.
    warm = new_tokens if bench.device.type == "cuda" else min(2, new_tokens)
    for engine in ENGINES:
        models[engine, new_tokens]._generate_runs(batch, warm, seeds)
    seconds: dict[tuple[str, int], list[float]] = {key: [] for key in models}
    answers: dict[str, list[list[Generation]]] = {}
    rows: dict[str, int] = {}
    for _ in range(repeats):
        for (engine, n), model in models.items():
            with bench.clock.measure() as timing:
                out = model._generate_runs(batch, n, seeds)
            seconds[engine, n].append(timing["seconds"])
            if n == new_tokens:
                answers[engine] = out
                rollout = model.last_rollout
                rows[engine] = rollout.rows_decoded if rollout else len(batch) * runs
    timings = []
    for engine in ENGINES:
        made = sum(len(a.output_tokens) for run in answers[engine] for a in run)
        if made != len(batch) * runs * new_tokens:
            raise SystemExit(f"{engine}: {made} new tokens, expected {len(batch) * runs * new_tokens}")
        full, first = min(seconds[engine, new_tokens]), min(seconds[engine, 1])
        timings.append(Timing(engine, len(batch), full, first, made, answers[engine], rows[engine]))
    return timings


HEADER = (
    f"{'engine':<10}{'items':>6}{'rows':>6}{'seconds':>9}{'items/s':>9}{'new tok/s':>11}{'x generate':>11}"
    f"{'prefill s':>10}{'decode tok/s':>14}{'x generate':>11}{'floor tok/s':>13}{'% floor':>9}"
)


def line(t: Timing, baseline: Timing | None, new_tokens: int, floor: float) -> str:
    decode = t.decode_tokens_per_s(new_tokens)
    base_decode = baseline.decode_tokens_per_s(new_tokens) if baseline else None
    ratio = f"{t.tokens_per_s / baseline.tokens_per_s:.2f}x" if baseline else "-"
    decode_ratio = f"{decode / base_decode:.2f}x" if decode and base_decode else "-"
    share = f"{100 * decode / floor:.1f}%" if decode else "-"
    return (
        f"{t.engine:<10}{t.items:>6}{t.rows:>6}{t.seconds:>9.2f}{t.items_per_s:>9.2f}{t.tokens_per_s:>11,.1f}"
        f"{ratio:>11}{t.prefill_s:>10.2f}{(f'{decode:,.1f}' if decode else '-'):>14}{decode_ratio:>11}"
        f"{floor:>13,.1f}{share:>9}"
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_model_args(parser)
    parser.add_argument("--batch", type=int, default=8, help="evaluation items per batch (different)")
    parser.add_argument("--new-tokens", type=int, default=64, help="tokens generated per item")
    parser.add_argument("--greedy", action="store_true", help="greedy instead of the official decoding")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per figure (the fastest counts)")
    parser.add_argument(
        "--runs", type=int, default=3, help="runs per item for the protocol table (paper: 3; 1: one table)"
    )
    parser.add_argument(
        "--bandwidth-gbs", type=float, default=None, help="read bandwidth (default: measured)"
    )
    return parser.parse_args()


def run(bench: Bench, args: argparse.Namespace) -> None:
    network, config, clock = bench.model, bench.config, bench.clock
    network.eval()
    # Also the pad token: the answers' token ids are recorded without it, so one sampled would not count.
    tokenizer = bench.processor.tokenizer
    network.generation_config.suppress_tokens = sorted(
        {*never_sampled(config, tokenizer), tokenizer.pad_token_id}
    )
    decoding = (
        {"temperature": 0.0} if args.greedy else {k: PAPER_GENERATION[k] for k in ("temperature", "top_p")}
    )
    eval_config = VideoModelConfig(
        model_name=f"bench-{args.arch}",
        device=str(bench.device),
        batch_size=args.batch,
        cache_dir=str(bench.workdir / "cache"),
        generation_parameters={**decoding, "max_new_tokens": args.new_tokens},
    )
    BenchModel(eval_config, bench)  # refuses, before anything is timed, settings the engine lacks
    batch = requests(bench, args)

    if args.bandwidth_gbs:
        bandwidth, source = args.bandwidth_gbs * 1e9, "given"
    else:
        gib = 0.25 if args.tiny else 1.0 if bench.device.type == "cpu" else 4.0
        bandwidth, source = read_bandwidth(bench.device, clock, gib), "measured"
    floor = decode_floor(network, config, bandwidth)
    print(
        f"{args.arch}{' (tiny)' if args.tiny else ''}"
        f"{f', {config.text_config.num_hidden_layers} text layers' if not args.tiny else ''}"
        f", {args.dtype}, on "
        f"{bench.device_name}: LM weights read per decode step {floor.weight_bytes / 1e9:.2f} GB, "
        f"KV {floor.kv_bytes_per_token / 1e3:.1f} KB/token; read bandwidth {bandwidth / 1e9:,.1f} GB/s "
        f"({source})"
    )
    lengths: list[int] = []  # the prompts' token counts, from the first (one-run) table
    for runs in sorted({1, args.runs}):
        timings = measure(bench, eval_config, batch, args.new_tokens, args.repeats, runs)
        if runs == 1:
            lengths = [len(a.input_tokens) for a in timings[0].answers[0]]
            print(
                f"eval batch: {args.batch} video items ({args.frames} frames of {args.height}x{args.width}), "
                f"prompts of {min(lengths):,}-{max(lengths):,} tokens; {args.new_tokens} new tokens each, "
                f"{'greedy' if args.greedy else 'official decoding (temperature 0.1, top-p 0.001)'}"
            )
        title = "one run" if runs == 1 else f"the paper's protocol: {runs} runs per item, seeds 0-{runs - 1}"
        print(f"\n{title}\n{HEADER}")
        mean_prompt = sum(lengths) / len(lengths)
        floor_rate = floor.tokens_per_s(args.batch * runs, int(mean_prompt), args.new_tokens)
        baseline = timings[0]
        for t in timings:
            print(line(t, None if t is baseline else baseline, args.new_tokens, floor_rate))
        pairs = [
            (a, b)
            for ours, theirs in zip(timings[1].answers, timings[0].answers, strict=True)
            for a, b in zip(ours, theirs, strict=True)
        ]
        same = sum(a == b for a, b in pairs)
        print(f"identical answers (text and token ids), videokr vs generate: {same}/{len(pairs)}")


def main() -> None:
    args = parse_args()
    with open_bench(args) as bench:
        run(bench, args)


if __name__ == "__main__":
    main()
