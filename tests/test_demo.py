"""`videokr demo --small` end to end: every artefact it promises exists and loads, and a re-run resumes."""

from __future__ import annotations

import json
import time
from pathlib import Path

import datasets
from transformers import AutoModelForImageTextToText

from videokr.demo import EVAL_TASKS, run_demo


def test_small_demo_makes_every_artefact_and_resumes(tmp_path: Path, capsys) -> None:
    out = tmp_path / "demo"
    result = run_demo(out, small=True)
    printed = capsys.readouterr().out
    for number in range(1, 8):
        assert f"[{number}/7]" in printed
    assert "reusing" not in printed and "On the real data and models:" in printed

    # The three datasets load, each with the rows the demo reported.
    for name, folder in result.datasets.items():
        loaded = datasets.load_dataset(str(folder))
        split = next(iter(loaded.values()))
        assert len(split) == result.rows[name] > 0

    # Both trained checkpoints reload with the Auto class.
    for checkpoint in (result.sft_model, result.grpo_model):
        model = AutoModelForImageTextToText.from_pretrained(checkpoint)
        assert model.config.model_type == "qwen2_5_vl"

    # Results for three models, each with the three tasks.
    assert set(result.results) == {"base", "sft", "grpo"}
    for folder in result.results.values():
        (results_file,) = folder.rglob("results_*.json")
        scores = json.loads(results_file.read_text())["results"]
        for task in EVAL_TASKS:
            assert scores[f"{task}|0"]["n_items"] == 4

    # Leaderboard: three model rows in the Markdown table, the CSV and the PNG.
    table = result.leaderboard["md"].read_text().strip().splitlines()
    body = [line for line in table[2:] if line.startswith("|")]
    assert len(body) == 3
    for name in ("base", "sft", "grpo"):
        assert sum(line.startswith(f"| {name}") for line in body) == 1, table
    assert len(result.leaderboard["csv"].read_text().strip().splitlines()) == 4
    assert result.leaderboard["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # A second run reuses every stage and is fast.
    start = time.perf_counter()
    again = run_demo(out, small=True)
    elapsed = time.perf_counter() - start
    printed = capsys.readouterr().out
    assert printed.count("reusing") >= 8  # five stages, plus each of the three evaluated models
    assert len(again.reused) == 7 and elapsed < 30
    assert again.sft_model == result.sft_model and again.rows == result.rows
