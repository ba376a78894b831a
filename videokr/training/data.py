"""Dataset rows → trainer rows: the official prompt text, the assistant target, and the ablation filters.

Rows keep every original column (``remove_unused_columns=False`` in the configs): the collator needs
``id`` and ``video``, and GRPO passes ``answer``, ``problem_type`` and ``options`` to the reward functions.
The ``video`` column is cast to ``datasets.Video(decode=False)`` so a row carries the clip's path (or
bytes) and the collator decides how to sample it, instead of ``datasets`` opening a decoder per row.

A clip that is not a local file (a member of a ZIP shard, ``zip://videos/x.mp4::<shard>``, or anything
streamed from the Hub or another fsspec location) reaches the collator as bytes, read when the row is
(`readable_clips`): nothing is extracted or copied ahead of training.

Streaming (``streaming=True``, the scripts' ``--streaming``): rows and clips are read as training goes,
from a Hub id, a local built folder or any fsspec URL of one (``hf://datasets/ORG/NAME``,
``https://…``, ``s3://…``), through `videokr.data.sharded_folder.ShardedVideoFolder` (one stream
shard per ZIP shard).
Splitting across processes is Accelerate's: with ``dispatch_batches=False`` (`streaming_trainer_args`)
it gives each process its own shards when there are at least as many shards as processes
(``IterableDataset.shard``, what ``datasets.distributed.split_dataset_by_node`` does when the shards
divide evenly; splitting here as well would split twice), else each process reads the whole stream and
keeps its slice of every batch; ``datasets`` gives each dataloader worker its own shards within that.
SFT takes the shards. GRPO's rows are one stream of one shard (`as_one_stream`), so its prompt groups
stay whole across processes. Resuming at a step re-reads the same rows: the order is fixed by the
shards' names.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import fsspec
import yaml

from videokr.data import prompts
from videokr.data.local import load_local
from videokr.data.records import SKILLS
from videokr.vision import chat_messages
from videokr.vision.frames import read_clip_bytes

if TYPE_CHECKING:
    import datasets

__all__ = [
    "as_one_stream",
    "grpo_prompt",
    "load_video_dataset",
    "readable_clips",
    "stream_video_dataset",
    "streaming_trainer_args",
    "to_grpo_rows",
    "to_sft_rows",
]


def load_video_dataset(
    source: str,
    split: str = "train",
    *,
    skills: Sequence[str] | None = None,
    max_samples: int | None = None,
    streaming: bool = False,
) -> datasets.Dataset | datasets.IterableDataset:
    """Load a VideoKR split from a Hub id or a local built folder, clip column undecoded.

    ``skills`` keeps only those skills (the paper's per-skill ablations; rows of unknown skill are then
    dropped, since they cannot be shown to belong); ``max_samples`` keeps the first N rows after that.
    ``streaming`` reads rows and clips as they are iterated (`stream_video_dataset`); the source may then
    also be an fsspec URL of a built folder.
    """
    import datasets

    unknown = sorted(set(skills or ()) - set(SKILLS))
    if unknown:
        raise ValueError(f"unknown skills {unknown}; choose from {', '.join(SKILLS)}")
    if streaming:
        stream = stream_video_dataset(source, split)
        if skills:
            wanted = set(skills)
            stream = stream.filter(lambda skill: skill in wanted, input_columns="skill")
        return stream.take(max_samples) if max_samples is not None else stream
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


def stream_video_dataset(location: str, split: str = "train") -> datasets.IterableDataset:
    """Stream `split` of a built dataset: a Hub id, a local folder or an fsspec URL of one.

    The card is the loader: its YAML gives the split's files and the record's features, read from
    ``<location>/README.md`` for a URL, as ``datasets`` reads it for a Hub id or a folder.
    """
    import datasets

    from videokr.data.sharded_folder import ShardedVideoFolder

    local = os.path.expanduser(location)
    if "://" in location and not os.path.isdir(local):
        patterns, features = _card_loader(location, split)
        base = datasets.load_dataset_builder("videofolder", data_files={split: patterns}, features=features)
    else:
        base = datasets.load_dataset_builder(local if os.path.isdir(local) else location)
    builder = ShardedVideoFolder(
        dataset_name=base.dataset_name,
        config_name=base.config.name,
        data_files=base.config.data_files,
        features=base.info.features,
        hash=base.hash,
        base_path=base.base_path,
        storage_options=base.storage_options,
    )
    stream = builder.as_streaming_dataset(split=split)
    return stream.cast_column("video", datasets.Video(decode=False))


def _card_loader(location: str, split: str) -> tuple[list[str], datasets.Features]:
    """The data-file patterns of `split` (as URLs) and the features, from the card at `location`."""
    import datasets

    card_url = location.rstrip("/") + "/README.md"
    try:
        with fsspec.open(card_url, "rt", encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, ValueError) as error:
        raise RuntimeError(f"{location}: cannot read its dataset card {card_url} ({error})") from error
    _, front, _ = text.split("---", 2) if text.startswith("---") else ("", "", "")
    card = yaml.safe_load(front) or {}
    configs = card.get("configs") or []
    files = [f for c in configs[:1] for f in c.get("data_files", []) if f.get("split") == split]
    if not files or "features" not in card.get("dataset_info", {}):
        raise RuntimeError(f"{card_url}: no data files for split {split!r} or no features in its YAML")
    patterns = [f"{location.rstrip('/')}/{p}" for f in files for p in _as_list(f["path"])]
    return patterns, datasets.Features._from_yaml_list(card["dataset_info"]["features"])


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def streaming_trainer_args(training_args: Any) -> None:
    """Trainer settings for a streamed dataset: each process reads its own shards (Accelerate's default
    for an iterable dataset is to read everything in process 0 and send each process its batches)."""
    config = training_args.accelerator_config
    if isinstance(config, dict):
        config["dispatch_batches"] = False
    else:
        config.dispatch_batches = False


def readable_clips(dataset: datasets.Dataset | datasets.IterableDataset) -> Any:
    """Rows whose clip the collator can open: a clip that is no local file comes with its bytes.

    Streamed rows get them as they are read; a loaded dataset gets them through a transform applied when
    a row is accessed, so nothing is copied into the Arrow cache. Loose local clips are left as paths.
    """
    import datasets

    if isinstance(dataset, datasets.IterableDataset):
        return dataset.map(_with_clip_bytes)
    first = dataset[0]["video"] if len(dataset) else None
    if first is None or _is_local_file(first):
        return dataset
    return dataset.with_transform(_with_clip_bytes_batch)


def _is_local_file(video: Any) -> bool:
    path = video.get("path") if isinstance(video, dict) else video
    return bool(path) and "://" not in str(path) and os.path.exists(str(path))


def _with_clip_bytes(row: dict[str, Any]) -> dict[str, Any]:
    video = row["video"]
    if video and not video.get("bytes") and not _is_local_file(video):
        video = {"path": video["path"], "bytes": read_clip_bytes(video["path"])}
    return {**row, "video": video}


def _with_clip_bytes_batch(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
    return {**batch, "video": [_with_clip_bytes({"video": v})["video"] for v in batch["video"]]}


def _load_local_folder(folder: str, split: str) -> datasets.Dataset:
    """Load a built folder through its own cache (`videokr.data.local`: a plain ``load_dataset`` can
    return another folder's rows), and check that its clip paths lie inside it."""
    import datasets

    dataset = load_local(folder, split).cast_column("video", datasets.Video(decode=False))
    root = os.path.realpath(folder)
    for video in dataset["video"]:
        path = (video or {}).get("path")
        # a shard member is `zip://<member>::<shard path>`: the shard must lie in the folder
        local = path.rpartition("::")[2] if path else path
        if local and not os.path.realpath(local).startswith(root + os.sep):
            raise RuntimeError(f"{folder}: loaded clip path {path} lies outside the folder; rebuild it")
    return dataset


def to_sft_rows(dataset: Any, *, direct: bool = False, style: prompts.PromptStyle = "sft") -> Any:
    """Add ``prompt`` (the official ``style`` text, by default SFT's) and ``completion`` (the target).

    ``direct=True`` trains on ``<answer>…</answer>`` alone (the chain-of-thought ablation); the prompt is
    unchanged, so the two runs differ only in what the model is taught to write. ``style="eval"`` trains
    on the benchmark's layout: the official SFT, RL and evaluation prompts place the options
    differently, which a pretrained model bridges and a model trained from scratch does not.
    """

    def convert(row: dict[str, Any]) -> dict[str, str]:
        prompt = prompts.build_prompt(row["question"], row["options"] or [], row["problem_type"], style=style)
        try:
            target = prompts.assistant_target(row["answer"], row.get("think"), direct=direct)
        except ValueError as error:
            raise ValueError(f"row {row['id']!r}: {error}") from error
        return {"prompt": prompt, "completion": target}

    return readable_clips(_map(dataset, convert, "SFT prompts"))


def grpo_prompt(row: dict[str, Any], style: prompts.PromptStyle = "rl") -> list[dict[str, Any]]:
    """Chat messages for one RL row: a video part (the clip stays in the ``video`` column) and the
    official ``style`` prompt text (by default RL's)."""
    text = prompts.build_prompt(row["question"], row["options"] or [], row["problem_type"], style=style)
    return chat_messages(text)


def to_grpo_rows(dataset: Any, *, style: prompts.PromptStyle = "rl") -> Any:
    """Add the conversational ``prompt`` column GRPOTrainer reads (the official ``style`` text).

    A stream comes back as one stream of one shard (`as_one_stream`), so that every process reads the same
    rows and GRPO's groups stay whole across processes. Its rows carry clip paths, not bytes: each process
    keeps only its slice of every batch, and the trainer's clip loader reads just those clips
    (`videokr.vision.frames.read_clip_bytes`), so processes do not all fetch every clip.
    """
    import datasets

    rows = _map(dataset, lambda row: {"prompt": grpo_prompt(row, style)}, "GRPO prompts")
    return as_one_stream(rows) if isinstance(rows, datasets.IterableDataset) else readable_clips(rows)


def as_one_stream(stream: datasets.IterableDataset) -> datasets.IterableDataset:
    """The same rows in the same order, as a stream of a single shard.

    Why GRPO needs it: the trainer builds each prompt's group into the stream itself (TRL's
    ``repeat_iterable_dataset``: every prompt ``num_generations`` times in a row) and relies on each process
    taking its slice of every global batch, as ``RepeatSampler`` does for a map-style dataset; rewards are
    then gathered and grouped ``num_generations`` at a time across processes. Accelerate slices a stream
    that way (``IterableDatasetShard``) only when it has fewer shards than processes; with as many or more
    (a sharded build has one per ZIP shard) it gives each process its own shards instead, and the
    gathered groups then mix prompts whenever a process's batch is not whole groups (per-device batch 1,
    8 generations on 8 GPUs: every group of 8 is 8 prompts), silently. With one shard every process reads
    the same rows (the rows only: `to_grpo_rows` leaves the clips to be read by the process that keeps
    the row) and keeps its slice.

    SFT keeps the shards: its rows are independent, and each process reading only its own is the point.
    """
    import datasets

    return datasets.IterableDataset.from_generator(
        _rows_of, features=stream.features, gen_kwargs={"stream": stream}
    )


def _rows_of(stream: datasets.IterableDataset) -> Any:
    yield from stream


def _map(dataset: Any, function: Any, desc: str) -> Any:
    """``map`` with a progress label where there is one (a streamed dataset maps lazily, without)."""
    import datasets

    if isinstance(dataset, datasets.IterableDataset):
        return dataset.map(function)
    return dataset.map(function, desc=desc)
