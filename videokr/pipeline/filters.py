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


def answered_without_video(client: ModelClient, row: dict[str, Any], frames: int = DEPENDENCY_FRAMES) -> bool:
    """Whether `client` answers the example right from the text plus `frames` random frames (seeded by
    the example, so every model and every re-run sees the same frames)."""
    record = parse_row(row, "rl")
    shown = random_frames(record.video, frames, record.id, "video-dependency")
    return attempt(client, record, shown).correct


def dependency_verdict(row: dict[str, Any], answered: Sequence[tuple[str, bool]], frames: int) -> Outcome:
    """Drop the example when every model (name, answered right) got it right without the video."""
    if all(right for _, right in answered):
        names = ", ".join(name for name, _ in answered)
        return Outcome(dropped=[(row["id"], f"video_independent: answered from {frames} frames by {names}")])
    return Outcome(kept=[row])


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

    def work(row: dict[str, Any]) -> Outcome:
        answered = [(c.model, answered_without_video(c, row, frames)) for c in clients]
        return dependency_verdict(row, answered, frames)

    return run_stage(
        "video-dependency",
        read_jsonl(examples),
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


def rationale_unit(client: ModelClient, row: dict[str, Any]) -> Outcome:
    """One example: kept when the checking model finds every step of its rationale supported."""
    record = parse_row(row, "sft")
    frames = clip_frames(record.video)
    options = "".join(line + "\n" for line in format_options(record.options))
    prompt = RATIONALE_PROMPT.format(
        question=record.question, options=options, answer=record.answer, think=record.think
    )
    content = [*frame_parts(frames.frames, frames.timestamps), text_part(prompt)]
    verdict = client.chat_json([{"role": "user", "content": content}], check=_check_verdict, max_tokens=512)
    if not verdict["supported"]:
        return Outcome(dropped=[(record.id, f"unsupported_rationale: {verdict.get('unsupported_step', '')}")])
    return Outcome(kept=[row])


def validate_rationales(
    client: ModelClient, examples: str | Path, out: str | Path, *, workers: int = 4, progress: bool = True
) -> StageReport:
    """Keep examples whose rationale (``think``) the checking model finds supported at every step."""
    return run_stage(
        "rationale",
        read_jsonl(examples),
        lambda r: r["id"],
        lambda row: rationale_unit(client, row),
        out,
        clients=[client],
        workers=workers,
        progress=progress,
    )
