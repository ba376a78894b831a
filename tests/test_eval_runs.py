"""The paper's protocol (several runs, each with its own sampling seed) generated in one pass: every
run's answers are exactly those the run gets alone, the later runs are answered from the cache without
generating anything, and ``videokr eval --runs`` loads the model once and writes one results file per
run.

A real tiny Qwen2.5-VL through real lighteval on the sample VideoKR-Eval items; nothing is mocked (a
subclass only counts the generation calls).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from eval_fixtures import model_dir, repo

from videokr.evaluation.inputs import GenerationRequest
from videokr.evaluation.model import Generation, VideoLightevalModel, VideoModelConfig
from videokr.evaluation.run import eval_command, run_eval

__all__ = ["model_dir", "repo"]  # module fixtures, imported so pytest finds them here

RUNS = 3
SAMPLES = 4
TASKS = ("videokr_eval", "videokr_eval_single_frame")  # a video each, and three single-frame trials each


class CountingModel(VideoLightevalModel):
    """The real model; it records the seeds of every generation call."""

    def __init__(self, config: VideoModelConfig) -> None:
        self.calls: list[tuple[int, ...]] = []
        super().__init__(config)

    def _generate_runs(
        self, batch: list[GenerationRequest], max_new_tokens: int, seeds: Sequence[int]
    ) -> list[list[Generation]]:
        self.calls.append(tuple(seeds))
        return super()._generate_runs(batch, max_new_tokens, seeds)


def sampled(model_dir: Path, cache: Path, *, seed: int, runs: int) -> CountingModel:
    """Sampling at temperature 1 over the whole vocabulary, so different seeds give different answers."""
    return CountingModel(
        VideoModelConfig(
            model_name=str(model_dir),
            device="cpu",
            max_frames=4,
            batch_size=2,
            cache_dir=str(cache),
            seed=seed,
            runs=runs,
            generation_parameters={"temperature": 1.0, "top_p": 1.0, "top_k": 0, "max_new_tokens": 6},
        )
    )


def answers(out: Path) -> dict[str, dict[str, list[str]]]:
    """Per task, per item, the texts of its answers (one per trial) in the run's details."""
    found = {}
    for task in TASKS:
        (path,) = out.rglob(f"details_{task}|0_*.parquet")
        details = pd.read_parquet(path)
        found[task] = {
            str(row["doc"]["specific"]["id"]): list(row["model_response"]["text"])
            for _, row in details.iterrows()
        }
    return found


def test_runs_generated_together_are_the_runs_generated_alone(
    repo: Path, model_dir: Path, tmp_path: Path
) -> None:
    together = sampled(model_dir, tmp_path / "cache", seed=0, runs=RUNS)
    joint = []
    for k in range(RUNS):
        if k:
            together.next_run()
        out = tmp_path / f"together-{k}"
        run_eval(together, TASKS, dataset=str(repo), output_dir=out, max_samples=SAMPLES)
        joint.append(answers(out))
    # Only the first run generated, for all three seeds at once; the others were answered from the cache.
    assert together.calls and set(together.calls) == {(0, 1, 2)}
    assert together.config.seed == RUNS - 1

    for k in range(RUNS):
        alone = sampled(model_dir, tmp_path / f"cache-alone-{k}", seed=k, runs=1)
        out = tmp_path / f"alone-{k}"
        run_eval(alone, TASKS, dataset=str(repo), output_dir=out, max_samples=SAMPLES)
        assert set(alone.calls) == {(k,)}
        assert answers(out) == joint[k], k
    # The runs are different samples, not one answer copied three times.
    assert joint[0] != joint[1] != joint[2]
    items = joint[0]["videokr_eval"]
    assert len(items) == SAMPLES and all(len(texts) == 1 for texts in items.values())
    assert all(len(texts) == 3 for texts in joint[0]["videokr_eval_single_frame"].values())

    # A single run of seed 1 finds the answers the joint pass cached for it: nothing is generated.
    again = sampled(model_dir, tmp_path / "cache", seed=1, runs=1)
    run_eval(again, TASKS, dataset=str(repo), output_dir=tmp_path / "again", max_samples=SAMPLES)
    assert again.calls == []
    assert answers(tmp_path / "again") == joint[1]


def test_videokr_eval_runs_write_one_results_file_per_seed(
    repo: Path, model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Under the official decoding (temperature 0.1, top-p 0.001) the runs agree wherever no two tokens tie,
    so on this model the three results are the same; the summary reports mean ± std over them."""
    out = tmp_path / "results"
    code = eval_command(
        str(model_dir),
        tasks=["videokr_eval"],
        dataset=str(repo),
        output_dir=out,
        max_frames=4,
        max_new_tokens=6,
        batch_size=2,
        max_samples=SAMPLES,
        cache_dir=tmp_path / "cache",
        device="cpu",
        runs=RUNS,
        seed=5,
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert f"mean ± std over {RUNS} runs:" in printed
    files = sorted(out.rglob("results_*.json"))
    assert len(files) == RUNS
    configs: list[dict[str, Any]] = [
        json.loads(f.read_text())["config_general"]["model_config"] for f in files
    ]
    assert sorted(c["seed"] for c in configs) == [5, 6, 7]
    texts = [answers_of(out, f) for f in files]
    assert texts[0] == texts[1] == texts[2]


def answers_of(out: Path, results_file: Path) -> list[list[str]]:
    """The answers in the details written beside `results_file` (same run timestamp)."""
    stamp = results_file.stem.removeprefix("results_")
    (path,) = out.rglob(f"details_videokr_eval|0_{stamp}.parquet")
    details = pd.read_parquet(path).sort_values("doc", key=lambda d: d.map(lambda doc: doc["specific"]["id"]))
    return [list(response["text"]) for response in details["model_response"]]
