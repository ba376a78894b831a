"""Screening downloaded clips before any example is generated: visual relevance, then safety.

The metadata judge (`collect.judge_relevance`) only reads titles and descriptions; many lecture videos
promise a demonstration and show slides. The paper therefore looks at the pixels twice after download:
a visual relevance judge (does the footage show the knowledge point?) and a safety check on four random
frames. Both drop with a reason, so the stage report says why each clip left, and both are ordinary
resumable stages with cached model calls.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from videokr.errors import VideoDecodeError
from videokr.pipeline.ask import Frames, random_frames
from videokr.pipeline.client import ModelClient, frame_parts, text_part
from videokr.pipeline.common import Outcome, StageReport, read_jsonl, run_stage

VISUAL_RELEVANCE_FPS = 0.2
VISUAL_RELEVANCE_MIN_FRAMES = 4  # a short clip still gets a few looks, not one frame
VISUAL_RELEVANCE_MAX_FRAMES = 16
SAFETY_FRAMES = 4

VISUAL_RELEVANCE_PROMPT = (
    'The frames above come from a video found for the knowledge point "{knowledge_point}" ({subject}).\n'
    "Does the footage itself show this knowledge point at work (an experiment, demonstration, procedure, "
    "phenomenon or real-world scene), so that questions about it would need to watch the video? Slides or "
    "a talking head alone do not count.\n"
    'Reply with JSON only: {{"relevant": true|false, "reason": "..."}}'
)
SAFETY_PROMPT = (
    "The frames above are sampled at random from a video that may be published in a research dataset. "
    "Do they contain anything unsafe to publish: sexual content, graphic violence or gore, hateful "
    "symbols, or personal information such as faces of private individuals with names, documents or "
    "addresses?\n"
    'Reply with JSON only: {{"safe": true|false, "reason": "..."}}'
)


def _check_flag(key: str):
    def check(value: Any) -> None:
        if not isinstance(value, dict) or not isinstance(value.get(key), bool):
            raise ValueError(f'expected {{"{key}": true|false}}')

    return check


def _ask(client: ModelClient, frames: Any, prompt: str, key: str) -> dict[str, Any]:
    content = [*frame_parts(frames.frames, frames.timestamps), text_part(prompt)]
    return client.chat_json([{"role": "user", "content": content}], check=_check_flag(key), max_tokens=256)


def _overview_frames(path: str) -> Frames:
    from videokr.vision.decode import sample_frames

    sampled = sample_frames(
        path,
        fps=VISUAL_RELEVANCE_FPS,
        max_frames=VISUAL_RELEVANCE_MAX_FRAMES,
        min_frames=VISUAL_RELEVANCE_MIN_FRAMES,
    )
    return Frames(sampled.frames, np.asarray(sampled.timestamps, dtype=float))


def _clip_path(row: dict[str, Any]) -> str | None:
    path = row.get("path")
    return str(path) if path else None


def visual_relevance_unit(client: ModelClient, row: dict[str, Any]) -> Outcome:
    """One candidate: kept when its overview frames show its knowledge point, else dropped with why."""
    path = _clip_path(row)
    if path is None or not row.get("knowledge_point"):
        return Outcome(dropped=[(row["id"], "incomplete: needs a downloaded `path` and a `knowledge_point`")])
    try:
        frames = _overview_frames(path)
    except VideoDecodeError as exc:
        return Outcome(dropped=[(row["id"], f"undecodable: {exc}")])
    prompt = VISUAL_RELEVANCE_PROMPT.format(
        knowledge_point=row["knowledge_point"], subject=row.get("subject") or "unknown subject"
    )
    verdict = _ask(client, frames, prompt, "relevant")
    if not verdict["relevant"]:
        return Outcome(dropped=[(row["id"], f"visually_irrelevant: {verdict.get('reason', '')}")])
    return Outcome(kept=[row])


def judge_visual_relevance(
    client: ModelClient, candidates: str | Path, out: str | Path, *, workers: int = 4, progress: bool = True
) -> StageReport:
    """Keep downloaded candidates whose frames (0.2 fps, 4 to 16 of them) show their knowledge point."""
    return run_stage(
        "visual-relevance",
        read_jsonl(candidates),
        lambda r: r["id"],
        lambda row: visual_relevance_unit(client, row),
        out,
        clients=[client],
        workers=workers,
        progress=progress,
    )


def safety_unit(client: ModelClient, row: dict[str, Any]) -> Outcome:
    """One candidate: kept when the model finds its four random frames (seeded by clip id) safe."""
    path = _clip_path(row)
    if path is None:
        return Outcome(dropped=[(row["id"], "incomplete: needs a downloaded `path`")])
    try:
        frames = random_frames(path, SAFETY_FRAMES, row["id"], "safety")
    except VideoDecodeError as exc:
        return Outcome(dropped=[(row["id"], f"undecodable: {exc}")])
    verdict = _ask(client, frames, SAFETY_PROMPT, "safe")
    if not verdict["safe"]:
        return Outcome(dropped=[(row["id"], f"unsafe: {verdict.get('reason', '')}")])
    return Outcome(kept=[row])


def check_safety(
    client: ModelClient, candidates: str | Path, out: str | Path, *, workers: int = 4, progress: bool = True
) -> StageReport:
    """Keep candidates whose four random frames (seeded by clip id, so re-runs agree) the model finds safe."""
    return run_stage(
        "safety",
        read_jsonl(candidates),
        lambda r: r["id"],
        lambda row: safety_unit(client, row),
        out,
        clients=[client],
        workers=workers,
        progress=progress,
    )
