"""Training from a streamed dataset: a sharded build served over HTTP on 127.0.0.1 (with range requests,
as the Hub's file server answers them), read by the real training path as it goes."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import datasets
import pytest
import torch
from safetensors.torch import load_file
from torch.utils.data import DataLoader
from training_fixtures import SAMPLING, SAMPLING_ARGS, length_reward, tiny_dirs

import videokr_rl
import videokr_sft
from videokr.data import shards
from videokr.data.hub import build_repo
from videokr.training.data import load_video_dataset, to_grpo_rows, to_sft_rows

__all__ = ["tiny_dirs"]  # a module fixture, imported so pytest finds it here

COMMON = ["--bf16", "false", "--use_cpu", "true", "--report_to", "none", "--seed", "0"]
COMMON += ["--per_device_train_batch_size", "2", "--learning_rate", "1e-3", "--lr_scheduler_type", "constant"]


class RangeHandler(SimpleHTTPRequestHandler):
    """A static file server that answers `Range: bytes=a-b` with 206, and records what was asked (method,
    path, range)."""

    requests: list[tuple[str, str, str | None]]

    def send_head(self):  # type: ignore[no-untyped-def]
        self.requests.append((self.command, self.path, self.headers.get("Range")))
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range") or "")
        path = Path(self.translate_path(self.path))
        if match is None or not path.is_file():
            return super().send_head()
        size = path.stat().st_size
        start, end = int(match.group(1)), int(match.group(2) or size - 1)
        end = min(end, size - 1)
        handle = path.open("rb")
        handle.seek(start)
        self.send_response(206)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        self._left = end - start + 1
        return handle

    def copyfile(self, source, outputfile):  # type: ignore[no-untyped-def]
        left = getattr(self, "_left", None)
        if left is None:
            return super().copyfile(source, outputfile)
        outputfile.write(source.read(left))
        self._left = None

    def log_message(self, format: str, *args: object) -> None:
        pass


def sharded_build(spec: Any, corpus: Path, out: Path) -> Path:
    """`spec`'s dataset built from `corpus` in ZIP shards of at most 10 clips (the sample SFT set: three),
    as a user would fetch it: the published files only."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(shards, "MAX_SHARD_CLIPS", 10)
        build_repo(spec, corpus, out, layout="shards", workers=2, progress=False, check=False)
    shutil.rmtree(out / ".videokr")
    return out


@contextlib.contextmanager
def serve(folder: Path) -> Iterator[dict]:
    """An HTTP server on 127.0.0.1 serving `folder`, recording what it was asked."""
    requests: list[tuple[str, str, str | None]] = []
    handler = type("Handler", (RangeHandler,), {"requests": requests})
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield {"folder": folder, "url": f"http://127.0.0.1:{server.server_port}", "requests": requests}
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def served(sample_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """The sample SFT set built in three shards, served over HTTP."""
    with serve(sharded_build(videokr_sft.SPEC, sample_corpus, tmp_path_factory.mktemp("sft") / "sft")) as s:
        yield s


@pytest.fixture(scope="module")
def served_rl(sample_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """The sample RL set built in shards, served over HTTP."""
    with serve(sharded_build(videokr_rl.SPEC, sample_corpus, tmp_path_factory.mktemp("rl") / "rl")) as s:
        yield s


def test_a_stream_over_http_reads_every_row_once_with_its_clip_split_by_shard(served: dict) -> None:
    local = datasets.load_dataset(str(served["folder"]), split="train").cast_column(
        "video", datasets.Video(decode=False)
    )
    clip_of = {row["id"]: row["video"]["path"] for row in local}
    stream = to_sft_rows(load_video_dataset(served["url"], "train", streaming=True))
    assert stream.n_shards == 3
    rows = list(stream)
    assert sorted(r["id"] for r in rows) == sorted(clip_of)
    assert [r["id"] for r in rows] == [r["id"] for r in stream]  # the same order every time
    for row in rows[::7]:
        with datasets.utils.file_utils.xopen(clip_of[row["id"]], "rb") as handle:
            assert row["video"]["bytes"] == handle.read()
        assert row["prompt"] and row["completion"]
    assert any(r is not None and r.startswith("bytes=") for _, _, r in served["requests"])

    # Two processes (Accelerate shards a stream this way), each with two dataloader workers.
    seen = []
    for rank in range(2):
        part = stream.shard(num_shards=2, index=rank) if stream.n_shards >= 2 else None
        assert part is not None
        loader = DataLoader(part.select_columns(["id"]), batch_size=None, num_workers=2)
        seen += [row["id"] for row in loader]
    assert sorted(seen) == sorted(clip_of)


def test_the_first_streamed_row_waits_for_the_first_shard_only(served: dict) -> None:
    """A shard's layout is known, so nothing lists the other archives before the first row: with many
    shards, the first row reads one shard's directory, metadata and clip (resolving the split's files
    asks only for each file's headers)."""
    served["requests"].clear()
    first = next(iter(load_video_dataset(served["url"], "train", streaming=True)))
    first_shard = f"/{videokr_sft.SPEC.split}/{shards.shard_name(0)}"
    touched = {path for method, path, _ in served["requests"] if method == "GET" and path.endswith(".zip")}
    assert touched == {first_shard}
    assert first["video"]["path"].endswith(f"::{served['url']}{first_shard}")


def sft(tiny: Path, url: str, out: Path, *extra: str) -> None:
    from videokr.training.sft import cli

    args = ["--model_name_or_path", str(tiny), "--dataset_name", url, "--streaming", *SAMPLING_ARGS]
    cli([*args, "--output_dir", str(out), *COMMON, *extra])


def test_streaming_sft_trains_and_resumes_at_a_step_as_an_uninterrupted_run(
    served: dict, tiny_dirs: dict[str, Path], tmp_path: Path
) -> None:
    tiny = tiny_dirs["qwen2_5_vl"]
    served["requests"].clear()
    sft(tiny, served["url"], tmp_path / "straight", "--max_steps", "4", "--save_strategy", "no")
    assert any(path.endswith(".zip") for _, path, _ in served["requests"]), "the clips did not come over HTTP"
    resumed = tmp_path / "resumed"
    sft(tiny, served["url"], resumed, "--max_steps", "2", "--save_steps", "2")  # stopped after step 2
    assert (resumed / "checkpoint-2").is_dir()
    sft(
        tiny,
        served["url"],
        resumed,
        "--max_steps",
        "4",
        "--save_strategy",
        "no",
        "--resume_from_checkpoint",
        "true",
    )
    straight, again = (
        load_file(tmp_path / "straight" / "model.safetensors"),
        load_file(resumed / "model.safetensors"),
    )
    initial = load_file(tiny / "model.safetensors")
    assert not torch.equal(straight["lm_head.weight"], initial["lm_head.weight"])
    assert all(torch.equal(straight[name], again[name]) for name in straight)


def generation_batches(
    stream: Any, *, processes: int, per_device: int, steps_per_generation: int, group: int
) -> list[list[str]]:
    """What each GRPO rollout sees across `processes`: the stream as TRL's trainer arranges it
    (``repeat_iterable_dataset``, as in ``GRPOTrainer.get_train_dataloader``), each process's dataloader
    prepared by Accelerate as the trainer's is (``dispatch_batches=False``), and the processes' batches at
    each rollout step concatenated in rank order, as the rewards are gathered before grouping."""
    from accelerate.data_loader import prepare_data_loader
    from trl.trainer.utils import repeat_iterable_dataset

    batch = per_device * steps_per_generation  # one rollout's rows per process
    repeated = repeat_iterable_dataset(
        stream.select_columns(["id"]),
        mini_repeat_count=group,
        batch_size=batch * processes // group,
        repeat_count=steps_per_generation,
    )
    per_rank = []
    for rank in range(processes):
        loader = DataLoader(repeated, batch_size=batch, collate_fn=lambda rows: [row["id"] for row in rows])
        loader = prepare_data_loader(
            loader, num_processes=processes, process_index=rank, dispatch_batches=False, put_on_device=False
        )
        per_rank.append(list(loader)[::steps_per_generation])  # the batches a rollout is made from
    return [[row for batch in step for row in batch] for step in zip(*per_rank, strict=False)]


@pytest.mark.parametrize(("per_device", "group"), [(1, 4), (2, 2), (4, 2)])
def test_grpo_groups_stay_whole_across_processes_on_a_sharded_stream(
    served_rl: dict, per_device: int, group: int
) -> None:
    """Two processes, each rollout gathered from both: every group of `group` rewards is one prompt's, and
    the rollouts walk the stream in order (no prompt skipped or repeated). On the raw sharded stream the
    libraries give each process its own shards, and with one row per process and step the gathered groups
    mix prompts: the failure `as_one_stream` prevents, shown here to happen."""
    stream = load_video_dataset(str(served_rl["folder"]), "train", streaming=True)
    assert stream.n_shards >= 2
    order = [row["id"] for row in stream.select_columns(["id"])]
    geometry = {"processes": 2, "per_device": per_device, "steps_per_generation": 2, "group": group}

    rows = to_grpo_rows(stream)
    assert next(iter(rows))["video"]["bytes"] is None  # the process that keeps a row reads its clip
    rollouts = generation_batches(rows, **geometry)
    assert len(rollouts) >= 2
    prompts_seen = []
    for gathered in rollouts:
        groups = [gathered[i : i + group] for i in range(0, len(gathered), group)]
        assert all(len(set(g)) == 1 and len(g) == group for g in groups), gathered
        prompts_seen += [g[0] for g in groups]
    assert prompts_seen == order[: len(prompts_seen)]

    if per_device == 1:
        raw = generation_batches(stream, **geometry)
        mixed = [gathered for gathered in raw if len(set(gathered[:group])) > 1]
        assert mixed, raw


def test_the_clip_loader_reads_a_streamed_rows_clip_over_http(served_rl: dict) -> None:
    """GRPO's streamed rows carry clip paths (``zip://member::http://…/shard``); the loader reads the clip
    itself, and shows the same frames as from the local shard."""
    from videokr.models.tiny import build_tiny_processor
    from videokr.vision import VisualLoader

    row = next(iter(to_grpo_rows(load_video_dataset(served_rl["url"], "train", streaming=True))))
    remote = row["video"]["path"]
    assert remote.startswith("zip://") and served_rl["url"] in remote and row["video"]["bytes"] is None
    local = remote.replace(served_rl["url"], str(served_rl["folder"]))
    loader = VisualLoader(build_tiny_processor("qwen2_5_vl"), SAMPLING)
    served_rl["requests"].clear()
    shown = loader.load(row["video"])
    assert any(path.endswith(".zip") for _, path, _ in served_rl["requests"])
    assert torch.equal(shown.frames, loader.load({"path": local, "bytes": None}).frames)


def streaming_grpo(tiny: Path, url: str, out: Path, resume: Path | None = None, **overrides: Any) -> Any:
    """The script's streaming path (`load_video_dataset(streaming=True)`, `to_grpo_rows`,
    `streaming_trainer_args`, and on a resume the checkpoint's weights loaded as `prepare_start` loads
    them) into the real trainer, with a reward that moves the weights."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from videokr.training import VideoGRPOConfig
    from videokr.training.data import streaming_trainer_args
    from videokr.training.grpo_trainer import VideoGRPOTrainer
    from videokr.training.resume import load_checkpoint_weights

    options: dict[str, Any] = {
        "output_dir": str(out),
        "per_device_train_batch_size": 2,
        "num_generations": 2,
        "max_completion_length": 8,
        "max_steps": 2,
        "learning_rate": 1e-2,
        "lr_scheduler_type": "constant",
        "bf16": False,
        "use_cpu": True,
        "report_to": "none",
        "save_strategy": "no",
        "seed": 0,
    }
    args = VideoGRPOConfig(**{**options, **overrides})
    streaming_trainer_args(args)
    model = AutoModelForImageTextToText.from_pretrained(tiny)
    if resume is not None:
        load_checkpoint_weights(model, str(resume))
    return VideoGRPOTrainer(
        model=model,
        reward_funcs=[length_reward],
        args=args,
        train_dataset=to_grpo_rows(load_video_dataset(url, "train", streaming=True)),
        processing_class=AutoProcessor.from_pretrained(tiny, padding_side="left"),
        sampling=SAMPLING,
    )


def test_streaming_grpo_trains_on_clips_read_over_http(
    served_rl: dict, tiny_dirs: dict[str, Path], tmp_path: Path
) -> None:
    served_rl["requests"].clear()
    trainer = streaming_grpo(tiny_dirs["qwen2_5_vl"], served_rl["url"], tmp_path / "grpo")
    initial = {name: p.detach().clone() for name, p in trainer.model.named_parameters()}
    trainer.train()
    assert trainer.state.global_step == 2
    fetched = [path for _, path, _ in served_rl["requests"] if path.endswith(".zip")]
    assert fetched, "the clips did not come over HTTP"
    assert any(not torch.equal(p, initial[name]) for name, p in trainer.model.named_parameters())


def test_streaming_grpo_resumes_at_a_step_as_an_uninterrupted_run(
    served_rl: dict, tiny_dirs: dict[str, Path], tmp_path: Path
) -> None:
    tiny, url = tiny_dirs["qwen2_5_vl"], served_rl["url"]
    straight = streaming_grpo(tiny, url, tmp_path / "straight", max_steps=4)
    straight.train()
    streaming_grpo(tiny, url, tmp_path / "resumed", save_strategy="steps", save_steps=2).train()
    checkpoint = tmp_path / "resumed" / "checkpoint-2"
    resumed = streaming_grpo(tiny, url, tmp_path / "resumed", resume=checkpoint, max_steps=4)
    resumed.train(resume_from_checkpoint=str(checkpoint))
    ours, theirs = dict(resumed.model.named_parameters()), dict(straight.model.named_parameters())
    initial = dict(streaming_grpo(tiny, url, tmp_path / "unused").model.named_parameters())
    assert any(not torch.equal(theirs[name], initial[name]) for name in theirs)  # it trained
    assert all(torch.equal(ours[name], theirs[name]) for name in theirs)


def launch_two_processes(kind: str, record: Path, args: list[str]) -> list[list[dict]]:
    """Run the `kind` script on two CPU processes (torchrun, gloo) with `tests/record_rows.py` recording
    each process's batches; returns each rank's records."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    command += [str(Path(__file__).with_name("record_rows.py")), kind, str(record), *args]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    ranks = [record / f"rank-{rank}.jsonl" for rank in range(2)]
    return [[json.loads(line) for line in rank.read_text().splitlines()] for rank in ranks]


def test_two_processes_stream_sft_from_their_own_shards(
    served: dict, tiny_dirs: dict[str, Path], tmp_path: Path
) -> None:
    args = ["--model_name_or_path", str(tiny_dirs["qwen2_5_vl"]), "--dataset_name", served["url"]]
    args += ["--streaming", "--max_steps", "4", "--output_dir", str(tmp_path / "out")]
    args += ["--save_strategy", "no"]
    records = launch_two_processes("sft", tmp_path, [*args, *SAMPLING_ARGS, *COMMON])
    assert all(line["processes"] == 2 for rank in records for line in rank)
    seen = [[row for line in rank for row in line["ids"]] for rank in records]
    assert all(len(ids) >= 8 for ids in seen)  # 4 steps of 2 rows each, plus what the loader fetched ahead
    assert not set(seen[0]) & set(seen[1])  # each process its own shards: no row trained twice
    assert all(len(ids) == len(set(ids)) for ids in seen)


def test_two_processes_keep_grpo_groups_whole_on_a_stream(
    served_rl: dict, tiny_dirs: dict[str, Path], tmp_path: Path
) -> None:
    """One row per process and rollout, groups of 4: each prompt's 4 completions are made 2 on each process,
    as the map-style sampler places them, and rollouts move on through the stream."""
    args = ["--model_name_or_path", str(tiny_dirs["qwen2_5_vl"]), "--dataset_name", served_rl["url"]]
    args += ["--streaming", "--max_steps", "4", "--per_device_train_batch_size", "1"]
    args += ["--num_generations", "4"]
    args += ["--steps_per_generation", "2", "--max_completion_length", "8", "--beta", "0.0"]
    args += ["--output_dir", str(tmp_path / "out"), "--save_strategy", "no"]
    records = launch_two_processes("grpo", tmp_path, [*COMMON, *SAMPLING_ARGS, *args])  # args win
    assert all(line["processes"] == 2 for rank in records for line in rank)
    rollouts = [first["ids"] + second["ids"] for first, second in zip(*records, strict=True)]
    assert len(rollouts) == 2  # 4 steps, a rollout every 2
    assert all(len(ids) == 4 and len(set(ids)) == 1 for ids in rollouts), rollouts
    assert rollouts[0][0] != rollouts[1][0]
