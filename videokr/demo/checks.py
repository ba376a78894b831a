"""The relations the demo must show, checked on its own results: learning, and probes that measure.

On the learning corpus (`videokr.sample.learning`) every eval item records what answering it needs, so
the demo can check the claims a user would otherwise take on trust:

``sft_beats_chance``
    SFT, full video, ≥ 2.5 × chance (every item has four options: chance is 25 %).
``sft_beats_base``
    SFT, full video, ≥ 30 points above the untrained base model.
``video_beats_single_frame``
    On the items that need several frames, SFT with the full video ≥ 20 points above SFT shown one
    frame: the single-frame probe loses exactly what only the sequence carries.
``text_only_at_chance``
    SFT shown no visual, on the items that need the clip, within the 95 % interval of chance: nothing
    in the text gives the answer away (letters and values are balanced per family).
``grpo_not_below_sft``
    GRPO, full video, not significantly below SFT: the drop, if any, within 1.96 standard errors of a
    paired difference (McNemar's normal approximation on the items the two models disagree on).
``reward_rising``
    GRPO's mean reward over the last third of its logged steps above the first third's.
``probe_precision`` / ``probe_recall``
    The single-frame probe's flags (an item right in all three one-frame trials) against the truth
    labels, on SFT: ≥ 0.8 each (`videokr.evaluation.probe_truth`).

Accuracies are the official scorer's reading where it scored the item, as on the leaderboard's headline,
else ours. Input is each model's results folder (the lighteval details, `probe_truth.read_details`) and
the GRPO run's ``trainer_state.json``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from videokr.demo.curves import log_series
from videokr.evaluation.probe_truth import PROBE_TASKS, probe_truth, read_details

__all__ = ["CHANCE", "RELATIONS", "Relation", "check_relations", "format_relations"]

CHANCE = 0.25  # four options per item
RELATIONS: tuple[str, ...] = (
    "sft_beats_chance",
    "sft_beats_base",
    "video_beats_single_frame",
    "text_only_at_chance",
    "grpo_not_below_sft",
    "reward_rising",
    "probe_precision",
    "probe_recall",
)
VISUAL_NEEDS = ("single_frame", "multi_frame")


@dataclass(frozen=True)
class Relation:
    """One checked claim: its name, what it says, what was measured, and whether it holds."""

    name: str
    claim: str
    measured: str
    holds: bool

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "claim": self.claim, "measured": self.measured, "holds": self.holds}


def _item_score(record: Mapping[str, Any]) -> float:
    trials = record.get("official") or record["correct"]
    return float(sum(trials) / len(trials))


def _scored(
    records: Sequence[Mapping[str, Any]], needs: Sequence[str] | None = None
) -> list[Mapping[str, Any]]:
    return [r for r in records if r["scored"] and (needs is None or r.get("needs") in needs)]


def _accuracy(records: Sequence[Mapping[str, Any]]) -> float:
    return sum(_item_score(r) for r in records) / len(records) if records else math.nan


def _pct(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{100 * value:.1f} %"


def _paired_drop_allowed(sft: Sequence[Mapping[str, Any]], grpo: Sequence[Mapping[str, Any]]) -> float:
    """1.96 standard errors of the paired accuracy difference (McNemar): what noise alone can take away."""
    by_id = {r["id"]: _item_score(r) for r in sft}
    pairs = [(by_id[r["id"]], _item_score(r)) for r in grpo if r["id"] in by_id]
    if not pairs:
        return 0.0
    discordant = sum(abs(a - b) for a, b in pairs)
    return 1.96 * math.sqrt(discordant) / len(pairs)


def check_relations(
    results: Mapping[str, Path], trainer_state: Path | None, *, only: Sequence[str] | None = None
) -> list[Relation]:
    """Check the relations (all, or those named in ``only``) on the results folders of ``base``, ``sft``
    and ``grpo`` and on GRPO's ``trainer_state.json``."""
    details = {name: read_details(folder) for name, folder in results.items()}
    missing = [
        f"{model}/{probe}"
        for model in ("base", "sft", "grpo")
        for probe in PROBE_TASKS
        if probe not in details.get(model, {})
    ]
    if missing:
        raise FileNotFoundError(f"no evaluation details for {', '.join(missing)}")
    video = {name: _scored(found["video"]) for name, found in details.items()}
    sft = details["sft"]
    acc = {name: _accuracy(records) for name, records in video.items()}
    out: list[Relation] = []

    def add(name: str, claim: str, measured: str, holds: bool) -> None:
        if only is None or name in only:
            out.append(Relation(name, claim, measured, holds))

    add(
        "sft_beats_chance",
        f"SFT full-video accuracy ≥ 2.5 × chance ({_pct(2.5 * CHANCE)})",
        f"SFT {_pct(acc['sft'])}",
        acc["sft"] >= 2.5 * CHANCE,
    )
    add(
        "sft_beats_base",
        "SFT full-video accuracy ≥ base + 30 points",
        f"SFT {_pct(acc['sft'])}, base {_pct(acc['base'])}",
        acc["sft"] - acc["base"] >= 0.30,
    )
    multi_video = _accuracy(_scored(sft["video"], ["multi_frame"]))
    multi_frame = _accuracy(_scored(sft["single_frame"], ["multi_frame"]))
    add(
        "video_beats_single_frame",
        "on items that need several frames: SFT full video ≥ SFT single frame + 20 points",
        f"full video {_pct(multi_video)}, single frame {_pct(multi_frame)}",
        multi_video - multi_frame >= 0.20,
    )
    blind = _scored(sft["text_only"], VISUAL_NEEDS)
    blind_acc = _accuracy(blind)
    half_width = 1.96 * math.sqrt(CHANCE * (1 - CHANCE) / len(blind)) if blind else math.nan
    add(
        "text_only_at_chance",
        "on items that need the clip: SFT text only within the 95 % interval of chance",
        f"text only {_pct(blind_acc)} (chance {_pct(CHANCE)} ± {_pct(half_width)}, {len(blind)} items)",
        abs(blind_acc - CHANCE) <= half_width,
    )
    allowed = _paired_drop_allowed(video["sft"], video["grpo"])
    add(
        "grpo_not_below_sft",
        "GRPO full video not significantly below SFT (drop ≤ 1.96 paired standard errors)",
        f"GRPO {_pct(acc['grpo'])}, SFT {_pct(acc['sft'])}, noise allows {_pct(allowed)}",
        acc["sft"] - acc["grpo"] <= allowed,
    )
    rewards = (
        [r for _, r in log_series(trainer_state, "reward")]
        if trainer_state and trainer_state.is_file()
        else []
    )
    third = len(rewards) // 3
    first = sum(rewards[:third]) / third if third else math.nan
    last = sum(rewards[-third:]) / third if third else math.nan
    add(
        "reward_rising",
        "GRPO mean reward: last third of the logged steps above the first third",
        f"first third {first:.3f}, last third {last:.3f} ({len(rewards)} steps)",
        bool(third) and last > first,
    )
    truth = probe_truth(sft["single_frame"], "single_frame")
    precision = truth.precision if truth else math.nan
    recall = truth.recall if truth else math.nan
    counts = f" ({truth.flagged_truly}/{truth.flagged} flagged, {truth.truly} truly)" if truth else ""
    add(
        "probe_precision",
        "single-frame probe (SFT): precision ≥ 0.8 against the truth labels",
        f"precision {precision:.2f}{counts}",
        precision >= 0.8,
    )
    add(
        "probe_recall",
        "single-frame probe (SFT): recall ≥ 0.8 against the truth labels",
        f"recall {recall:.2f}{counts}",
        recall >= 0.8,
    )
    return out


def format_relations(relations: Sequence[Relation]) -> str:
    """One line per relation: holds or FAILS, the claim, what was measured."""
    return "\n".join(f"  {'holds' if r.holds else 'FAILS'}  {r.claim}: {r.measured}" for r in relations)
