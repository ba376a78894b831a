"""Asking a model to answer a VideoKR question from frames, and scoring the reply.

Self-consistency, the video-dependency filter, the single-frame probe and model-eligibility checks all
do the same thing with different frames: show frames, ask the question with the official evaluation
prompt, and score the reply with the evaluation scorer. Sharing it means every stage judges "right" the
way the benchmark will.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from videokr.data.prompts import build_prompt
from videokr.data.records import Record
from videokr.evaluation.answers import score_prediction
from videokr.pipeline.client import ModelClient, frame_parts, text_part
from videokr.pipeline.common import stable_rng

GENERATION_FPS = 0.2
MAX_GENERATION_FRAMES = 64
ANSWER_MAX_TOKENS = 2048


@dataclass(frozen=True)
class Frames:
    frames: np.ndarray  # T×H×W×3 uint8
    timestamps: np.ndarray  # seconds


@lru_cache(maxsize=32)
def clip_frames(
    path: str, fps: float = GENERATION_FPS, max_frames: int | None = MAX_GENERATION_FRAMES
) -> Frames:
    """Frames of a clip at `fps` (the paper's 0.2 fps for generation and verification), with timestamps.

    Cached per process: generation, verification and filtering look at the same frames of a clip.
    """
    from videokr.vision.decode import sample_frames

    sampled = sample_frames(path, fps=fps, max_frames=max_frames)
    return Frames(sampled.frames, np.asarray(sampled.timestamps, dtype=float))


def random_frames(path: str, count: int, *parts: object) -> Frames:
    """`count` distinct frames at random (seeded by `parts`, so a re-run picks the same), in time order."""
    from videokr.vision.decode import probe, sample_frames

    total = probe(path).num_frames
    rng = stable_rng(path, *parts)
    chosen = np.sort(rng.choice(total, size=min(count, total), replace=False))
    sampled = sample_frames(path, indices=chosen.tolist())
    return Frames(sampled.frames, np.asarray(sampled.timestamps, dtype=float))


def question_messages(
    record: Record, frames: Frames | None, *, timestamps: bool = True
) -> list[dict[str, Any]]:
    """One user turn: the frames (each with its time), then the official evaluation prompt."""
    parts = []
    if frames is not None:
        parts += frame_parts(frames.frames, frames.timestamps if timestamps else None)
    parts.append(text_part(build_prompt(record.question, record.options, record.problem_type, style="eval")))
    return [{"role": "user", "content": parts}]


@dataclass(frozen=True)
class Attempt:
    reply: str
    correct: bool
    predicted: str | None


def attempt(
    client: ModelClient,
    record: Record,
    frames: Frames | None,
    *,
    temperature: float = 0.0,
    seed: int | None = None,
    timestamps: bool = True,
) -> Attempt:
    """The model answers `record` from `frames`; scored as the benchmark scores it."""
    reply = client.chat(
        question_messages(record, frames, timestamps=timestamps),
        temperature=temperature,
        seed=seed,
        max_tokens=ANSWER_MAX_TOKENS,
    ).text
    scored = score_prediction(reply, record.answer, record.problem_type, record.options)
    return Attempt(reply, scored.correct, scored.extracted)
