"""The probes scored against known truth: exact precision and recall on records whose truth is built in."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from videokr.evaluation.probe_truth import (
    ProbeReport,
    format_probe_report,
    probe_report,
    probe_truth,
    probe_truth_from_results,
    truth_metrics,
    write_probe_truth,
)
from videokr.evaluation.scoring import summarize


def record(
    needs: str | None, correct: list[float], probe: str = "single_frame", **extra: Any
) -> dict[str, Any]:
    """A metric record as `score_docs` writes it (only what the summary and the probe truth read)."""
    return {
        "id": f"q{id(correct)}",
        "probe": probe,
        "problem_type": "multiple choice",
        "dataset": "VideoKR-Learn",
        "subject": None,
        "skill": None,
        "discipline": None,
        "origin": None,
        "needs": needs,
        "trials": len(correct),
        "scored": True,
        "judged": False,
        "correct": correct,
        "official": list(correct),
        "rouge": [],
        "extracted": ["A"] * len(correct),
        "method": ["letter"] * len(correct),
        "judge_failures": 0,
        "unreadable": False,
    } | extra


RIGHT, WRONG, MIXED = [1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 1.0]
# Truth, by construction: 4 single-frame and 2 text items (6 truly answerable from one frame), 4 multi-frame.
# The probe flags (right in all three trials) 3 single-frame, 1 text and 2 multi-frame items.
SINGLE_FRAME_RECORDS = [
    record("single_frame", RIGHT),
    record("single_frame", RIGHT),
    record("single_frame", RIGHT),
    record("single_frame", MIXED),  # right twice, wrong once: not flagged
    record("text", RIGHT),
    record("text", WRONG),
    record("multi_frame", RIGHT),  # a lucky streak: a false flag
    record("multi_frame", RIGHT),
    record("multi_frame", MIXED),
    record("multi_frame", WRONG),
]


def test_exact_precision_and_recall_of_the_single_frame_probe() -> None:
    truth = probe_truth(SINGLE_FRAME_RECORDS, "single_frame")
    assert truth is not None
    assert (truth.labelled, truth.flagged, truth.truly, truth.flagged_truly) == (10, 6, 6, 4)
    assert truth.precision == pytest.approx(4 / 6)  # 4 of the 6 flags are deserved
    assert truth.recall == pytest.approx(4 / 6)  # 4 of the 6 truly answerable items are caught
    assert truth.flagged_by_needs == {"text": 1, "single_frame": 3, "multi_frame": 2}
    assert truth.labelled_by_needs == {"text": 2, "single_frame": 4, "multi_frame": 4}


def test_text_only_probe_counts_only_text_items_as_truly_answerable() -> None:
    records = [
        record("text", [1.0], probe="text_only"),
        record("text", [0.0], probe="text_only"),
        record("text", [1.0], probe="text_only"),
        record("single_frame", [1.0], probe="text_only"),  # a guess: flagged, not deserved
        record("multi_frame", [0.0], probe="text_only"),
    ]
    truth = probe_truth(records, "text_only")
    assert truth is not None
    assert (truth.flagged, truth.truly, truth.flagged_truly) == (3, 3, 2)
    assert (truth.precision, truth.recall) == (pytest.approx(2 / 3), pytest.approx(2 / 3))


def test_unlabelled_and_unscored_items_are_left_out_and_undefined_rates_are_nan() -> None:
    records = [
        record(None, RIGHT),
        record("single_frame", RIGHT, scored=False),  # open-ended without a judge: never scored
        record("multi_frame", WRONG),
    ]
    truth = probe_truth(records)
    assert truth is not None and (truth.labelled, truth.flagged, truth.truly) == (1, 0, 0)
    assert math.isnan(truth.precision) and math.isnan(truth.recall)
    assert probe_truth([record(None, RIGHT)]) is None
    with pytest.raises(ValueError, match="needs 'video'"):
        probe_truth([record("video", RIGHT)])


def test_summary_adds_the_probe_numbers_only_when_items_carry_needs() -> None:
    summary = summarize(SINGLE_FRAME_RECORDS)
    assert summary["probe_precision"] == pytest.approx(4 / 6)
    assert summary["probe_recall"] == pytest.approx(4 / 6)
    assert (summary["probe_flagged"], summary["probe_truly"], summary["probe_flagged_truly"]) == (6, 6, 4)
    assert summary["acc:needs=text"] == pytest.approx(0.5)
    assert summary["acc:needs=single_frame"] == pytest.approx((3 + 2 / 3) / 4)
    assert summary["answerable_rate"] == pytest.approx(0.6)

    unlabelled = [r | {"needs": None} for r in SINGLE_FRAME_RECORDS]
    plain = summarize(unlabelled)
    assert not any("needs" in key or key.startswith("probe_") for key in plain)
    # Everything else is as it was: the labels only add keys.
    assert {k: v for k, v in summary.items() if k in plain} == plain

    # The full-video task gets per-needs accuracy but no probe numbers (the video is the whole input).
    video = summarize(
        [r | {"probe": "video", "trials": 1, "correct": r["correct"][:1]} for r in SINGLE_FRAME_RECORDS]
    )
    assert "acc:needs=multi_frame" in video and "probe_precision" not in video
    assert truth_metrics(SINGLE_FRAME_RECORDS, "video") == {}


def test_summary_leaves_precision_out_when_nothing_is_flagged() -> None:
    summary = summarize([record("single_frame", WRONG), record("multi_frame", MIXED)])
    assert "probe_precision" not in summary and summary["probe_recall"] == 0.0
    assert summary["probe_flagged"] == 0.0


def test_report_by_probe_and_needs_and_the_json_beside_the_results(tmp_path: Path) -> None:
    video = [record("multi_frame", [1.0], probe="video"), record("single_frame", [1.0], probe="video")]
    text = [record("text", [1.0], probe="text_only"), record("multi_frame", [0.0], probe="text_only")]
    report = probe_report({"video": video, "single_frame": SINGLE_FRAME_RECORDS, "text_only": text})
    assert isinstance(report, ProbeReport)
    assert report.accuracy["video"] == {"single_frame": 1.0, "multi_frame": 1.0}
    assert report.accuracy["text_only"] == {"text": 1.0, "multi_frame": 0.0}
    assert report.items["single_frame"] == {"text": 2, "single_frame": 4, "multi_frame": 4}
    assert set(report.truth) == {"single_frame", "text_only"}
    text_out = format_probe_report(report, "probe truth")
    assert "precision  66.7 % (4/6)" in text_out and "recall 100.0 % (1/1" in text_out

    # lighteval's details parquet: one row per item, the record under metric.videokr; newest file wins.
    for probe, task, records in (
        ("video", "videokr_eval", video),
        ("single_frame", "videokr_eval_single_frame", SINGLE_FRAME_RECORDS),
        ("text_only", "videokr_eval_text_only", text),
    ):
        folder = tmp_path / "details" / "model" / "2026-01-01T00-00-00"
        folder.mkdir(parents=True, exist_ok=True)
        frame = pd.DataFrame({"metric": [{"videokr": r} for r in records]})
        frame.to_parquet(folder / f"details_{task}|0_2026-01-01T00-00-00.parquet")
        stale = pd.DataFrame({"metric": [{"videokr": record("text", [0.0], probe=probe)}]})
        stale.to_parquet(folder / f"details_{task}|0_2025-01-01T00-00-00.parquet")
    read = probe_truth_from_results(tmp_path)
    assert read is not None and read.to_dict() == report.to_dict()
    path = write_probe_truth(tmp_path)
    assert path == tmp_path / "probe_truth.json"
    data = json.loads(path.read_text())
    assert data["truth"]["single_frame"]["precision"] == pytest.approx(4 / 6)

    empty = tmp_path / "no-labels"
    empty.mkdir()
    assert probe_truth_from_results(empty) is None and write_probe_truth(empty) is None
