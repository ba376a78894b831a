"""Shared set-up for the evaluation tests: the sample VideoKR-Eval repo, a tiny model folder, and a
lighteval model whose answers are scripted per item while everything else (tasks, request building,
frame decoding, probes, metric, aggregation, result files) is the real code."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import datasets
import pytest

from videokr.data.local import load_local
from videokr.evaluation.inputs import GenerationRequest
from videokr.evaluation.model import Generation, VideoLightevalModel, VideoModelConfig


@functools.cache
def eval_repo(sample_corpus: Path, out: Path) -> Path:
    """The sample corpus built into the no-code VideoKR-Eval folder (once per session)."""
    import videokr_eval
    from videokr.data.hub import build_repo

    build_repo(videokr_eval.SPEC, sample_corpus, out, workers=1, progress=False)
    return out


@functools.cache
def tiny_model_dir(out: Path) -> Path:
    from videokr.models.tiny import save_tiny_model

    return save_tiny_model("qwen2_5_vl", out)


@pytest.fixture(scope="module")
def repo(sample_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample VideoKR-Eval folder (import it into a test module to use it there)."""
    return eval_repo(sample_corpus, tmp_path_factory.getbasetemp() / "eval-repo")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny Qwen2.5-VL checkpoint folder (import it into a test module to use it there)."""
    return tiny_model_dir(tmp_path_factory.getbasetemp() / "tiny-qwen2_5_vl")


def eval_rows(repo: Path) -> list[dict[str, Any]]:
    """The dataset rows by id, without decoding video (for computing expected scores independently)."""
    ds = load_local(repo, split="test").cast_column("video", datasets.Video(decode=False))
    return sorted(ds, key=lambda row: row["id"])


Script = Callable[[GenerationRequest], str]


class ScriptedVideoModel(VideoLightevalModel):
    """The real model class with the network replaced by ``script(request) -> text``; it records every
    request it receives (with its decoded visual input) and the chat text rendered for it."""

    def __init__(self, config: VideoModelConfig, script: Script, processor_dir: Path) -> None:
        self.script = script
        self.processor_dir = processor_dir
        self.received: list[GenerationRequest] = []
        self.rendered: list[str] = []
        super().__init__(config)

    def _load_processor(self) -> Any:
        from transformers import AutoProcessor

        return AutoProcessor.from_pretrained(self.processor_dir)

    def _load_model(self) -> None:
        return None

    def _generate_runs(
        self, batch: list[GenerationRequest], max_new_tokens: int, seeds: Sequence[int]
    ) -> list[list[Generation]]:
        """The script's answer to each request, the same in every run."""
        out = []
        for request in batch:
            self.received.append(request)
            self.rendered.append(self.render(request))
            out.append(Generation(self.script(request), [], [], self.rendered[-1]))
        return [out for _ in seeds]


def scripted_model(
    model_dir: Path, cache_dir: Path, script: Script, *, name: str = "scripted", **settings: Any
) -> ScriptedVideoModel:
    """A scripted model reading frames at a small budget (4 frames by default) so tests stay fast."""
    settings.setdefault("max_frames", 4)
    config = VideoModelConfig(model_name=name, cache_dir=str(cache_dir), **settings)
    return ScriptedVideoModel(config, script, model_dir)
