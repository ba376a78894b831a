"""The SFT / RL split by video, and writing pipeline output in the official release layout.

Split: all examples of a video go to the same side, so no clip is seen in both SFT and RL (the paper's
85,934 + 59,625 disjoint videos). Videos are ordered by a hash of (seed, video) and assigned to SFT until
SFT holds its share of the *examples*; the order depends only on the seed and the video, so adding videos
later moves no existing video across the split.

Release layout: ``VideoKR-Train/VideoKR-COT-201K.jsonl`` and ``VideoKR-RL-114K.jsonl`` with clips under
``VideoKR-Train/videos_NNNN/`` (1,000 per folder), ``VideoKR-Eval/VideoKR_eval.jsonl`` with clips under
``VideoKR-Eval/videos/<dataset>/``, fields spelled as the official files spell them. `videokr build`
reads that folder as it reads the published release.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from videokr.atomic import atomic_path
from videokr.data.prompts import format_options
from videokr.data.records import Record, parse_row
from videokr.data.release import RELEASE_FILES
from videokr.pipeline.common import read_jsonl, write_jsonl

SFT_FRACTION = 201_156 / (201_156 + 114_381)  # the paper's share of examples in SFT
CLIPS_PER_FOLDER = 1000
TRAIN_DIR, EVAL_DIR = "VideoKR-Train", "VideoKR-Eval"


def split_by_video(
    records: Iterable[Record], *, sft_fraction: float = SFT_FRACTION, seed: int = 0
) -> tuple[list[Record], list[Record]]:
    """(sft, rl): every video's examples on one side; deterministic in `seed`; rows keep their input order."""
    by_video: dict[str, list[Record]] = defaultdict(list)
    ordered = list(records)
    for record in ordered:
        by_video[record.video].append(record)
    order = sorted(by_video, key=lambda v: hashlib.sha256(f"{seed}\x1f{v}".encode()).hexdigest())
    target = sft_fraction * len(ordered)
    sft_videos: set[str] = set()
    count = 0
    for video in order:
        if count >= target:
            break
        sft_videos.add(video)
        count += len(by_video[video])
    sft = [r for r in ordered if r.video in sft_videos]
    rl = [r for r in ordered if r.video not in sft_videos]
    return sft, rl


def split(
    examples: str | Path, out_dir: str | Path, *, sft_fraction: float = SFT_FRACTION, seed: int = 0
) -> dict[str, Any]:
    """Split validated examples into ``sft.jsonl`` and ``rl.jsonl`` in `out_dir`; returns the counts."""
    records = [parse_row(row, "sft") for row in read_jsonl(examples)]
    sft, rl = split_by_video(records, sft_fraction=sft_fraction, seed=seed)
    out_dir = Path(out_dir)
    write_jsonl(out_dir / "sft.jsonl", (r.to_dict() for r in sft))
    write_jsonl(out_dir / "rl.jsonl", (r.to_dict() for r in rl))
    return {
        "sft_examples": len(sft),
        "rl_examples": len(rl),
        "sft_videos": len({r.video for r in sft}),
        "rl_videos": len({r.video for r in rl}),
    }


# --------------------------------------------------------------------------------------------- writers


def _place(src: Path, dest: Path) -> None:
    """Hard-link when possible (no second copy of 145K clips), else copy; skip when already there."""
    if dest.exists() and dest.stat().st_size == src.stat().st_size:
        return
    with atomic_path(dest) as tmp:
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)


def _clip_names(paths: Iterable[str]) -> dict[str, str]:
    """A unique file name per source clip: its own name, with a hash suffix when two names collide."""
    names: dict[str, str] = {}
    taken: set[str] = set()
    for path in sorted(set(paths)):
        name = Path(path).name
        if name in taken:
            digest = hashlib.sha1(path.encode()).hexdigest()[:8]
            name = f"{Path(path).stem}-{digest}{Path(path).suffix}"
        taken.add(name)
        names[path] = name
    return names


def _common(record: Record) -> dict[str, Any]:
    return {
        "skill": record.skill,
        "subject": record.subject,
        "discipline": record.discipline,
        "knowledge_point": record.knowledge_point,
        "source_url": record.source_url,
        "creator": record.creator,
        "license": record.license,
        "attribution": record.attribution,
        "duration": record.duration_s,
    }


def _train_rows(records: list[Record], root: Path, kind: str, start: int) -> tuple[list[dict[str, Any]], int]:
    names = _clip_names(r.video for r in records)
    folder_of: dict[str, str] = {}
    for i, path in enumerate(sorted(names), start=start):
        folder_of[path] = f"videos_{i // CLIPS_PER_FOLDER:04d}/{names[path]}"
        _place(Path(path), root / folder_of[path])
    rows = []
    for record in records:
        base = {
            "question": record.question,
            "options": format_options(record.options),
            "problem_type": record.problem_type,
            "solution": f"<answer>{record.answer}</answer>",
        }
        if kind == "sft":
            row = {"id": record.id, "data_type": "video", "video_path": folder_of[record.video], **base}
            row["think"] = f"<think>{record.think}</think>"
        else:
            row = {"problem_id": record.id, "data_type": "video", **base, "videos": [folder_of[record.video]]}
        rows.append({**row, **_common(record)})
    return rows, start + len(names)


def write_training_release(sft: list[Record], rl: list[Record], out: str | Path) -> Path:
    """``out/VideoKR-Train/`` with both JSONL files and the clips they name; returns that folder."""
    if {r.video for r in sft} & {r.video for r in rl}:
        raise ValueError("a clip is in both SFT and RL; split with split_by_video first")
    root = Path(out) / TRAIN_DIR
    sft_rows, next_index = _train_rows(sft, root, "sft", 0)
    # RL clips continue the numbering so the two files never share a folder slot.
    next_index = -(-next_index // CLIPS_PER_FOLDER) * CLIPS_PER_FOLDER
    rl_rows, _ = _train_rows(rl, root, "rl", next_index)
    write_jsonl(root / RELEASE_FILES["sft"], sft_rows)
    write_jsonl(root / RELEASE_FILES["rl"], rl_rows)
    return root


def write_eval_release(
    records: list[Record], out: str | Path, *, clip_root: str | Path | None = None
) -> Path:
    """``out/VideoKR-Eval/VideoKR_eval.jsonl`` with clips under ``videos/<dataset>/``.

    Relative clip paths in `records` are resolved against `clip_root` (the folder of the probed file).
    """
    root = Path(out) / EVAL_DIR
    base = Path(clip_root) if clip_root is not None else Path()
    rows = []
    names = _clip_names(r.video for r in records)
    for record in records:
        rel = f"videos/{record.dataset or 'unknown'}/{names[record.video]}"
        _place(base / record.video, root / rel)
        row = {
            "id": record.id,
            "video_path": rel,
            "question": record.question,
            "options": list(record.options),
            "problem_type": record.problem_type,
            "solution": record.answer,
            "dataset": record.dataset,
            "origin": record.origin,
            **_common(record),
        }
        rows.append(row)
    write_jsonl(root / RELEASE_FILES["eval"], rows)
    return root
