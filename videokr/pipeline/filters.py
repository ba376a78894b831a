"""Two quality filters on verified examples.

**Video dependency.** A question two different models both answer from the text plus 4 random frames
does not need the video (it is answerable from knowledge, the options, or a glance); it is dropped. One
model alone is not enough to drop: a single strong model may know the answer by chance or by prior.

**Rationale validation.** An independent model reads the rationale against the frames and the answer and
says whether every step is supported; a rationale with an unsupported step would teach the SFT model to
hallucinate, so the example is dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from videokr.data.prompts import format_options
from videokr.data.records import parse_row
from videokr.pipeline.ask import attempt, clip_frames, random_frames
from videokr.pipeline.client import ModelClient, frame_parts, text_part
from videokr.pipeline.common import Outcome, StageReport, read_jsonl, run_stage

DEPENDENCY_FRAMES = 4


def video_dependency(
    clients: Sequence[ModelClient],
    examples: str | Path,
    out: str | Path,
    *,
    frames: int = DEPENDENCY_FRAMES,
    workers: int = 4,
    progress: bool = True,
) -> StageReport:
    """Drop examples that every one of `clients` (the paper uses two) answers right from `frames` frames."""
    if len(clients) < 2:
        raise ValueError("the video-dependency filter needs at least two models")
    rows = read_jsonl(examples)

    def work(row: dict[str, Any]) -> Outcome:
        record = parse_row(row, "rl")
        shown = random_frames(record.video, frames, record.id, "video-dependency")
        results = [attempt(client, record, shown) for client in clients]
        if all(r.correct for r in results):
            names = ", ".join(c.model for c in clients)
            return Outcome(
                dropped=[(record.id, f"video_independent: answered from {frames} frames by {names}")]
            )
        return Outcome(kept=[row])

    return run_stage(
        "video-dependency",
        rows,
        lambda r: r["id"],
        work,
        out,
        clients=clients,
        workers=workers,
        progress=progress,
    )


RATIONALE_PROMPT = (
    "Question: {question}\n{options}Correct answer: {answer}\n\nProposed reasoning:\n{think}\n\n"
    "Check the reasoning step by step against the video frames above and established knowledge. Is every "
    "step supported (no invented visual detail, no wrong fact, no leap)?\n"
    'Reply with JSON only: {{"supported": true|false, "unsupported_step": "..."}}'
)


def _check_verdict(value: Any) -> None:
    if not isinstance(value, dict) or not isinstance(value.get("supported"), bool):
        raise ValueError('expected {"supported": true|false}')


def validate_rationales(
    client: ModelClient, examples: str | Path, out: str | Path, *, workers: int = 4, progress: bool = True
) -> StageReport:
    """Keep examples whose rationale (``think``) the checking model finds supported at every step."""
    rows = read_jsonl(examples)

    def work(row: dict[str, Any]) -> Outcome:
        record = parse_row(row, "sft")
        frames = clip_frames(record.video)
        options = "".join(line + "\n" for line in format_options(record.options))
        prompt = RATIONALE_PROMPT.format(
            question=record.question, options=options, answer=record.answer, think=record.think
        )
        content = [*frame_parts(frames.frames, frames.timestamps), text_part(prompt)]
        verdict = client.chat_json(
            [{"role": "user", "content": content}], check=_check_verdict, max_tokens=512
        )
        if not verdict["supported"]:
            return Outcome(
                dropped=[(record.id, f"unsupported_rationale: {verdict.get('unsupported_step', '')}")]
            )
        return Outcome(kept=[row])

    return run_stage(
        "rationale", rows, lambda r: r["id"], work, out, clients=[client], workers=workers, progress=progress
    )
