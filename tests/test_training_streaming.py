"""Training from a streamed dataset: a sharded build served over HTTP on 127.0.0.1 (with range requests,
as the Hub's file server answers them), read by the real training path as it goes."""

from __future__ import annotations

import functools
import re
import shutil
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import datasets
import pytest
import torch
from safetensors.torch import load_file
from torch.utils.data import DataLoader
from training_fixtures import SAMPLING_ARGS, tiny_dirs

import videokr_sft
from videokr.data import shards
from videokr.data.hub import build_repo
from videokr.training.data import load_video_dataset, to_sft_rows

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


@pytest.fixture(scope="module")
def served(sample_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """The sample SFT set built in three shards, and an HTTP server on 127.0.0.1 serving the folder."""
    out = tmp_path_factory.mktemp("stream") / "sft"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(shards, "MAX_SHARD_CLIPS", 10)
        build_repo(
            videokr_sft.SPEC, sample_corpus, out, layout="shards", workers=2, progress=False, check=False
        )
    shutil.rmtree(out / ".videokr")  # what a user would fetch: the published files only
    requests: list[tuple[str, str, str | None]] = []
    handler = type("Handler", (RangeHandler,), {"requests": requests})
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(out)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield {"folder": out, "url": f"http://127.0.0.1:{server.server_port}", "requests": requests}
    finally:
        server.shutdown()
        server.server_close()


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
