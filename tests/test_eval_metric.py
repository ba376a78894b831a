"""The scorer as an `evaluate` metric loads offline from its folder and agrees with the lighteval metric's
per-item rules on the differential corpus."""

from __future__ import annotations

import random
from pathlib import Path

import evaluate
import pytest
from test_eval_official import CLASSES, make_item

ROOT = Path(__file__).resolve().parents[1]


def test_the_metric_module_loads_offline_and_scores_both_ways(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_EVALUATE_OFFLINE", "1")
    metric = evaluate.load(str(ROOT / "eval" / "videokr_metric"))

    rng = random.Random(0)
    predictions, references, options = [], [], []
    official_right = robust_right = 0
    for build, official, ours in CLASSES.values():
        for _ in range(5):
            item = make_item(rng)
            if item.gold == "A":  # the article class would be right by accident (see its test)
                item = type(item)(item.options, "B")
            predictions.append(build(rng, item))
            references.append(item.gold)
            options.append(item.options)
            official_right += official
            robust_right += ours
    predictions.append("<answer>red blood cells</answer>")
    references.append("red blood cells")
    options.append([])
    types = ["multiple choice"] * (len(predictions) - 1) + ["open-ended"]

    got = metric.compute(predictions=predictions, references=references, problem_types=types, options=options)
    mc = len(predictions) - 1
    assert got["n_items"] == len(predictions) and got["n_multiple_choice"] == mc
    assert got["official_skipped"] == 1
    assert got["acc_official"] == pytest.approx(official_right / mc)
    assert got["acc"] == pytest.approx(robust_right / mc)
    assert got["open_rouge"] == pytest.approx(1.0)
