"""The VideoKR metric for lighteval: per-item scores from `videokr.evaluation.answers`, then a summary with
breakdowns and bootstrap confidence intervals.

What is counted, and why (the official scorer's rules, made explicit):

* Multiple choice: the letter `videokr.evaluation.answers.extract_choice` reads from the raw output (reasoning
  included; it knows where the final answer is), compared with the gold letter.
* Open-ended with a judge: the judge's 0/1 verdict with the paper's open-ended judge prompt.
* Open-ended without a judge: the official scorer skips these items. Here they are never dropped
  silently: they get the paper's reward rule (mean ROUGE-1/2/L F1), reported on its own line
  (``open_rouge``, ``open_n``), and ``acc`` says which items it covers through ``n``.

``acc`` is ours (robust reading) over all items with a judge, over the multiple-choice items without
one (``judged`` tells which). ``acc_official`` is the paper's number, scored exactly as the official code
scores (`videokr.evaluation.official`): without a judge, or with a judge of the ``videokr`` protocol,
its rule mode (multiple choice only; open-ended items are skipped, ``official_skipped`` counts them);
with a judge of the ``official`` protocol, that judge's verdict on every item. The leaderboard's headline
column is ``acc_official``. With several trials per item (the single-frame probe), ``acc`` is the mean
over trials and ``answerable_rate`` the share of items answered right in *every*
trial, the paper's "single-frame solvable".

Items that carry a ``needs`` label (what answering them truly needs: ``text``, ``single_frame`` or
``multi_frame``; the learning corpus has it, the release does not) add ``acc:needs=…`` breakdowns and, on
the single-frame and text-only probes, the probe checked against that truth (`videokr.evaluation.
probe_truth`): ``probe_precision``, ``probe_recall`` and the counts behind them. Without labels the
summary is exactly what it was.

lighteval plumbing: the metric is a corpus-level metric named ``videokr`` whose per-item value is a
record (a dict) and whose aggregate is a dict of floats. lighteval stores dict aggregates as they are
(it computes no stderr for them), which is what lets one metric report its breakdowns and intervals.
It is computed batched so a judge can work on all items of a task concurrently.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from lighteval.metrics.metrics_corpus import CorpusLevelComputation
from lighteval.metrics.metrics_sample import SampleLevelComputation
from lighteval.metrics.utils.metric_utils import CorpusLevelMetric
from lighteval.models.model_output import ModelResponse
from lighteval.tasks.requests import Doc, SamplingMethod

from videokr.data.records import MULTIPLE_CHOICE
from videokr.evaluation.answers import score_prediction
from videokr.evaluation.inputs import UNREADABLE
from videokr.evaluation.judge import Judge, JudgeItem, active_judge
from videokr.evaluation.official import official_mc_correct
from videokr.evaluation.probe_truth import truth_metrics

__all__ = [
    "BOOTSTRAP_ITERATIONS",
    "BREAKDOWNS",
    "CONFIDENCE",
    "METRIC_NAME",
    "VideoKRAggregate",
    "VideoKRScorer",
    "bootstrap_interval",
    "score_docs",
    "summarize",
    "videokr_metric",
]

METRIC_NAME = "videokr"
#: Item labels results are broken down by (``acc:dataset=MMVU`` …).
BREAKDOWNS: tuple[str, ...] = ("problem_type", "dataset", "subject", "skill")
BOOTSTRAP_ITERATIONS = 1000
CONFIDENCE = 0.95
_LABELS = ("id", "probe", "problem_type", "dataset", "subject", "skill", "discipline", "origin", "needs")


# --------------------------------------------------------------------------------------------- per item


def score_docs(
    docs: Sequence[Doc], texts: Sequence[Sequence[str]], judge: Judge | None
) -> list[dict[str, Any]]:
    """One record per doc: labels, per-trial correctness, ROUGE, what was extracted and how."""
    records = [
        _score_one(doc.specific or {}, list(outputs)) for doc, outputs in zip(docs, texts, strict=True)
    ]
    if judge is not None:
        _apply_judge(docs, texts, records, judge)
    return records


def _score_one(item: Mapping[str, Any], outputs: list[str]) -> dict[str, Any]:
    is_mc = item["problem_type"] == MULTIPLE_CHOICE
    scores = [
        score_prediction(text, item["answer"], item["problem_type"], item["options"]) for text in outputs
    ]
    return {
        **{label: item.get(label) for label in _LABELS},
        "trials": len(outputs),
        "scored": is_mc,
        "judged": False,
        "correct": [float(s.correct) for s in scores],
        # The official rule mode scores multiple choice only; an official judge fills open-ended in.
        "official": [float(official_mc_correct(text, item["answer"])) for text in outputs] if is_mc else [],
        "rouge": [] if is_mc else [float(s.score) for s in scores],
        "extracted": [s.extracted for s in scores],
        "method": [s.method for s in scores],
        "judge_failures": 0,
        # The clip could not be read (see `VideoLightevalModel.greedy_until`): wrong in every score, and
        # counted in the summary's ``unreadable``.
        "unreadable": any(str(text).startswith(UNREADABLE) for text in outputs),
    }


def _apply_judge(
    docs: Sequence[Doc], texts: Sequence[Sequence[str]], records: list[dict[str, Any]], judge: Judge
) -> None:
    targets: list[tuple[int, int]] = []
    items: list[JudgeItem] = []
    for i, (doc, outputs) in enumerate(zip(docs, texts, strict=True)):
        item = doc.specific or {}
        if item["problem_type"] == MULTIPLE_CHOICE and not judge.settings.judges_mc:
            continue
        if records[i]["unreadable"]:
            continue  # nothing was answered: no judge call, it stays wrong
        for trial, text in enumerate(outputs):
            targets.append((i, trial))
            items.append(
                JudgeItem(item["question"], item["options"], item["answer"], text, item["problem_type"])
            )
    official = judge.settings.protocol == "official"
    for (i, trial), verdict in zip(targets, judge.verdicts(items), strict=True):
        record = records[i]
        record["judge_failures"] += verdict is None
        if official:
            # The paper's judged run: its verdict is the official score of every item. Ours keeps reading
            # multiple-choice letters robustly unless asked to judge them (judge_mc).
            if not record["official"]:
                record["official"] = [0.0] * record["trials"]
            record["official"][trial] = float(bool(verdict))
            if record["problem_type"] == MULTIPLE_CHOICE and not judge.settings.judge_mc:
                continue
        record["correct"][trial] = float(bool(verdict))
        record["judged"] = record["scored"] = True


class VideoKRScorer(SampleLevelComputation):
    """Scores a batch of responses (raw text: the reasoning-tag stripping lighteval may apply is ignored,
    the extractor handles reasoning itself, so results do not depend on that flag)."""

    def compute(
        self, responses: Sequence[ModelResponse], docs: Sequence[Doc], **kwargs: Any
    ) -> list[dict[str, Any]]:
        texts = [list(response.text) for response in responses]
        for doc, outputs in zip(docs, texts, strict=True):
            expected = (doc.specific or {}).get("trials", 1)
            if len(outputs) != expected:
                raise ValueError(
                    f"item {doc.id} of {doc.task_name}: {len(outputs)} outputs, expected {expected}"
                )
        return score_docs(docs, texts, active_judge())


# --------------------------------------------------------------------------------------------- summary


def bootstrap_interval(
    values: Sequence[float], *, iterations: int = BOOTSTRAP_ITERATIONS, seed: int = 0
) -> tuple[float, float, float]:
    """(low, high, stderr) of the mean by the percentile bootstrap; seeded, so reruns agree."""
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        return math.nan, math.nan, math.nan
    if data.size == 1:
        return float(data[0]), float(data[0]), 0.0
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(iterations, data.size))].mean(axis=1)
    alpha = (1.0 - CONFIDENCE) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return float(low), float(high), float(means.std(ddof=1))


def _add(out: dict[str, float], name: str, values: Sequence[float], *, stderr: bool = False) -> None:
    """``name`` (the mean), ``name_ci_low``, ``name_ci_high``, ``name_n`` (and ``name_stderr``)."""
    if not values:
        return
    low, high, se = bootstrap_interval(values)
    out[name] = float(np.mean(values))
    out[f"{name}_ci_low"], out[f"{name}_ci_high"] = low, high
    out[f"{name}_n"] = float(len(values))
    if stderr:
        out[f"{name}_stderr"] = se


def summarize(records: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    """Every number the results report for one task (all floats: lighteval averages them across tasks)."""
    records = list(records)
    scored = [r for r in records if r["scored"]]
    open_ended = [r for r in records if r["problem_type"] != MULTIPLE_CHOICE]
    out: dict[str, float] = {"n_items": float(len(records))}
    _add(out, "acc", [_mean(r["correct"]) for r in scored], stderr=True)
    official = [r for r in records if r.get("official")]
    _add(out, "acc_official", [_mean(r["official"]) for r in official], stderr=True)
    out["official_skipped"] = float(len(records) - len(official))
    _add(out, "mc_acc", [_mean(r["correct"]) for r in scored if r["problem_type"] == MULTIPLE_CHOICE])
    _add(out, "open_acc", [_mean(r["correct"]) for r in open_ended if r["judged"]])
    _add(out, "open_rouge", [_mean(r["rouge"]) for r in open_ended])
    out["judged"] = float(any(r["judged"] for r in records))
    out["judge_failures"] = float(sum(r["judge_failures"] for r in records))
    out["unreadable"] = float(sum(bool(r.get("unreadable")) for r in records))
    trials = max((r["trials"] for r in records), default=1)
    if trials > 1:
        _add(out, "answerable_rate", [float(all(c == 1.0 for c in r["correct"])) for r in scored])
    for label in BREAKDOWNS:
        groups: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
        for r in scored:
            groups[str(r.get(label) or "unknown")].append(r)
        for value in sorted(groups):
            _add(out, f"acc:{label}={value}", [_mean(r["correct"]) for r in groups[value]])
            counted = [r for r in groups[value] if r.get("official")]
            _add(out, f"acc_official:{label}={value}", [_mean(r["official"]) for r in counted])
            if trials > 1:
                name = f"answerable_rate:{label}={value}"
                _add(out, name, [float(all(c == 1.0 for c in r["correct"])) for r in groups[value]])
    labelled = [r for r in scored if r.get("needs")]
    if labelled:
        for value in sorted({str(r["needs"]) for r in labelled}):
            _add(out, f"acc:needs={value}", [_mean(r["correct"]) for r in labelled if r["needs"] == value])
        out |= truth_metrics(records, _probe(records, trials))
    return out


def _probe(records: Sequence[Mapping[str, Any]], trials: int) -> str | None:
    """The probe the records were answered under: their common ``probe`` label, else single-frame when
    items had several trials."""
    probes = {r.get("probe") for r in records} - {None}
    if len(probes) == 1:
        return str(probes.pop())
    return "single_frame" if not probes and trials > 1 else None


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if len(values) else math.nan


class VideoKRAggregate(CorpusLevelComputation):
    def compute_corpus(self, items: list[Mapping[str, Any]]) -> dict[str, float]:
        return summarize(items)


def videokr_metric() -> CorpusLevelMetric:
    """The metric object for a task config (a fresh one per task: lighteval mutates metric objects)."""
    return CorpusLevelMetric(
        metric_name=METRIC_NAME,
        higher_is_better=True,
        category=SamplingMethod.GENERATIVE,
        sample_level_fn=VideoKRScorer(),
        corpus_level_fn=VideoKRAggregate(),
        batched_compute=True,
    )
