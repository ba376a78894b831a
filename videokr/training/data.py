"""Dataset rows → trainer rows: the official prompt text, the assistant target, and the ablation filters.

Rows keep every original column (``remove_unused_columns=False`` in the configs): the collator needs
``id`` and ``video``, and GRPO passes ``answer``, ``problem_type`` and ``options`` to the reward functions.
The ``video`` column is cast to ``datasets.Video(decode=False)`` so a row carries the clip's path (or
bytes) and the collator decides how to sample it, instead of ``datasets`` opening a decoder per row.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from videokr.data import prompts
from videokr.data.local import load_local
from videokr.data.records import SKILLS
from videokr.vision import chat_messages

if TYPE_CHECKING:
    import datasets

__all__ = ["grpo_prompt", "load_video_dataset", "to_grpo_rows", "to_sft_rows"]


def load_video_dataset(
    source: str,
    split: str = "train",
    *,
    skills: Sequence[str] | None = None,
    max_samples: int | None = None,
) -> datasets.Dataset:
    """Load a VideoKR split from a Hub id or a local built folder, clip column undecoded.

    ``skills`` keeps only those skills (the paper's per-skill ablations; rows of unknown skill are then
    dropped, since they cannot be shown to belong); ``max_samples`` keeps the first N rows after that.
    """
    import datasets

    unknown = sorted(set(skills or ()) - set(SKILLS))
    if unknown:
        raise ValueError(f"unknown skills {unknown}; choose from {', '.join(SKILLS)}")
    path = os.path.expanduser(source)
    if os.path.isdir(path):
        dataset = _load_local_folder(path, split)
    else:
        dataset = datasets.load_dataset(source, split=split)
        dataset = dataset.cast_column("video", datasets.Video(decode=False))
    if skills:
        wanted = set(skills)
        dataset = dataset.filter(lambda skill: skill in wanted, input_columns="skill")
    if max_samples is not None:
        dataset = dataset.select(range(min(max_samples, len(dataset))))
    return dataset


def _load_local_folder(folder: str, split: str) -> datasets.Dataset:
    """Load a built folder through its own cache (`videokr.data.local`: a plain ``load_dataset`` can
    return another folder's rows), and check that its clip paths lie inside it."""
    import datasets

    dataset = load_local(folder, split).cast_column("video", datasets.Video(decode=False))
    root = os.path.realpath(folder)
    for video in dataset["video"]:
        path = (video or {}).get("path")
        if path and not os.path.realpath(path).startswith(root + os.sep):
            raise RuntimeError(f"{folder}: loaded clip path {path} lies outside the folder; rebuild it")
    return dataset


def to_sft_rows(dataset: datasets.Dataset, *, direct: bool = False) -> datasets.Dataset:
    """Add ``prompt`` (official ``"sft"`` text) and ``completion`` (the assistant target).

    ``direct=True`` trains on ``<answer>…</answer>`` alone (the chain-of-thought ablation); the prompt is
    unchanged, so the two runs differ only in what the model is taught to write.
    """

    def convert(row: dict[str, Any]) -> dict[str, str]:
        prompt = prompts.build_prompt(row["question"], row["options"] or [], row["problem_type"], style="sft")
        try:
            target = prompts.assistant_target(row["answer"], row.get("think"), direct=direct)
        except ValueError as error:
            raise ValueError(f"row {row['id']!r}: {error}") from error
        return {"prompt": prompt, "completion": target}

    return dataset.map(convert, desc="SFT prompts")


def grpo_prompt(row: dict[str, Any]) -> list[dict[str, Any]]:
    """Chat messages for one RL row: a video part (the clip stays in the ``video`` column) and the
    official ``"rl"`` prompt text."""
    text = prompts.build_prompt(row["question"], row["options"] or [], row["problem_type"], style="rl")
    return chat_messages(text)


def to_grpo_rows(dataset: datasets.Dataset) -> datasets.Dataset:
    """Add the conversational ``prompt`` column GRPOTrainer reads."""
    return dataset.map(lambda row: {"prompt": grpo_prompt(row)}, desc="GRPO prompts")
