"""The ``videokr eval`` and ``videokr leaderboard`` subcommands, for the main CLI to register.

`add_eval_commands` takes the main parser's subparsers object, as `videokr.pipeline.cli` does, so the
two commands are one line in ``videokr/cli.py``. Handlers import their modules lazily: ``videokr
--help`` must not pay for importing lighteval and torch.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

__all__ = ["add_eval_commands"]


def _eval(args: argparse.Namespace) -> int:
    from videokr.evaluation.run import DEFAULT_TASKS, eval_command

    return eval_command(
        args.model,
        tasks=args.tasks or list(DEFAULT_TASKS),
        dataset=args.dataset,
        output_dir=args.output_dir,
        fps=args.fps,
        max_frames=args.max_frames,
        num_frames=args.num_frames,
        max_pixels=args.max_pixels,
        batch_size=args.batch_size,
        probe=args.probe,
        single_frame_as=args.single_frame_as,
        temperature=args.temperature,
        max_new_tokens=args.max_new_tokens,
        device=args.device,
        dtype=args.dtype,
        max_samples=args.max_samples,
        judge_url=args.judge_url,
        judge_model=args.judge_model,
        judge_mc=args.judge_mc,
        judge_api_key=os.environ.get("VIDEOKR_JUDGE_API_KEY"),
        judge_protocol=args.judge_protocol,
        cache_dir=args.cache_dir,
        runs=args.runs,
        seed=args.seed,
        engine=args.engine,
    )


def _leaderboard(args: argparse.Namespace) -> int:
    from videokr.evaluation.leaderboard import leaderboard_command

    return leaderboard_command(args.results_dirs, out=args.out)


def add_eval_commands(commands: argparse._SubParsersAction) -> None:
    """Register ``eval`` and ``leaderboard`` on the main parser's subcommands."""
    text = (
        "Evaluate a Qwen2.5-VL / Qwen3-VL model on VideoKR-Eval and its shortcut probes with lighteval "
        "(results and per-item details under --output-dir)."
    )
    ev = commands.add_parser("eval", help=text, description=text)
    ev.set_defaults(handler=_eval)
    ev.add_argument("model", help="model id or local folder (AutoModelForImageTextToText + AutoProcessor)")
    ev.add_argument(
        "--tasks",
        nargs="+",
        default=None,
        help="videokr_eval, videokr_eval_single_frame, videokr_eval_text_only, videokr_eval_mmvu, "
        "videokr_eval_videommmu, videokr_eval_scivideobench (default: the first three)",
    )
    ev.add_argument("--dataset", default=None, help="Hub repo id or folder from `videokr build eval`")
    ev.add_argument("--output-dir", type=Path, default=Path("results"), help="where results go")
    ev.add_argument("--fps", type=float, default=2.0, help="frames per second sampled (paper: 2)")
    ev.add_argument("--max-frames", type=int, default=128, help="frame cap per clip (paper: 128)")
    ev.add_argument("--num-frames", type=int, default=None, help="a fixed frame count instead of --fps")
    ev.add_argument("--max-pixels", type=int, default=None, help="pixels per frame (paper: 100352)")
    ev.add_argument("--batch-size", type=int, default=1, help="generations per forward")
    ev.add_argument(
        "--probe",
        choices=("video", "single_frame", "text_only"),
        default=None,
        help="force one visual input for every task (default: as each task says)",
    )
    ev.add_argument(
        "--single-frame-as",
        choices=("image", "still"),
        default="image",
        help="the single-frame probe's frame as an image (paper) or as a still video of the clip's "
        "length (for models trained on video only)",
    )
    ev.add_argument("--temperature", type=float, default=None, help="sampling temperature (paper: 0.1)")
    ev.add_argument("--max-new-tokens", type=int, default=None, help="generation budget (paper: 8192)")
    ev.add_argument("--device", default="auto", help="cuda, cpu, … (default: cuda when available)")
    ev.add_argument("--dtype", default="auto", help="bfloat16, float32, … (default: bf16 on GPU)")
    ev.add_argument(
        "--cache-dir",
        default=None,
        help="lighteval's prediction cache (default: ~/.cache/huggingface/lighteval)",
    )
    ev.add_argument("--max-samples", type=int, default=None, help="evaluate only this many items per task")
    ev.add_argument(
        "--judge-url",
        default=None,
        help="OpenAI-compatible endpoint for the judge (key in VIDEOKR_JUDGE_API_KEY); none: ROUGE line",
    )
    ev.add_argument("--judge-model", default=None, help="model name the judge endpoint serves")
    ev.add_argument("--judge-mc", action="store_true", help="judge multiple-choice answers too")
    ev.add_argument(
        "--judge-protocol",
        choices=("videokr", "official"),
        default="videokr",
        help="official: the paper's judged runs (every item judged, temperature 1, 256 tokens, a reply "
        "containing 1 is correct), which then make acc_official; videokr: open-ended judged greedily",
    )
    ev.add_argument(
        "--runs",
        type=int,
        default=1,
        help="runs with seeds --seed, --seed+1, …, one results file each, reported as mean ± std (the "
        "paper's protocol: 3); generated in one pass, each item prefilled once for all its runs",
    )
    ev.add_argument("--seed", type=int, default=0, help="sampling seed of the first run")
    ev.add_argument(
        "--engine",
        choices=("videokr", "generate"),
        default="videokr",
        help="videokr: the batched engine (static cache, compiled on CUDA; same answers as generate); "
        "generate: transformers' model.generate",
    )

    text = "Leaderboard across VideoKR-Eval runs: Markdown (printed), CSV and a PNG plot."
    lb = commands.add_parser("leaderboard", help=text, description=text)
    lb.set_defaults(handler=_leaderboard)
    lb.add_argument(
        "results_dirs", type=Path, nargs="+", metavar="RESULTS_DIR", help="lighteval output folders"
    )
    lb.add_argument("--out", type=Path, default=None, help="output folder (default: the first RESULTS_DIR)")
