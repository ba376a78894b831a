"""Which models may serve which pipeline step: error rate ≤ 3 % on expert-labelled inputs of that step.

A cheap model that is wrong 10 % of the time as a relevance judge silently drops or lets in a tenth of
the data; the paper therefore admits a model to a step only after it agrees with experts on 100 labelled
inputs of that step, with at most 3 % errors. The labelled inputs are JSONL rows, one per input, with the
expert's label; a step's *decision function* turns (client, row) into the model's label, and the two are
compared. The result lists every disagreement by id so the choice can be audited.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from videokr.data.records import parse_row
from videokr.pipeline.ask import attempt, clip_frames
from videokr.pipeline.client import ModelClient
from videokr.pipeline.common import read_jsonl
from videokr.pipeline.licenses import evaluate_license

MAX_ERROR_RATE = 0.03
RECOMMENDED_ITEMS = 100

Decision = Callable[[ModelClient, Mapping[str, Any]], Any]


def answer_step(client: ModelClient, row: Mapping[str, Any]) -> bool:
    """Self-consistency / dependency steps: does the model answer the item correctly from its frames?"""
    record = parse_row(row, "rl")
    return attempt(client, record, clip_frames(record.video)).correct


def relevance_step(client: ModelClient, row: Mapping[str, Any]) -> bool:
    from videokr.pipeline.collect import RELEVANCE_PROMPT, _check_relevance

    prompt = RELEVANCE_PROMPT.format(
        knowledge_point=row["knowledge_point"],
        subject=row.get("subject", ""),
        title=row.get("title", ""),
        description=row.get("description", ""),
    )
    return bool(client.chat_json([{"role": "user", "content": prompt}], check=_check_relevance)["relevant"])


STEPS: dict[str, Decision] = {"answer": answer_step, "relevance": relevance_step}


@dataclass
class Eligibility:
    step: str
    model: str
    items: int
    errors: list[str] = field(default_factory=list)
    max_error_rate: float = MAX_ERROR_RATE

    @property
    def error_rate(self) -> float:
        return len(self.errors) / self.items if self.items else 1.0

    @property
    def eligible(self) -> bool:
        return self.items > 0 and self.error_rate <= self.max_error_rate

    def summary(self) -> str:
        verdict = "eligible" if self.eligible else "NOT eligible"
        warn = (
            f" (fewer than the recommended {RECOMMENDED_ITEMS} items)"
            if self.items < RECOMMENDED_ITEMS
            else ""
        )
        return (
            f"{self.model} for {self.step}: {len(self.errors)}/{self.items} errors = {self.error_rate:.1%} "
            f"(limit {self.max_error_rate:.0%}) → {verdict}{warn}; disagreements: "
            f"{', '.join(self.errors[:20])}"
        )


def assess(
    client: ModelClient,
    step: str | Decision,
    labelled: str | Path | list[Mapping[str, Any]],
    *,
    label_key: str = "label",
    max_error_rate: float = MAX_ERROR_RATE,
) -> Eligibility:
    """Run `step` on every labelled row and compare with the expert label (``label_key``)."""
    decide = STEPS[step] if isinstance(step, str) else step
    rows = read_jsonl(labelled) if isinstance(labelled, str | Path) else list(labelled)
    name = step if isinstance(step, str) else getattr(step, "__name__", "custom")
    result = Eligibility(name, client.model, len(rows), max_error_rate=max_error_rate)
    for row in rows:
        if decide(client, row) != row[label_key]:
            result.errors.append(str(row.get("id")))
    return result


def license_policy_errors(labelled: list[Mapping[str, Any]]) -> list[str]:
    """The rule-based licence step held to the same standard: ids where it disagrees with the experts."""
    return [str(r.get("id")) for r in labelled if evaluate_license(r.get("license")).accepted != r["label"]]
