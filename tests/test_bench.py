"""The GPU benchmarks run end to end on CPU with the tiny config (`--device cpu --tiny`), so a change that
breaks them shows here rather than on the first GPU machine someone rents."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_bench(module: str, *args: str) -> str:
    """`python -m bench.<module> --device cpu --tiny ...` from the repository root, as the README runs it."""
    result = subprocess.run(
        [sys.executable, "-m", f"bench.{module}", "--device", "cpu", "--tiny", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result.stdout


def test_rollout_bench_compares_the_engine_with_generate_and_the_floor() -> None:
    out = run_bench("rollout", "--frames", "4", "--new-tokens", "8", "--scale", "2", "--no-compile")
    # Table rows: a 20-character label, then sequences, seconds, tokens/s, ratio to generate, ...
    rows = {line[:20].strip(): line[20:].split() for line in out.splitlines() if line[20:21] == " "}
    assert rows["generate"][0] == "8"
    for variant in ("videokr dynamic", "videokr static"):
        assert rows[variant][0] == "8" and rows[variant][3].endswith("x")
    (scaled,) = [label for label in rows if label.endswith(" x2")]  # the fastest variant, at 2 prompts
    assert rows[scaled][0] == "16"
    assert "read bandwidth" in out
    assert "rollout is" in out and "of the step" in out


def test_train_step_bench_runs_every_phase() -> None:
    out = run_bench("train_step", "--frames", "4", "--new-tokens", "8", "--response", "16")
    for phase in ("SFT text-only (base)", "SFT video", "GRPO rollout", "GRPO scoring", "GRPO update"):
        assert phase in out


def test_eval_throughput_bench_compares_the_engines_on_one_eval_batch() -> None:
    out = run_bench("eval_throughput", "--frames", "4", "--new-tokens", "8", "--repeats", "1")
    one, protocol = out.split("\nthe paper's protocol: 3 runs per item")
    assert "read bandwidth" in one

    def rows(table: str) -> dict[str, list[str]]:
        """Table rows: the engine, then items, rows, seconds, items/s, new tokens/s, ratio to generate, ..."""
        lines = map(str.split, table.splitlines())
        return {words[0]: words[1:] for words in lines if words[:1] in (["generate"], ["videokr"])}

    single, runs = rows(one), rows(protocol)
    assert single["generate"][:2] == single["videokr"][:2] == ["8", "8"]
    assert single["generate"][5] == "-" and single["videokr"][5].endswith("x")
    # Off CUDA the engine decodes with generate's own arithmetic: the same answers, bf16 included.
    assert "identical answers (text and token ids), videokr vs generate: 8/8" in one
    # The protocol: generate decodes 24 sequences; the engine one per item (the official decoding's runs
    # agree), and every run's answers are still generate's.
    assert runs["generate"][:2] == ["8", "24"] and runs["videokr"][:2] == ["8", "8"]
    assert "identical answers (text and token ids), videokr vs generate: 24/24" in protocol
