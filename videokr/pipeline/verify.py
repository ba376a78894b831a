"""Self-consistency: an example survives only if the model, shown the question and the frames but not
the answer, arrives at the same answer; its worked solution then becomes the example's rationale.

This catches questions whose stated answer does not follow from the video (a hallucinated detail, a
wrong option marked correct), and it yields a rationale that reasons from the frames to the answer,
which is what SFT trains on, rather than a post-hoc justification written knowing the answer.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from videokr.data.records import parse_row
from videokr.pipeline.ask import attempt, clip_frames
from videokr.pipeline.client import ModelClient
from videokr.pipeline.common import Outcome, StageReport, read_jsonl, run_stage

_THINK = re.compile(r"<think>(.*?)</think>", re.DOTALL | re.IGNORECASE)


def rationale(reply: str) -> str | None:
    """The reasoning in a reply: the ``<think>`` block (the official format), else None."""
    match = _THINK.search(reply)
    text = match.group(1).strip() if match else ""
    return text or None


def verify_unit(client: ModelClient, row: dict[str, Any]) -> Outcome:
    """One example: kept (with ``think`` set to the re-derivation) when the model re-derives its answer."""
    record = parse_row(row, "rl")
    result = attempt(client, record, clip_frames(record.video))
    if not result.correct:
        got = result.predicted if result.predicted is not None else "no answer"
        return Outcome(dropped=[(record.id, f"inconsistent: re-derived {got!r}, expected {record.answer!r}")])
    think = rationale(result.reply)
    if think is None:
        return Outcome(dropped=[(record.id, "no_rationale: the re-derivation has no <think> block")])
    record.think = think
    return Outcome(kept=[record.to_dict()])


def verify(
    client: ModelClient, examples: str | Path, out: str | Path, *, workers: int = 4, progress: bool = True
) -> StageReport:
    """Keep examples the model re-derives; kept rows gain ``think`` (its re-derivation)."""
    return run_stage(
        "verify",
        read_jsonl(examples),
        lambda r: r["id"],
        lambda row: verify_unit(client, row),
        out,
        clients=[client],
        workers=workers,
        progress=progress,
    )
