"""Evaluation loses nothing and reuses nothing stale: answers are cached per item as they are produced and
keyed by the weights themselves, and an unreadable clip is a counted item, not an aborted run.

The model is the real lighteval model class with its network scripted (tests/eval_fixtures.py); tasks,
request building, frame decoding, the prediction cache and the metric are the real code.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
from eval_fixtures import eval_rows, model_dir, repo, scripted_model

from videokr.evaluation.inputs import GenerationRequest
from videokr.evaluation.run import run_eval

__all__ = ["model_dir", "repo"]  # module fixtures, imported so pytest finds them here


def weights_folder(path: Path, fill: bytes) -> Path:
    """A checkpoint folder as far as the cache's identity is concerned: config and weight bytes."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text('{"model_type": "qwen2_5_vl"}')
    (path / "model.safetensors").write_bytes(fill * (6 << 20))  # 6 MiB: sampled, not read whole
    return path


def answer(request: GenerationRequest) -> str:
    return "<answer>A</answer>"


def test_a_model_retrained_in_place_is_evaluated_again(repo: Path, model_dir: Path, tmp_path: Path) -> None:
    checkpoint = weights_folder(tmp_path / "ckpt", b"a")
    cache = tmp_path / "cache"
    items = len(eval_rows(repo))

    def evaluate() -> int:
        model = scripted_model(model_dir, cache, answer, name=str(checkpoint))
        run_eval(model, ["videokr_eval_text_only"], dataset=str(repo), output_dir=tmp_path / "out")
        return len(model.received)

    assert evaluate() == items
    assert evaluate() == 0  # same weights: every answer comes from the cache
    # Retrained in place: same path, same size, every tensor moved (a stale cache would answer it all).
    weights_folder(checkpoint, b"b")
    assert evaluate() == items


def test_an_interrupted_evaluation_resumes_and_asks_each_item_once(
    repo: Path, model_dir: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    asked: list[str] = []

    def dies_on_the_fifth_item(request: GenerationRequest) -> str:
        if len(asked) == 4:
            raise KeyboardInterrupt  # what a killed run looks like from inside
        asked.append(request.item_id)
        return answer(request)

    first = scripted_model(model_dir, cache, dies_on_the_fifth_item)
    with pytest.raises(KeyboardInterrupt):
        run_eval(first, ["videokr_eval_text_only"], dataset=str(repo), output_dir=tmp_path / "out")
    second = scripted_model(model_dir, cache, answer)
    run = run_eval(second, ["videokr_eval_text_only"], dataset=str(repo), output_dir=tmp_path / "out")

    again = [request.item_id for request in second.received]
    everything = {row["id"] for row in eval_rows(repo)}
    assert len(asked) == 4 and not set(asked) & set(again)  # what was answered was not asked again
    assert set(asked) | set(again) == everything and len(again) == len(set(again))
    assert run.task_metrics()["videokr_eval_text_only"]["n_items"] == len(everything)


def test_an_unreadable_clip_is_a_counted_item_not_an_aborted_run(
    repo: Path, model_dir: Path, tmp_path: Path
) -> None:
    broken_repo = tmp_path / "VideoKR-Eval-broken"
    shutil.copytree(repo, broken_repo)
    rows = pd.read_parquet(broken_repo / "test" / "metadata.parquet")
    clip = rows["file_name"].iloc[0]
    (broken_repo / "test" / clip).write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"not a video" * 64)
    hit = set(rows.loc[rows["file_name"] == clip, "id"])
    cache = tmp_path / "cache"

    model = scripted_model(model_dir, cache, answer)
    run = run_eval(model, ["videokr_eval"], dataset=str(broken_repo), output_dir=tmp_path / "out")
    metrics = run.task_metrics()["videokr_eval"]
    assert metrics["n_items"] == len(rows) and metrics["unreadable"] == len(hit)
    assert {item for item, _ in model.unreadable} == hit
    assert all(clip.split("/")[-1] in reason for _, reason in model.unreadable)
    assert not {request.item_id for request in model.received} & hit

    # Not cached: the next run asks for exactly those items again (the clip may have been fixed).
    rerun = scripted_model(model_dir, cache, answer)
    run_eval(rerun, ["videokr_eval"], dataset=str(broken_repo), output_dir=tmp_path / "out")
    assert {request.item_id for request in rerun.received} == set() and {
        i for i, _ in rerun.unreadable
    } == hit
    assert os.path.isdir(cache)
