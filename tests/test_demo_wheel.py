"""`videokr demo` trains from an installed wheel: its training launch is ``accelerate launch -m
videokr.training.…``, a module of the package, so nothing depends on the repository's `train/` folder.

The wheel is built offline from a copy of the sources (no build isolation: setuptools comes from this
environment), installed into a folder of its own, and put first on ``PYTHONPATH``; the demo's own launcher
then runs one SFT step from a working directory outside the repository.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from training_fixtures import SAMPLING_ARGS, sft_folder

from videokr.demo import launch_command

__all__ = ["sft_folder"]  # module fixture, imported so pytest finds it here

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("videokr", "videokr_sft", "videokr_rl", "videokr_eval")
PIP = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", "-q"]


def test_the_demo_launches_training_as_package_modules() -> None:
    for script in ("sft", "grpo"):
        command = launch_command(script, ["--output_dir", "x"])
        assert command[command.index("-m", 2) + 1] == f"videokr.training.{script}"
        assert not any("train/" in part or part.endswith(".py") for part in command)


def build_wheel(tmp_path: Path) -> Path:
    """The project's wheel, built offline from a copy of its sources (the repository is left untouched)."""
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    for package in PACKAGES:
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    dist = tmp_path / "dist"
    subprocess.run(
        [*PIP, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(dist), str(source)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    (wheel,) = dist.glob("videokr-*.whl")
    return wheel


def test_demo_training_runs_from_an_installed_wheel(sft_folder: Path, tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path)
    names = zipfile.ZipFile(wheel).namelist()
    assert "videokr/training/sft.py" in names and "videokr/training/grpo.py" in names
    assert "videokr/sample/assets/real/clips.json" in names  # package data the demo's corpus reads
    assert not any(name.startswith("train/") for name in names)

    site = tmp_path / "site"
    subprocess.run(
        [*PIP, "install", "--no-deps", "--no-index", "--target", str(site), str(wheel)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    work = tmp_path / "work"
    (work / "logs").mkdir(parents=True)
    from videokr.models.tiny import save_tiny_model

    base = save_tiny_model("qwen2_5_vl", tmp_path / "base")
    out = tmp_path / "sft"
    args = ["--model_name_or_path", str(base), "--dataset_name", str(sft_folder), *SAMPLING_ARGS]
    args += ["--max_samples", "2", "--per_device_train_batch_size", "2", "--max_steps", "1"]
    args += ["--output_dir", str(out), "--bf16", "false", "--use_cpu", "true", "--report_to", "none"]
    args += ["--save_strategy", "no"]
    # The installed copy comes first on the path, in this process and in the ones the launcher starts.
    check = (
        "import sys, videokr.demo as demo; "
        f"assert demo.__file__.startswith({str(site)!r}), demo.__file__; "
        f"demo._launch('sft', {args!r}, demo.Path({str(work / 'logs' / 'sft.log')!r}))"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    result = subprocess.run(
        [sys.executable, "-c", check], cwd=work, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    assert (out / "model.safetensors").is_file()
