"""`bench/gpu_proof.sh`, the one prepared command of the GPU proof run, end to end on CPU (``--cpu-dry-run``):
every part runs on the tiny configs, with the installed packages the GPU machine would not have hidden, and
lands in the one JSON with its figures; a part that fails (or has no time left) is recorded as such, with its
error, and makes the script exit non-zero. The wheel list in the script's header is the one it fetches, at
the versions of constraints.txt."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "gpu_proof.sh"
PARTS = ["setup", "data", "sft", "grpo", "train_step_32", "train_step_128", "eval", "rollout"]


def dry_run(tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    out = tmp_path / "out"
    scratch = tmp_path / "tmp"  # the script's work folder (datasets, checkpoints) goes under TMPDIR
    scratch.mkdir()
    result = subprocess.run(
        ["bash", str(SCRIPT), "--cpu-dry-run"],
        cwd=ROOT,
        env={**os.environ, "OUT": str(out), "TMPDIR": str(scratch), "PYTHON": sys.executable, **env},
        capture_output=True,
        text=True,
        timeout=600,
    )
    report = out / "gpu_proof.json"
    assert report.is_file(), result.stdout[-3000:] + result.stderr[-3000:]
    assert not list(scratch.glob("gpu-proof.*")), "the work folder is removed at exit"
    return result, json.loads(report.read_text())


@pytest.fixture(scope="module")
def full_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], dict]:
    return dry_run(tmp_path_factory.mktemp("gpu-proof"))


def test_dry_run_writes_every_parts_figures(full_run: tuple[subprocess.CompletedProcess[str], dict]) -> None:
    result, report = full_run
    logs = result.stdout[-4000:] + result.stderr[-4000:]
    assert result.returncode == 0, logs
    assert report["mode"] == "cpu" and report["failed"] == [], logs
    assert list(report["parts"]) == PARTS
    parts = {name: part["figures"] for name, part in report["parts"].items()}
    statuses = {name: part["status"] for name, part in report["parts"].items()}
    assert statuses == {**dict.fromkeys(PARTS, "ok"), "eval": "skipped"}, logs

    setup = parts["setup"]
    assert setup["versions"]["transformers"] and setup["versions"]["trl"] and setup["versions"]["av"]
    # What the GPU machine lacks and does not get is hidden: the clips decode with PyAV, as they will there.
    assert setup["video_backends"] == ["pyav"]
    assert {"torchcodec", "decord", "lighteval"} <= set(setup["hidden"])

    data = parts["data"]
    assert data["sft_rows"] > 0 and data["rl_rows"] > 0 and data["checkpoint"] == "tiny"

    for script in ("sft", "grpo"):  # accelerate launch -m videokr.training.<script> --config <recipe>
        figures = parts[script]
        assert figures["logged_steps"] >= 1 and figures["saved"], (script, figures)
        assert isinstance(figures["first_loss"], float) and "train_runtime" in figures
    assert parts["sft"]["logged_steps"] == 2
    assert "reward" in parts["grpo"] and "rollout/decode_s" in parts["grpo"]

    for name in ("train_step_32", "train_step_128"):
        video = parts[name]["sft"]["video"]
        assert video["seconds"] > 0 and video["tokens"] > 0
        assert {"tflops", "mfu", "mfu_vs_matmul", "peak_gb"} <= set(video)
        assert parts[name]["config"]["matmul_tflops"] > 0 and "update" in parts[name]["grpo"]
    assert parts["train_step_128"]["config"]["frames"] > parts["train_step_32"]["config"]["frames"]

    rows = {row["label"]: row for row in parts["rollout"]["rows"]}
    assert {"generate", "videokr dynamic", "videokr static"} <= set(rows)
    for label in ("videokr dynamic", "videokr static"):
        assert rows[label]["x_generate"] > 0 and rows[label]["floor_share"] > 0
    assert parts["rollout"]["config"]["sequences"] == 8

    assert "lighteval" in report["parts"]["eval"]["reason"]
    table = result.stdout
    assert all(re.search(rf"^{name}\s+(ok|skipped)\s", table, re.M) for name in PARTS), table
    assert "wrote " in table


def test_a_failed_part_is_recorded_and_fails_the_run(tmp_path: Path) -> None:
    # rollout runs a module that does not exist; setup gets a 3 s share, too little to start in.
    env = {"GPU_PROOF_PARTS": "setup,rollout", "GPU_PROOF_FAIL": "rollout", "GPU_PROOF_SHARE_setup": "3"}
    result, report = dry_run(tmp_path, **env)
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    parts = report["parts"]
    assert report["failed"] == ["setup", "rollout"]
    assert parts["rollout"]["status"] == "failed" and parts["rollout"]["rc"] != 0
    assert "No module named bench.gpu_proof_forced_failure" in parts["rollout"]["error"]
    assert parts["setup"]["status"] == "timeout" and "no time left" in parts["setup"]["error"]
    for name in set(PARTS) - {"setup", "rollout"}:
        assert parts[name]["status"] == "skipped" and parts[name]["figures"] == {}
    assert "FAILED: setup, rollout" in result.stdout


def test_the_header_lists_the_wheels_the_script_fetches_at_the_pinned_versions() -> None:
    text = SCRIPT.read_text(encoding="utf-8")
    pinned = dict(
        line.lower().split("==")
        for line in (ROOT / "constraints.txt").read_text().splitlines()
        if "==" in line
    )
    download = text[text.index("#   python3 -m pip download") : text.index("#   python3 -m pip wheel")]
    built = re.findall(r"pip wheel --no-deps -w \.whl (\S+)==(\S+)", text)
    fetched = dict(re.findall(r"([A-Za-z0-9_.-]+)==([0-9][^\s\\]*)", download)) | dict(built)
    carried = re.search(r"^CARRIED=\((.*)\)", text, re.M).group(1).split()
    wheels = set(carried) | set(re.search(r"^BUILT=\((\S+)\)", text, re.M).group(1).split())
    assert set(fetched) == wheels
    for name, version in fetched.items():
        if name == "torchvision":  # the build for the GPU machine's torch 2.11, not the project's
            assert version == "0.26.0"
        else:
            assert pinned[name.lower()] == version, name
    assert "torch" not in fetched  # the GPU machine's own torch stays
