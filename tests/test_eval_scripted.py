"""The VideoKR metric through the real lighteval pipeline, with a model whose answers are known.

The scripted model answers a chosen subset right, in the forms real models use (tags, lower-case
letters, option text, no tags at all); the expected accuracies are computed here from that plan and the
dataset rows, independently of the scorer, and must come out exactly, overall and per breakdown.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import huggingface_hub
import pytest
from eval_fixtures import eval_rows, model_dir, repo, scripted_model
from pipeline_fixtures import ChatServer, message_text

from videokr.data.answer_format import rouge_mean
from videokr.data.records import LETTERS, MULTIPLE_CHOICE
from videokr.errors import VideoKRError
from videokr.evaluation.inputs import GenerationRequest
from videokr.evaluation.judge import Judge, JudgeSettings
from videokr.evaluation.run import run_eval

__all__ = ["model_dir", "repo"]  # module fixtures, imported so pytest finds them here


class Plan:
    """Which items the scripted model gets right, and the text it answers with."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = {row["id"]: row for row in rows}
        self.texts: dict[str, str] = {}
        self.correct: dict[str, bool] = {}
        self.official: dict[str, bool] = {}
        mc = [r for r in rows if r["problem_type"] == MULTIPLE_CHOICE]
        open_ended = [r for r in rows if r["problem_type"] != MULTIPLE_CHOICE]
        for k, row in enumerate(mc):
            letter = row["answer"]
            wrong = LETTERS[(LETTERS.index(letter) + 1) % len(row["options"])]
            option = row["options"][LETTERS.index(letter)]
            forms = [
                f"<think>It must be {wrong}.</think>\n<answer>{wrong}</answer>",  # wrong
                f"<think>The clip shows it.</think>\n<answer>{letter}</answer>",
                f"<think>Looking again.</think> <answer>{letter.lower()}</answer>",
                f"<answer>{option}</answer>",
                f"Considering every option, the answer is ({letter}).",  # no tags
                f"<think>Hmm.</think>\n{wrong}",  # wrong, no tags
            ]
            self.texts[row["id"]] = forms[k % len(forms)]
            self.correct[row["id"]] = k % len(forms) not in (0, 5)
            # The official reading of the same forms: tags in any case, "answer is (X)"; option text only
            # when its first standalone letter (either case) happens to be the gold one.
            first = re.search(r"\b([A-Ja-j])\b", option)
            by_text = bool(first) and first.group(1).upper() == letter
            self.official[row["id"]] = {0: False, 1: True, 2: True, 3: by_text, 4: True, 5: False}[
                k % len(forms)
            ]
        for k, row in enumerate(open_ended):
            right = k % 2 == 0
            self.texts[row["id"]] = f"<answer>{row['answer'] if right else 'no idea at all'}</answer>"
            self.correct[row["id"]] = right

    def answer(self, request: GenerationRequest) -> str:
        return self.texts[request.item_id]

    def expected_acc(self, ids: list[str]) -> float:
        return sum(self.correct[i] for i in ids) / len(ids)

    def official_correct(self, item: str) -> bool:
        return self.official[item]


@pytest.fixture(scope="module")
def plan(repo: Path) -> Plan:
    return Plan(eval_rows(repo))


def _groups(plan: Plan, ids: list[str], label: str) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = defaultdict(list)
    for item in ids:
        groups[str(plan.rows[item][label])].append(item)
    return groups


def test_accuracy_and_breakdowns_are_exact_without_a_judge(
    repo: Path, model_dir: Path, plan: Plan, tmp_path_factory: pytest.TempPathFactory
) -> None:
    cache = tmp_path_factory.getbasetemp() / "scripted-cache"
    model = scripted_model(model_dir, cache, plan.answer)
    run = run_eval(model, ["videokr_eval"], dataset=str(repo), output_dir=tmp_path_factory.mktemp("plain"))
    m = run.task_metrics()["videokr_eval"]

    mc_ids = [i for i, r in plan.rows.items() if r["problem_type"] == MULTIPLE_CHOICE]
    open_ids = [i for i in plan.rows if i not in mc_ids]
    assert len(model.received) == len(plan.rows)  # every item asked once
    assert m["n_items"] == len(plan.rows)
    # Without a judge, acc is the official number: multiple-choice items only; open-ended on their own line.
    assert m["judged"] == 0.0
    assert m["acc_n"] == len(mc_ids)
    assert m["acc"] == pytest.approx(plan.expected_acc(mc_ids))
    assert m["mc_acc"] == pytest.approx(m["acc"])
    assert "open_acc" not in m
    assert m["open_rouge_n"] == len(open_ids)
    expected_rouge = [
        rouge_mean(plan.rows[i]["answer"], re.sub(r"</?answer>", "", plan.texts[i])) for i in open_ids
    ]
    assert m["open_rouge"] == pytest.approx(sum(expected_rouge) / len(open_ids))
    assert m["acc_ci_low"] <= m["acc"] <= m["acc_ci_high"]

    for label in ("dataset", "subject", "skill", "problem_type"):
        groups = _groups(plan, mc_ids, label)
        for value, ids in groups.items():
            key = f"acc:{label}={value}"
            assert m[key] == pytest.approx(plan.expected_acc(ids)), key
            assert m[f"{key}_n"] == len(ids)
            assert m[f"{key}_ci_low"] <= m[key] <= m[f"{key}_ci_high"]
        prefix = f"acc:{label}="
        reported = {k[len(prefix) : -len("_n")] for k in m if k.startswith(prefix) and k.endswith("_n")}
        assert reported == set(groups), label  # every group reported, no invented one
    assert m["acc:problem_type=multiple choice"] == pytest.approx(m["acc"])
    assert run.results_file is not None and run.results_file.is_file()

    # The official rule mode: multiple choice only (open-ended skipped), its letter rules (see
    # `videokr.evaluation.official`), restated here per answer form.
    assert (m["acc_official_n"], m["official_skipped"]) == (len(mc_ids), len(open_ids))
    assert m["acc_official"] == pytest.approx(sum(plan.official_correct(i) for i in mc_ids) / len(mc_ids))
    for value, ids in _groups(plan, mc_ids, "dataset").items():
        expected = sum(plan.official_correct(i) for i in ids) / len(ids)
        assert m[f"acc_official:dataset={value}"] == pytest.approx(expected)


def test_a_judge_scores_open_ended_items_without_rerunning_the_model(
    repo: Path,
    model_dir: Path,
    plan: Plan,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The judge server is on 127.0.0.1; huggingface_hub's offline switch would refuse even that.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)

    def verdict(payload: dict[str, Any]) -> str:
        text = message_text(payload)
        answer = text.split("Ground Truth Answer:\n", 1)[1].split("\nModel Prediction:\n", 1)[0]
        prediction = text.split("\nModel Prediction:\n", 1)[1].split("\n#", 1)[0]
        return "1" if answer.strip() == prediction.strip() else "0"

    cache = tmp_path_factory.getbasetemp() / "scripted-cache"  # shared with the run above
    model = scripted_model(model_dir, cache, plan.answer)
    with ChatServer(verdict) as server:
        settings = JudgeSettings(base_url=server.base_url, model="judge", max_workers=4)
        run = run_eval(
            model,
            ["videokr_eval"],
            dataset=str(repo),
            output_dir=tmp_path_factory.mktemp("judged"),
            judge=settings,
        )
    m = run.task_metrics()["videokr_eval"]

    open_ids = [i for i, r in plan.rows.items() if r["problem_type"] != MULTIPLE_CHOICE]
    # The judge is a scoring choice: lighteval's prediction cache answered, the model was not called.
    assert model.received == []
    assert len(server.requests) == len(open_ids)  # multiple choice is read by extraction, not judged
    assert server.requests[0]["temperature"] == 0.0
    assert m["judged"] == 1.0 and m["judge_failures"] == 0.0
    assert m["acc_n"] == len(plan.rows)
    assert m["acc"] == pytest.approx(plan.expected_acc(list(plan.rows)))
    assert m["open_acc"] == pytest.approx(plan.expected_acc(open_ids))
    assert m["acc:problem_type=open-ended"] == pytest.approx(m["open_acc"])


def test_the_official_judge_protocol_judges_every_item_as_the_paper_did(
    repo: Path,
    model_dir: Path,
    plan: Plan,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)

    def verdict(payload: dict[str, Any]) -> str:
        text = message_text(payload)
        answer = text.split("Ground Truth Answer:\n", 1)[1].split("\nModel Prediction:\n", 1)[0]
        prediction = text.split("\nModel Prediction:\n", 1)[1].split("\n#", 1)[0]
        # Verbose replies: the official reading counts any reply containing "1".
        return "Score: 1" if answer.strip().lower() == prediction.strip().lower() else "Score: 0"

    cache = tmp_path_factory.getbasetemp() / "scripted-cache"  # shared with the runs above
    model = scripted_model(model_dir, cache, plan.answer)
    with ChatServer(verdict) as server:
        settings = JudgeSettings(base_url=server.base_url, model="judge", max_workers=4, protocol="official")
        run = run_eval(
            model,
            ["videokr_eval"],
            dataset=str(repo),
            output_dir=tmp_path_factory.mktemp("official-judge"),
            judge=settings,
        )
    m = run.task_metrics()["videokr_eval"]
    assert model.received == []  # cached generations were scored again, the model was not called
    assert len(server.requests) == len(plan.rows)  # multiple choice judged too
    assert {(r["temperature"], r["max_tokens"]) for r in server.requests} == {(1.0, 256)}
    # The judge saw the first answer block's content (tags stripped), the whole output without one.
    expected = {}
    for item, row in plan.rows.items():
        blocks = re.findall(r"<answer>(.*?)</answer>", plan.texts[item], flags=re.I | re.S)
        prediction = blocks[0].strip() if blocks and blocks[0].strip() else plan.texts[item].strip()
        expected[item] = prediction.lower() == row["answer"].strip().lower()
    assert m["official_skipped"] == 0 and m["acc_official_n"] == len(plan.rows)
    assert m["acc_official"] == pytest.approx(sum(expected.values()) / len(expected))
    # Ours keeps reading multiple-choice letters robustly; open-ended takes the same verdicts.
    mc_ids = [i for i, r in plan.rows.items() if r["problem_type"] == MULTIPLE_CHOICE]
    assert m["mc_acc"] == pytest.approx(plan.expected_acc(mc_ids))


def test_a_judge_in_hub_offline_mode_fails_once_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(VideoKRError, match="HF_HUB_OFFLINE"):
        Judge(JudgeSettings(base_url="http://127.0.0.1:9/v1"))


def test_a_moved_folder_is_evaluated_with_its_own_clips(
    repo: Path, model_dir: Path, plan: Plan, tmp_path: Path
) -> None:
    """lighteval loads the folder through datasets' shared cache, keyed by the folder's name and card:
    after the folder moves, that entry still holds the clip paths of the old place, which no longer exist.
    Every item must still be evaluated on the clip at the new place."""
    import shutil

    first = tmp_path / "a" / "VideoKR-Eval-moved"
    shutil.copytree(repo, first)
    run_eval(
        scripted_model(model_dir, tmp_path / "cache-1", plan.answer),
        ["videokr_eval"],
        dataset=str(first),
        output_dir=tmp_path / "run-1",
    )
    moved = tmp_path / "b" / "VideoKR-Eval-moved"
    shutil.move(first, moved)
    model = scripted_model(model_dir, tmp_path / "cache-2", plan.answer)
    run = run_eval(model, ["videokr_eval"], dataset=str(moved), output_dir=tmp_path / "run-2")
    assert {r.item_id for r in model.received} == set(plan.rows)
    assert run.task_metrics()["videokr_eval"]["n_items"] == len(plan.rows)
    assert all(r.visual.num_frames > 0 for r in model.received)
