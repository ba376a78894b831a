"""The ``videokr eval`` / ``videokr leaderboard`` argument definitions the main CLI registers."""

from __future__ import annotations

import argparse
from pathlib import Path

from videokr.evaluation.cli import add_eval_commands
from videokr.evaluation.run import DEFAULT_TASKS


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="videokr")
    add_eval_commands(parser.add_subparsers(dest="command", required=True))
    return parser


def test_eval_defaults_are_the_papers_settings_and_the_three_probe_tasks() -> None:
    args = _parser().parse_args(["eval", "Qwen/Qwen2.5-VL-7B-Instruct"])
    assert args.handler.__name__ == "_eval"
    assert (args.fps, args.max_frames, args.max_pixels, args.probe) == (2.0, 128, None, None)
    assert args.tasks is None  # None: DEFAULT_TASKS, resolved in the handler so --help stays instant
    assert DEFAULT_TASKS == ("videokr_eval", "videokr_eval_single_frame", "videokr_eval_text_only")
    assert args.temperature is None and args.max_new_tokens is None  # None: the paper's 0.1 and 8192
    assert (args.judge_protocol, args.runs, args.seed, args.engine) == ("videokr", 1, 0, "videokr")
    paper = _parser().parse_args(["eval", "m", "--runs", "3", "--judge-protocol", "official"])
    assert (paper.judge_protocol, paper.runs) == ("official", 3)


def test_eval_and_leaderboard_options_parse() -> None:
    parser = _parser()
    args = parser.parse_args(
        [
            "eval",
            "m",
            "--tasks",
            "videokr_eval_mmvu",
            "--max-frames",
            "32",
            "--probe",
            "text_only",
            "--judge-mc",
        ]
    )
    assert (args.tasks, args.max_frames, args.probe, args.judge_mc) == (
        ["videokr_eval_mmvu"],
        32,
        "text_only",
        True,
    )
    args = parser.parse_args(["leaderboard", "a", "b", "--out", "c"])
    assert args.handler.__name__ == "_leaderboard"
    assert (args.results_dirs, args.out) == ([Path("a"), Path("b")], Path("c"))
