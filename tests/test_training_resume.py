"""Training resumes exactly: a run killed with SIGKILL after a checkpoint, resumed with
``--resume_from_checkpoint true``, ends with the weights and the logged losses of an uninterrupted run.

Also the option's meaning (`videokr.training.resume`): the last *complete* checkpoint, a given path that
must exist, and a fresh run that refuses to overwrite checkpoints.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file
from training_fixtures import SAMPLING_ARGS, rl_folder, sft_folder, tiny_dirs

from videokr.training.resume import ResumeError, checkpoint_to_resume, complete_checkpoints

__all__ = ["rl_folder", "sft_folder", "tiny_dirs"]  # module fixtures, imported so pytest finds them here

STEPS = 6
COMMON = ["--bf16", "false", "--use_cpu", "true", "--report_to", "none", "--seed", "0"]
COMMON += ["--save_strategy", "steps", "--save_steps", "1", "--logging_steps", "1", "--max_steps", str(STEPS)]


def command(module: str, args: list[str]) -> list[str]:
    launch = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--num_processes",
        "1",
        "--num_machines",
        "1",
    ]
    launch += ["--cpu", "--mixed_precision", "no", "--dynamo_backend", "no"]
    return [*launch, "-m", module, *args]


ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def run(module: str, args: list[str]) -> None:
    done = subprocess.run(command(module, args), env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]


def run_and_kill_after_a_checkpoint(module: str, args: list[str], out: Path) -> None:
    """Start the run in its own process group and SIGKILL the group once a checkpoint is complete."""
    process = subprocess.Popen(
        command(module, args),
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    try:
        while not complete_checkpoints(out):
            assert process.poll() is None, "the run ended before its first checkpoint"
            assert time.monotonic() < deadline, "no checkpoint within 300 s"
            time.sleep(0.02)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def losses(out: Path) -> list[tuple[int, float]]:
    state = json.loads((complete_checkpoints(out)[-1] / "trainer_state.json").read_text())
    return [(entry["step"], entry["loss"]) for entry in state["log_history"] if "loss" in entry]


@pytest.mark.parametrize("kind", ["sft", "grpo"])
def test_a_killed_run_resumed_ends_where_an_uninterrupted_run_does(
    kind: str, tiny_dirs: dict[str, Path], sft_folder: Path, rl_folder: Path, tmp_path: Path
) -> None:
    module = f"videokr.training.{kind}"
    data = sft_folder if kind == "sft" else rl_folder
    args = ["--model_name_or_path", str(tiny_dirs["qwen2_5_vl"]), "--dataset_name", str(data), *SAMPLING_ARGS]
    args += ["--max_samples", "8", "--learning_rate", "1e-3", *COMMON]
    if kind == "sft":
        args += ["--per_device_train_batch_size", "2"]
    else:
        args += [
            "--per_device_train_batch_size",
            "4",
            "--num_generations",
            "4",
            "--max_completion_length",
            "8",
        ]
        args += ["--beta", "0.01"]

    straight = tmp_path / "straight"
    run(module, [*args, "--output_dir", str(straight)])

    resumed = tmp_path / "resumed"
    run_and_kill_after_a_checkpoint(module, [*args, "--output_dir", str(resumed)], resumed)
    stopped_at = len(complete_checkpoints(resumed))
    assert stopped_at < STEPS and not (resumed / "model.safetensors").exists(), "the run was not interrupted"
    run(module, [*args, "--output_dir", str(resumed), "--resume_from_checkpoint", "true"])

    final, reference = load_file(resumed / "model.safetensors"), load_file(straight / "model.safetensors")
    assert final.keys() == reference.keys()
    for name, tensor in reference.items():
        assert torch.allclose(final[name], tensor, rtol=1e-5, atol=1e-6), name
    got, expected = losses(resumed), losses(straight)
    assert [step for step, _ in got] == [step for step, _ in expected] == list(range(1, STEPS + 1))
    assert [loss for _, loss in got] == pytest.approx([loss for _, loss in expected], rel=1e-5, abs=1e-7)


def _checkpoint(out: Path, step: int, *, complete: bool = True) -> Path:
    folder = out / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    if complete:
        (folder / "trainer_state.json").write_text("{}")
    return folder


def _args(out: Path, resume: object) -> SimpleNamespace:
    return SimpleNamespace(output_dir=str(out), resume_from_checkpoint=resume)


def test_resume_reads_the_option_as_a_user_means_it(tmp_path: Path) -> None:
    out = tmp_path / "run"
    # Nothing there yet: a fresh run; asking to resume is an error, not a silent fresh start.
    assert checkpoint_to_resume(_args(out, None)) is None
    with pytest.raises(ResumeError, match="no complete checkpoint"):
        checkpoint_to_resume(_args(out, "true"))
    with pytest.raises(ResumeError, match="no such checkpoint folder"):
        checkpoint_to_resume(_args(out, str(tmp_path / "checkpoint-7")))

    two = _checkpoint(out, 2)
    _checkpoint(out, 10)
    _checkpoint(out, 12, complete=False)  # killed while saving
    # The last complete one, by step number (not by name: checkpoint-10 sorts before checkpoint-2).
    assert checkpoint_to_resume(_args(out, "true")) == str(out / "checkpoint-10")
    assert checkpoint_to_resume(_args(out, True)) == str(out / "checkpoint-10")
    assert checkpoint_to_resume(_args(out, str(two))) == str(two)
    with pytest.raises(ResumeError, match="incomplete checkpoint"):
        checkpoint_to_resume(_args(out, str(out / "checkpoint-12")))
    # A fresh run would overwrite them: refused, naming the way on.
    for fresh in (None, "false", False):
        with pytest.raises(ResumeError, match="--resume_from_checkpoint true"):
            checkpoint_to_resume(_args(out, fresh))


def test_a_resume_that_cannot_happen_is_one_line_before_anything_loads(tmp_path: Path) -> None:
    """`--resume_from_checkpoint` naming a folder that is not there: exit 2 with one line, no traceback,
    and no model or dataset touched (neither exists here)."""
    args = ["--model_name_or_path", str(tmp_path / "no-model"), "--dataset_name", str(tmp_path / "no-data")]
    args += ["--output_dir", str(tmp_path / "out"), "--resume_from_checkpoint", str(tmp_path / "gone")]
    args += ["--use_cpu", "true", "--bf16", "false", "--report_to", "none"]
    done = subprocess.run(
        [sys.executable, "-m", "videokr.training.sft", *args],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "no such checkpoint folder" in done.stderr and "Traceback" not in done.stderr
