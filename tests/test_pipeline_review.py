"""Expert-facing steps: model eligibility against expert labels (≤ 3 % errors) and the review round trip."""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from pipeline_fixtures import message_text

from videokr.pipeline.client import CallableBackend, ModelClient
from videokr.pipeline.common import read_jsonl
from videokr.pipeline.eligibility import assess, license_policy_errors
from videokr.pipeline.review import export_review, import_review


def labelled(n: int) -> list[dict[str, Any]]:
    return [
        {
            "id": f"i{i}",
            "knowledge_point": f"KP{i}",
            "subject": "Physics",
            "title": f"Video {i}",
            "label": i % 2 == 0,
        }
        for i in range(n)
    ]


def judge_wrong_on(wrong: set[str]) -> ModelClient:
    """A relevance judge that agrees with the experts except on the items in `wrong`."""

    def reply(payload: Mapping[str, Any]) -> str:
        number = int(message_text(payload).split("Knowledge point: KP")[1].split(" ")[0])
        relevant = number % 2 == 0
        if f"i{number}" in wrong:
            relevant = not relevant
        return json.dumps({"relevant": relevant})

    return ModelClient(CallableBackend(reply, "judge"))


def test_a_model_serves_a_step_only_at_3_percent_error_or_less() -> None:
    ok = assess(judge_wrong_on({"i1", "i50", "i99"}), "relevance", labelled(100))
    assert ok.eligible and ok.error_rate == 0.03 and ok.errors == ["i1", "i50", "i99"]
    bad = assess(judge_wrong_on({"i1", "i2", "i50", "i99"}), "relevance", labelled(100))
    assert not bad.eligible and "NOT eligible" in bad.summary()
    assert not assess(judge_wrong_on(set()), "relevance", []).eligible


def test_license_step_is_held_to_expert_labels() -> None:
    rows = [
        {"id": "a", "license": "CC BY 4.0", "label": True},
        {"id": "b", "license": "CC BY-NC 4.0", "label": True},
    ]
    assert license_policy_errors(rows) == ["b"]


def test_review_round_trip_applies_verdicts_and_edits(tmp_path: Path) -> None:
    base = {
        "video": "v.mp4",
        "options": ["A. one", "B. two"],
        "problem_type": "multiple choice",
        "solution": "<answer>A</answer>",
        "think": "<think>seen</think>",
    }
    rows = [{**base, "id": f"e{i}", "question": f"Q{i}?"} for i in range(5)]
    examples = tmp_path / "examples.jsonl"
    examples.write_text("".join(json.dumps(r) + "\n" for r in rows))
    sheet = tmp_path / "review.csv"
    assert export_review(examples, sheet) == 5

    with sheet.open(newline="", encoding="utf-8") as handle:
        table = list(csv.DictReader(handle))
    assert table[0]["options"] == "A. one\nB. two" and table[0]["verdict"] == ""
    table[0]["verdict"] = "accept"
    table[1].update(verdict="reject", note="answer not visible")
    table[2].update(verdict="edit", question="Q2, reworded?", answer="B")
    table[3].update(verdict="edit", answer="C")  # no option C: the edit is refused
    with sheet.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(table)

    report = import_review(examples, sheet, tmp_path / "reviewed.jsonl")
    kept = read_jsonl(tmp_path / "reviewed.jsonl")
    assert [r["id"] for r in kept] == ["e0", "e2"]
    assert kept[1]["question"] == "Q2, reworded?" and kept[1]["answer"] == "B" and kept[1]["think"] == "seen"
    assert report.rejected == {"e1": "answer not visible"}
    assert list(report.invalid) == ["e3"] and report.unreviewed == ["e4"]


def test_cli_runs_a_stage_against_the_endpoint_in_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import argparse

    from pipeline_fixtures import ChatServer

    from videokr.pipeline.cli import add_pipeline_commands

    parser = argparse.ArgumentParser(prog="videokr")
    add_pipeline_commands(parser.add_subparsers(dest="command", required=True))
    reply = json.dumps({"items": ["one", "two"]})
    with ChatServer(lambda payload: reply) as server:
        monkeypatch.setenv("VIDEOKR_API_BASE", server.base_url)
        monkeypatch.setenv("VIDEOKR_API_KEY", "k")
        out = tmp_path / "bank.jsonl"
        argv = [
            "pipeline",
            "bank",
            "--out",
            str(out),
            "--subject",
            "Optics",
            "--model",
            "served-model",
            "--cache",
            str(tmp_path / "cache"),
            "--courses",
            "2",
            "--lectures",
            "1",
            "--points",
            "2",
        ]
        args = parser.parse_args(argv)
        assert args.handler(args) == 0
    assert len(read_jsonl(out)) == 2 * 1 * 2
    assert {p["model"] for p in server.requests} == {"served-model"} and server.auth_headers[0] == "Bearer k"
