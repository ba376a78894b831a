"""`videokr demo --small` end to end: every artefact it promises exists and loads, the relations its budget
reaches hold, a failed relation fails `--check`, and a re-run resumes."""

from __future__ import annotations

import json
import time
from pathlib import Path

import datasets
import pytest
from transformers import AutoModelForImageTextToText

from videokr.demo import EVAL_TASKS, SMALL, STAGES, demo_command, run_demo
from videokr.demo.checks import RELATIONS, check_relations
from videokr.demo.curves import log_series


def test_small_demo_makes_every_artefact_checks_its_relations_and_resumes(tmp_path: Path, capsys) -> None:
    out = tmp_path / "demo"
    result = run_demo(out, small=True)
    printed = capsys.readouterr().out
    for number in range(1, STAGES + 1):
        assert f"[{number}/{STAGES}]" in printed
    assert "reusing" not in printed and "On the real data and models:" in printed

    # The three datasets load, each with the rows the demo reported; eval items carry what they need.
    for name, folder in result.datasets.items():
        loaded = datasets.load_dataset(str(folder))
        split = next(iter(loaded.values()))
        assert len(split) == result.rows[name] > 0
    eval_split = next(iter(datasets.load_dataset(str(result.datasets["eval"])).values()))
    assert set(eval_split["needs"]) == {"text", "single_frame", "multi_frame"}

    # Both trained checkpoints reload, and each training run kept its log: SFT's loss fell, GRPO logged
    # a mean reward for every step.
    for checkpoint in (result.sft_model, result.grpo_model):
        assert AutoModelForImageTextToText.from_pretrained(checkpoint).config.model_type == "qwen2_5_vl"
    losses = [loss for _, loss in log_series(result.sft_model / "trainer_state.json", "loss")]
    assert len(losses) >= 10 and losses[-1] < 0.5 * losses[0]
    rewards = log_series(result.grpo_model / "trainer_state.json", "reward")
    assert [step for step, _ in rewards] == list(range(1, SMALL.grpo_steps + 1))

    # Results for three models, each with the three tasks over every eval item, and the probe truth.
    assert set(result.results) == {"base", "sft", "grpo"}
    for name, folder in result.results.items():
        (results_file,) = folder.rglob("results_*.json")
        scores = json.loads(results_file.read_text())["results"]
        for task in EVAL_TASKS:
            assert scores[f"{task}|0"]["n_items"] == result.rows["eval"]
        if name == "base":  # random weights: no answer is readable, so no item is scored or flagged
            continue
        assert "probe_recall" in scores["videokr_eval_single_frame|0"]  # precision: only once flagged
        assert json.loads((folder / "probe_truth.json").read_text())["truth"]["single_frame"]["labelled"] > 0

    # Leaderboard: three model rows with the probe-truth columns, the CSV, the PNG, the training curves.
    table = result.leaderboard["md"].read_text().strip().splitlines()
    assert "1-frame probe recall" in table[0] and "needs several frames: video" in table[0]
    body = [line for line in table[2:] if line.startswith("|")]
    assert len(body) == 3
    for name in ("base", "sft", "grpo"):
        assert sum(line.startswith(f"| {name}") for line in body) == 1, table
    assert len(result.leaderboard["csv"].read_text().strip().splitlines()) == 4
    for png in (result.leaderboard["png"], result.curves):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # The relations the small budget reaches hold (seed 0; see SMALL), and they were written out.
    assert [r.name for r in result.relations] == list(SMALL.relations or RELATIONS)
    assert result.failed == [], printed
    written = json.loads((out / "relations.json").read_text())
    assert [r["name"] for r in written] == [r.name for r in result.relations]

    # Every relation is computed from the same results, and --check turns a failure into exit 1: the
    # untrained base model in SFT's place cannot beat itself by 30 points.
    everything = check_relations(result.results, result.grpo_model / "trainer_state.json")
    assert [r.name for r in everything] == list(RELATIONS)
    swapped = {**result.results, "sft": result.results["base"]}
    failed = {r.name for r in check_relations(swapped, None) if not r.holds}
    assert {"sft_beats_base", "reward_rising"} <= failed

    # A second run reuses every stage and is fast; with --check it exits 0 (no relation failed).
    start = time.perf_counter()
    again = run_demo(out, small=True)
    elapsed = time.perf_counter() - start
    printed = capsys.readouterr().out
    assert printed.count("reusing") >= 9  # six stages, plus each of the three evaluated models
    assert len(again.reused) == 7 and elapsed < 30
    assert again.sft_model == result.sft_model and again.rows == result.rows
    assert demo_command(out, small=True, check=True) == 0
    with pytest.raises(ValueError, match="seed 0, not 1"):  # another seed would mix two runs' stages
        run_demo(out, small=True, seed=1)


def test_check_names_every_missing_result(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="base/video"):
        check_relations({"base": tmp_path, "sft": tmp_path, "grpo": tmp_path}, None)
