"""A real tiny Qwen2.5-VL through lighteval: the way ``lighteval custom`` loads our files, then
``videokr eval`` end to end, writing results and per-item details whose recorded input tokens show the
model got a video, one image, or no visual input."""

from __future__ import annotations

import ast
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from eval_fixtures import model_dir, repo

from videokr.evaluation.compat import ensure_registry_importable, import_pipeline
from videokr.evaluation.run import eval_command

__all__ = ["model_dir", "repo"]  # module fixtures, imported so pytest finds them here

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = 4


def test_lighteval_custom_loads_our_model_and_task_files(model_dir: Path, tmp_path: Path) -> None:
    ensure_registry_importable()
    import_pipeline()  # before model_loader: lighteval would otherwise switch autograd off at import
    from lighteval.models.custom.custom_model import CustomModelConfig
    from lighteval.models.model_loader import load_model
    from lighteval.tasks.registry import Registry

    name = (
        f"model_name={model_dir},max_frames=8,fps=1,cache_dir={tmp_path},"
        "generation_parameters={max_new_tokens:16}"
    )
    model = load_model(
        CustomModelConfig(model_name=name, model_definition_file_path=str(ROOT / "eval/videokr_model.py"))
    )
    assert type(model).__name__ == "VideoLightevalModel"
    config = model.config
    assert (config.model_name, config.max_frames, config.fps) == (str(model_dir), 8, 1.0)
    # Asking for fewer tokens keeps the paper's temperature rather than falling back to greedy.
    assert (config.generation_parameters.max_new_tokens, config.generation_parameters.temperature) == (
        16,
        0.1,
    )

    registry = Registry(custom_tasks=str(ROOT / "eval/videokr_tasks.py"))
    names = {n for n in registry._task_registry if n.startswith("videokr_eval")}
    assert names == {
        "videokr_eval",
        "videokr_eval_single_frame",
        "videokr_eval_text_only",
        "videokr_eval_mmvu",
        "videokr_eval_videommmu",
        "videokr_eval_scivideobench",
    }


def _details(out: Path, task: str) -> pd.DataFrame:
    (path,) = out.rglob(f"details_{task}|0_*.parquet")
    return pd.read_parquet(path)


def test_videokr_eval_runs_the_tiny_model_and_writes_results_and_details(
    repo: Path, model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from transformers import AutoTokenizer

    out = tmp_path / "results"
    code = eval_command(
        str(model_dir),
        tasks=["videokr_eval", "videokr_eval_single_frame", "videokr_eval_text_only"],
        dataset=str(repo),
        output_dir=out,
        max_frames=4,
        max_new_tokens=8,
        batch_size=2,
        max_samples=SAMPLES,
        cache_dir=tmp_path / "cache",
    )
    assert code == 0
    assert torch.is_grad_enabled()  # importing lighteval's pipeline must not switch autograd off
    printed = capsys.readouterr().out
    assert "videokr_eval: acc" in printed and "results: " in printed

    (results_file,) = out.rglob("results_*.json")
    results = json.loads(results_file.read_text())
    assert results["config_general"]["model_config"]["max_frames"] == 4
    for task in ("videokr_eval", "videokr_eval_single_frame", "videokr_eval_text_only"):
        metrics = results["results"][f"{task}|0"]
        assert metrics["n_items"] == SAMPLES and 0.0 <= metrics.get("acc", 0.0) <= 1.0

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    ids = {
        t: tokenizer.convert_tokens_to_ids(t) for t in ("<|vision_start|>", "<|video_pad|>", "<|image_pad|>")
    }

    def counts(row: pd.Series) -> tuple[int, int, int]:
        tokens = list(row["model_response"]["input_tokens"])
        return tuple(tokens.count(ids[t]) for t in ("<|vision_start|>", "<|video_pad|>", "<|image_pad|>"))

    for task, trials, check in (
        ("videokr_eval", 1, lambda s, v, i: s == 1 and v > 0 and i == 0),
        ("videokr_eval_single_frame", 3, lambda s, v, i: s == 1 and v == 0 and i > 0),
        ("videokr_eval_text_only", 1, lambda s, v, i: s == 0 and v == 0 and i == 0),
    ):
        details = _details(out, task)
        assert len(details) == SAMPLES
        for _, row in details.iterrows():
            assert len(row["model_response"]["text"]) == trials
            assert check(*counts(row)), (task, counts(row))
            assert row["metric"]["videokr"]["trials"] == trials


def documented_command() -> list[str]:
    """The command line of eval/videokr_tasks.py's docstring, as a user would paste it."""
    doc = ast.get_docstring(ast.parse((ROOT / "eval/videokr_tasks.py").read_text()))
    lines = doc.split("\n\n")[1].splitlines()
    return shlex.split(" ".join(line.strip().rstrip("\\") for line in lines))


def test_the_documented_lighteval_command_line_runs_offline_as_written(
    repo: Path, model_dir: Path, tmp_path: Path
) -> None:
    """The command in eval/videokr_tasks.py's docstring, read from there and run offline with only the
    model and the output folder swapped for local ones and two items per task: lighteval's own ``custom``
    command with our two files, without the nltk download errors lighteval's IFEval module prints at
    import (no nltk data here)."""
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "VIDEOKR_EVAL_DATASET": str(repo),
        "NLTK_DATA": str(tmp_path / "no-nltk-data"),
    }
    command = documented_command()
    assert command[:4] == ["python", "-m", "videokr.evaluation.lighteval_cli", "custom"]
    assert command[4] == "model_name=Qwen/Qwen2.5-VL-7B-Instruct"
    command[0] = sys.executable
    command[4] = (
        f"model_name={model_dir},max_frames=4,cache_dir={tmp_path / 'cache'},"
        "generation_parameters={max_new_tokens:4}"
    )
    command[command.index("--output-dir") + 1] = str(tmp_path / "out")
    command += ["--max-samples", "2"]
    done = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "nltk_data" not in done.stdout + done.stderr
    (results_file,) = (tmp_path / "out").rglob("results_*.json")
    results = json.loads(results_file.read_text())["results"]
    for task in ("videokr_eval", "videokr_eval_single_frame", "videokr_eval_text_only"):
        assert results[f"{task}|0"]["n_items"] == 2
