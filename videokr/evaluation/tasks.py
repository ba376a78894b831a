"""VideoKR-Eval as lighteval tasks: the prompt function, the probe variants and the task table.

One row of the Hub dataset becomes one `Doc` whose ``query`` is the official evaluation prompt (the
lmms-eval style of `videokr.data.prompts`) and whose ``specific`` carries what lighteval has no field for:
the clip's path, the probe mode, the number of trials and the item's labels (problem type, source
benchmark, subject, skill; ``needs`` where the dataset has it) that the metric breaks results down by.
``Doc`` is a slots dataclass, so ``specific`` is the only place such data can travel from the task to the
model and the metric.

Tasks (run them as ``videokr_eval|0`` etc.):

* ``videokr_eval``: the benchmark as the paper runs it, the full video.
* ``videokr_eval_single_frame``: the paper's single-frame probe, question + options + one random frame,
  three trials with a different seeded frame each; the metric reports how many items a model answers
  right in every trial (``answerable_rate``).
* ``videokr_eval_text_only``: the question and options, no visual input at all.
* ``videokr_eval_mmvu``, ``videokr_eval_videommmu``, ``videokr_eval_scivideobench``: one source benchmark.

Names avoid ``:`` on purpose: lighteval expands ``name`` into every registered ``name:*`` task.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from typing import Any, Literal

from lighteval.tasks.lighteval_task import LightevalTaskConfig
from lighteval.tasks.requests import Doc

from videokr.data.prompts import build_prompt
from videokr.data.records import LETTERS, MULTIPLE_CHOICE, normalize_mc_answer, normalize_problem_type
from videokr.evaluation.scoring import videokr_metric

__all__ = [
    "DATASET_ENV",
    "DEFAULT_DATASET",
    "MAX_NEW_TOKENS",
    "PROBES",
    "SINGLE_FRAME_TRIALS",
    "SOURCES",
    "TASKS_TABLE",
    "Probe",
    "build_tasks",
    "dataset_location",
    "video_path",
    "videokr_prompt",
    "videokr_task",
]

Probe = Literal["video", "single_frame", "text_only"]
PROBES: tuple[Probe, ...] = ("video", "single_frame", "text_only")

#: Source benchmarks of VideoKR-Eval, as the ``dataset`` column spells them.
SOURCES: tuple[str, ...] = ("MMVU", "VideoMMMU", "SciVideoBench")

#: The paper's single-frame probe: three trials, each with its own random frame.
SINGLE_FRAME_TRIALS = 3

#: The paper's generation budget for evaluation (temperature 0.1 is a model setting, see `model`).
MAX_NEW_TOKENS = 8192

#: Where the built Hub dataset lives: a Hub repo id or a local folder written by ``videokr build eval``.
DATASET_ENV = "VIDEOKR_EVAL_DATASET"
DEFAULT_DATASET = "videokr/VideoKR-Eval"

_SPLIT = "test"


def dataset_location() -> str:
    """The dataset the task table points at: ``$VIDEOKR_EVAL_DATASET``, else the Hub repo."""
    return os.environ.get(DATASET_ENV) or DEFAULT_DATASET


def video_path(video: Any) -> str:
    """The clip's file path from a row's ``video`` value, whatever form ``datasets`` gave it.

    lighteval loads the dataset with the ``Video`` feature decoding, so a row holds a torchcodec
    ``VideoDecoder``; ``datasets`` records the file it opened on it (``metadata.path``). A path string and
    the ``{"path", "bytes"}`` dict of ``Video(decode=False)`` are accepted too. The model decodes the
    frames itself (at its own fps and resolution), so only the path travels in the ``Doc``.
    """
    if isinstance(video, str | os.PathLike):
        return os.fspath(video)
    if isinstance(video, Mapping):
        path = video.get("path")
    else:
        encoded = getattr(video, "_hf_encoded", None) or {}
        path = encoded.get("path") or getattr(getattr(video, "metadata", None), "path", None)
    if not path:
        raise ValueError(f"cannot find the clip's file path in a {type(video).__name__} video value")
    return str(path)


def videokr_prompt(
    line: dict[str, Any], task_name: str = "", *, probe: Probe = "video", source: str | None = None
) -> Doc | None:
    """One dataset row → one `Doc` (None for rows outside ``source``, which lighteval then skips)."""
    if source is not None and line.get("dataset") != source:
        return None
    options = list(line.get("options") or [])
    problem_type = normalize_problem_type(line.get("problem_type"), has_options=bool(options))
    answer = str(line["answer"])
    if problem_type == MULTIPLE_CHOICE:
        letter = normalize_mc_answer(answer, options)
        choices, gold = list(LETTERS[: len(options)]), LETTERS.index(letter)
        answer = letter
    else:
        choices, gold = [answer], 0
    return Doc(
        task_name=task_name,
        query=build_prompt(line["question"], options, problem_type, style="eval"),
        choices=choices,
        gold_index=gold,
        specific={
            "id": str(line["id"]),
            "video": video_path(line["video"]),
            "probe": probe,
            "trials": SINGLE_FRAME_TRIALS if probe == "single_frame" else 1,
            "question": line["question"],
            "options": options,
            "answer": answer,
            "problem_type": problem_type,
            "dataset": line.get("dataset"),
            "subject": line.get("subject"),
            "skill": line.get("skill"),
            "discipline": line.get("discipline"),
            "origin": line.get("origin"),
            # What answering truly needs, where the dataset knows it (`videokr.evaluation.probe_truth`).
            "needs": line.get("needs"),
        },
    )


def videokr_task(
    name: str, *, probe: Probe = "video", source: str | None = None, dataset: str | None = None
) -> LightevalTaskConfig:
    """The lighteval config of one VideoKR-Eval variant."""
    return LightevalTaskConfig(
        name=name,
        prompt_function=functools.partial(videokr_prompt, probe=probe, source=source),
        hf_repo=dataset or dataset_location(),
        hf_subset="default",
        hf_avail_splits=[_SPLIT],
        evaluation_splits=[_SPLIT],
        few_shots_split=None,
        few_shots_select=None,
        generation_size=MAX_NEW_TOKENS,
        stop_sequence=[],
        metrics=[videokr_metric()],
        version=0,
    )


def build_tasks(dataset: str | None = None) -> list[LightevalTaskConfig]:
    """Every VideoKR-Eval task, reading ``dataset`` (default: `dataset_location`)."""
    return [
        videokr_task("videokr_eval", dataset=dataset),
        videokr_task("videokr_eval_single_frame", probe="single_frame", dataset=dataset),
        videokr_task("videokr_eval_text_only", probe="text_only", dataset=dataset),
        *(videokr_task(f"videokr_eval_{s.lower()}", source=s, dataset=dataset) for s in SOURCES),
    ]


TASKS_TABLE = build_tasks()
