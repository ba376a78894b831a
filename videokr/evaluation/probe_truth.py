"""The probes checked against known truth: does "answered from one frame" find the items one frame answers?

The paper's single-frame probe shows a model the question, the options and one random frame, three
times, and calls an item *single-frame answerable* when every trial is right (the metric's
``answerable_rate``). On real data nobody knows which items truly are. A corpus that records what each
item needs (the ``needs`` label: ``text``, ``single_frame`` or ``multi_frame``, see
`videokr.sample.learning`) lets the probe itself be scored:

* **flagged**: a scored item the probe's model got right in every trial (the paper's rule);
* **truly answerable** with the probe's input: for the single-frame probe, an item whose ``needs`` is
  ``single_frame`` *or* ``text`` (one frame plus the question is enough for both; a text item is
  answerable from the question alone, so also from question + frame); for the text-only probe, an item
  whose ``needs`` is ``text``;
* **precision** = flagged ∧ truly answerable / flagged: how often a flag is deserved (the share of the
  items the paper would filter out that really are shortcuts);
* **recall** = flagged ∧ truly answerable / truly answerable: how many of the real shortcuts the probe
  catches.

Items without a ``needs`` label, and items the metric did not score (open-ended without a judge), are
left out. Precision is undefined (absent, or nan in `ProbeTruth`) when nothing was flagged, recall when
no item is truly answerable.

Beside the two numbers, `probe_report` gives each probe's accuracy per ``needs`` class (full video, one
frame, text only): a model that learned the task should be right on ``multi_frame`` items with the video
only, on ``single_frame`` ones with the video or one frame, and on ``text`` ones always.

Input is the metric's per-item records (`videokr.evaluation.scoring.score_docs`), as lighteval stores
them in its details parquet (column ``metric``, key ``videokr``); `probe_truth_from_results` reads a
results folder of one model, `write_probe_truth` writes ``probe_truth.json`` beside the results.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "PROBE_FILE",
    "PROBE_TASKS",
    "TRULY_ANSWERABLE",
    "ProbeReport",
    "ProbeTruth",
    "accuracy_by_needs",
    "flagged",
    "format_probe_report",
    "probe_report",
    "probe_truth",
    "probe_truth_from_results",
    "read_details",
    "truth_metrics",
    "write_probe_truth",
]

NEEDS: tuple[str, ...] = ("text", "single_frame", "multi_frame")
#: Probe → the ``needs`` values whose items that probe's input is enough for.
TRULY_ANSWERABLE: dict[str, tuple[str, ...]] = {
    "single_frame": ("single_frame", "text"),
    "text_only": ("text",),
}
#: Probe → its lighteval task (the full-benchmark tasks only; per-source tasks would count items twice).
PROBE_TASKS: dict[str, str] = {
    "video": "videokr_eval",
    "single_frame": "videokr_eval_single_frame",
    "text_only": "videokr_eval_text_only",
}
PROBE_FILE = "probe_truth.json"


@dataclass(frozen=True)
class ProbeTruth:
    """One probe's flags against the truth labels; counts are items, the two rates are nan when undefined."""

    probe: str
    labelled: int  # scored items that carry a needs label
    flagged: int  # of those, right in every trial
    truly: int  # of those, truly answerable with the probe's input
    flagged_truly: int
    precision: float
    recall: float
    flagged_by_needs: dict[str, int] = field(default_factory=dict)
    labelled_by_needs: dict[str, int] = field(default_factory=dict)


@dataclass
class ProbeReport:
    """Accuracy per probe and ``needs`` class (mean over trials, with item counts) and the probes' truth."""

    accuracy: dict[str, dict[str, float]]  # probe → needs → accuracy
    items: dict[str, dict[str, int]]  # probe → needs → scored items
    truth: dict[str, ProbeTruth]  # probe → its flags scored (single_frame, text_only where present)

    def to_dict(self) -> dict[str, Any]:
        return {
            "accuracy": self.accuracy,
            "items": self.items,
            "truth": {probe: asdict(t) for probe, t in self.truth.items()},
        }


def _correct(record: Mapping[str, Any]) -> list[float]:
    return [float(c) for c in list(record.get("correct") if record.get("correct") is not None else [])]


def flagged(record: Mapping[str, Any]) -> bool:
    """The paper's rule: right in every trial (an item with no trial is not flagged)."""
    correct = _correct(record)
    return bool(correct) and all(c == 1.0 for c in correct)


def _labelled(records: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    out = []
    for record in records:
        if not record.get("scored"):
            continue
        needs = record.get("needs")
        if needs is None:
            continue
        if needs not in NEEDS:
            raise ValueError(f"item {record.get('id')}: needs {needs!r} is not one of {NEEDS}")
        out.append(record)
    return out


def probe_truth(records: Iterable[Mapping[str, Any]], probe: str = "single_frame") -> ProbeTruth | None:
    """Score ``probe``'s flags on ``records`` (one task's per-item records) against their ``needs``.

    None when no scored item carries a label (a dataset without ``needs`` gets no probe numbers).
    """
    if probe not in TRULY_ANSWERABLE:
        raise ValueError(f"no truth for probe {probe!r}; one of {sorted(TRULY_ANSWERABLE)}")
    labelled = _labelled(records)
    if not labelled:
        return None
    answerable = TRULY_ANSWERABLE[probe]
    flags = [flagged(r) for r in labelled]
    truly = [r["needs"] in answerable for r in labelled]
    n_flagged, n_truly = sum(flags), sum(truly)
    both = sum(f and t for f, t in zip(flags, truly, strict=True))
    by_needs = {n: sum(1 for r in labelled if r["needs"] == n) for n in NEEDS}
    flagged_by = {n: sum(f for r, f in zip(labelled, flags, strict=True) if r["needs"] == n) for n in NEEDS}
    return ProbeTruth(
        probe=probe,
        labelled=len(labelled),
        flagged=n_flagged,
        truly=n_truly,
        flagged_truly=both,
        precision=both / n_flagged if n_flagged else math.nan,
        recall=both / n_truly if n_truly else math.nan,
        flagged_by_needs={n: c for n, c in flagged_by.items() if by_needs[n]},
        labelled_by_needs={n: c for n, c in by_needs.items() if c},
    )


def truth_metrics(records: Sequence[Mapping[str, Any]], probe: str | None) -> dict[str, float]:
    """What `videokr.evaluation.scoring.summarize` adds for a probe task whose items carry ``needs``:
    ``probe_precision`` / ``probe_recall`` (each only where defined) and the counts behind them. Empty for
    the full-video task, an unknown probe, or records without labels."""
    if probe not in TRULY_ANSWERABLE:
        return {}
    truth = probe_truth(records, probe)
    if truth is None:
        return {}
    out = {
        "probe_labelled": float(truth.labelled),
        "probe_flagged": float(truth.flagged),
        "probe_truly": float(truth.truly),
        "probe_flagged_truly": float(truth.flagged_truly),
    }
    if truth.flagged:
        out["probe_precision"] = truth.precision
    if truth.truly:
        out["probe_recall"] = truth.recall
    return out


def accuracy_by_needs(records: Iterable[Mapping[str, Any]]) -> tuple[dict[str, float], dict[str, int]]:
    """Mean accuracy (over trials, then items) and item count per ``needs`` class of labelled items."""
    groups: dict[str, list[float]] = {}
    for record in _labelled(records):
        correct = _correct(record)
        if correct:
            groups.setdefault(record["needs"], []).append(sum(correct) / len(correct))
    accuracy = {n: sum(groups[n]) / len(groups[n]) for n in NEEDS if n in groups}
    return accuracy, {n: len(groups[n]) for n in NEEDS if n in groups}


def probe_report(records_by_probe: Mapping[str, Iterable[Mapping[str, Any]]]) -> ProbeReport | None:
    """Per-probe accuracy by ``needs`` class, and the single-frame and text-only probes' truth scores.

    ``records_by_probe`` maps a probe (``video``, ``single_frame``, ``text_only``) to its task's records.
    None when no record carries a label.
    """
    accuracy: dict[str, dict[str, float]] = {}
    items: dict[str, dict[str, int]] = {}
    truth: dict[str, ProbeTruth] = {}
    for probe, records in records_by_probe.items():
        records = list(records)
        acc, counts = accuracy_by_needs(records)
        if not counts:
            continue
        accuracy[probe], items[probe] = acc, counts
        if probe in TRULY_ANSWERABLE:
            found = probe_truth(records, probe)
            if found is not None:
                truth[probe] = found
    if not accuracy:
        return None
    return ProbeReport(accuracy, items, truth)


# ------------------------------------------------------------------------------------- results folders


def _plain(value: Any) -> Any:
    """A parquet value (numpy arrays, numpy scalars) as plain Python."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


def read_details(results_dir: str | Path) -> dict[str, list[dict[str, Any]]]:
    """The metric's per-item records of each probe task found under ``results_dir`` (one model's runs).

    lighteval writes ``details_<task>|0_<timestamp>.parquet``; where a task was run more than once, the
    newest file (by its timestamped name) wins.
    """
    import pandas as pd

    newest: dict[str, Path] = {}
    for probe, task in PROBE_TASKS.items():
        files = sorted(Path(results_dir).rglob(f"details_{task}|*.parquet"), key=lambda p: (p.name, str(p)))
        if files:
            newest[probe] = files[-1]
    out: dict[str, list[dict[str, Any]]] = {}
    for probe, path in newest.items():
        frame = pd.read_parquet(path, columns=["metric"])
        out[probe] = [_plain(metric["videokr"]) for metric in frame["metric"]]
    return out


def probe_truth_from_results(results_dir: str | Path) -> ProbeReport | None:
    """`probe_report` for the details under ``results_dir``; None when there are none or no labels."""
    return probe_report(read_details(results_dir))


def write_probe_truth(results_dir: str | Path, out: str | Path | None = None) -> Path | None:
    """Write ``probe_truth.json`` (default: into ``results_dir``) and return its path; None if no labels."""
    report = probe_truth_from_results(results_dir)
    if report is None:
        return None
    path = Path(out) if out is not None else Path(results_dir) / PROBE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_finite(report.to_dict()), indent=2, sort_keys=True) + "\n")
    return path


def _finite(value: Any) -> Any:
    """nan → None, so the file is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: _finite(v) for k, v in value.items()}
    return value


def _pct(value: float | None) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{100 * value:5.1f} %"


def format_probe_report(report: ProbeReport, title: str = "") -> str:
    """A short table: accuracy per probe × needs class, then each probe's precision and recall."""
    needs = [n for n in NEEDS if any(n in acc for acc in report.accuracy.values())]
    lines = [title] if title else []
    lines.append(f"  {'probe':<14}" + "".join(f"{n:>14}" for n in needs))
    for probe, acc in report.accuracy.items():
        cells = "".join(f"{_pct(acc.get(n)):>14}" for n in needs)
        lines.append(f"  {probe:<14}{cells}")
    for probe, truth in report.truth.items():
        lines.append(
            f"  {probe} probe: flagged {truth.flagged}/{truth.labelled}, precision {_pct(truth.precision)} "
            f"({truth.flagged_truly}/{truth.flagged}), recall {_pct(truth.recall)} "
            f"({truth.flagged_truly}/{truth.truly} truly answerable)"
        )
    return "\n".join(lines)
