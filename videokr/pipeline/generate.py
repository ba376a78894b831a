"""Question generation: 2 examples per skill per video (6 per video), as in the paper.

The generator sees the clip as frames at 0.2 fps, each labelled with its time, so questions can refer to
moments ("after 40 s …"). Three expert seed examples of the same discipline and skill show the style and
difficulty (random, but seeded by the video, so a re-run shows the same seeds and hits the cache). For
KnowVid and KnowVidR the knowledge point the video was found for is given: those skills are about
applying that knowledge to what is seen. Every generated example must parse as a release row
(`records.parse_row`): a malformed option list or an answer that is not an option is dropped with the
parser's reason, never repaired by guessing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from videokr.data.records import LETTERS, SKILLS, Record, parse_row
from videokr.errors import RecordError
from videokr.pipeline.ask import clip_frames
from videokr.pipeline.client import ModelClient, frame_parts, text_part
from videokr.pipeline.common import Outcome, StageReport, read_jsonl, run_stage, stable_rng

EXAMPLES_PER_SKILL = 2
SEEDS_PER_PROMPT = 3
SKILL_DEFINITIONS = {
    "VidR": "basic video reasoning: temporal order, counting, motion, cause and effect, state changes that "
    "can be answered from the frames alone, without specialist knowledge",
    "KnowVid": "knowledge-enhanced video perception: recognising and naming what is shown (an apparatus, a "
    "structure, a phenomenon, a procedure step) using the subject knowledge point",
    "KnowVidR": "knowledge-intensive video reasoning: combining what is shown with the subject knowledge "
    "point in a multi-step inference or calculation",
}
PROVENANCE = ("source_url", "creator", "license", "attribution", "duration_s")


def load_seeds(path: str | Path) -> list[Record]:
    """Expert seed examples: any release rows (SFT, RL or pipeline output) that carry a skill."""
    records = []
    for number, row in enumerate(read_jsonl(path), start=1):
        record = parse_row(row, "rl", file=str(path), line=number)
        if record.skill is not None:
            records.append(record)
    return records


def pick_seeds(seeds: Sequence[Record], discipline: str | None, skill: str, *key: object) -> list[Record]:
    """3 seeds of the same discipline and skill (topped up from other disciplines if there are fewer)."""
    same = [s for s in seeds if s.skill == skill and s.discipline == discipline]
    other = [s for s in seeds if s.skill == skill and s.discipline != discipline]
    rng = stable_rng("seeds", skill, *key)
    picked = [same[i] for i in rng.permutation(len(same))[:SEEDS_PER_PROMPT]]
    if len(picked) < SEEDS_PER_PROMPT:
        picked += [other[i] for i in rng.permutation(len(other))[: SEEDS_PER_PROMPT - len(picked)]]
    return picked


def _seed_text(seed: Record) -> str:
    example: dict[str, Any] = {"question": seed.question, "problem_type": seed.problem_type}
    if seed.options:
        example["options"] = seed.options
    example["answer"] = seed.answer
    return json.dumps(example, ensure_ascii=False)


def generation_prompt(video: dict[str, Any], skill: str, seeds: Sequence[Record]) -> str:
    lines = [
        f"You write exam questions about the video shown above as frames sampled every "
        f"{1 / 0.2:.0f} s, each labelled with its time.",
        f"Subject: {video.get('subject')} ({video.get('discipline')}).",
        f"Skill to test: {skill}, {SKILL_DEFINITIONS[skill]}.",
    ]
    if skill != "VidR" and video.get("knowledge_point"):
        lines.append(f"Knowledge point the question must use: {video['knowledge_point']}.")
    lines.append("Examples of this skill written by experts (style and difficulty only):")
    lines += [f"- {_seed_text(s)}" for s in seeds]
    lines.append(
        f"Write {EXAMPLES_PER_SKILL} new questions that can only be answered by watching THIS video. Use "
        f'"problem_type": "multiple choice" (4 to {len(LETTERS)} options, "answer" is the letter) or '
        '"open-ended" ("answer" is a short phrase or number). '
        "Reply with JSON only: "
        '{"examples": [{"question": "...", "problem_type": "...", "options": ["...", "..."], '
        '"answer": "..."}]}'
    )
    return "\n".join(lines)


def _check_examples(value: Any) -> None:
    examples = value.get("examples") if isinstance(value, dict) else None
    if not isinstance(examples, list) or not examples or not all(isinstance(e, dict) for e in examples):
        raise ValueError('expected {"examples": [objects]}')


def generate_for_video(client: ModelClient, video: dict[str, Any], seeds: Sequence[Record]) -> Outcome:
    """Up to 6 validated examples for one video; each invalid one is dropped with the parser's reason."""
    frames = clip_frames(video["path"])
    outcome = Outcome()
    for skill in SKILLS:
        chosen = pick_seeds(seeds, video.get("discipline"), skill, video["id"])
        content = [
            *frame_parts(frames.frames, frames.timestamps),
            text_part(generation_prompt(video, skill, chosen)),
        ]
        reply = client.chat_json(
            [{"role": "user", "content": content}], check=_check_examples, max_tokens=2048
        )
        for k, example in enumerate(reply["examples"][:EXAMPLES_PER_SKILL]):
            row_id = f"{video['id']}-{skill}-{k}"
            raw = {
                **{key: example.get(key) for key in ("question", "options", "answer", "problem_type")},
                "id": row_id,
                "video": video["path"],
                "skill": skill,
                "subject": video.get("subject"),
                "discipline": video.get("discipline"),
                "knowledge_point": video.get("knowledge_point") if skill != "VidR" else None,
                **{key: video.get(key) for key in PROVENANCE},
            }
            try:
                record = parse_row(raw, "rl")
            except RecordError as exc:
                outcome.dropped.append((row_id, f"invalid_example: {exc.field}: {exc.reason}"))
                continue
            outcome.kept.append(record.to_dict())
    return outcome


def generate(
    client: ModelClient,
    videos: str | Path,
    seeds: str | Path,
    out: str | Path,
    *,
    workers: int = 4,
    progress: bool = True,
) -> StageReport:
    """Generate examples for every video row (``id``, ``path``, ``subject``, ``discipline``, …)."""
    seed_records = load_seeds(seeds)
    rows = read_jsonl(videos)
    return run_stage(
        "generate",
        rows,
        lambda v: v["id"],
        lambda v: generate_for_video(client, v, seed_records),
        out,
        clients=[client],
        workers=workers,
        progress=progress,
    )
