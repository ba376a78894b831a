"""The training scripts as a user runs them: `accelerate launch train/{sft,grpo}.py` on a tiny checkpoint
and the sample datasets, a couple of steps on CPU, then the saved folder reloads with the Auto classes.
Also: the recipes parse into the scripts' argument classes with the paper's hyper-parameters, and the
accelerate configs load.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from training_fixtures import SAMPLING_ARGS, rl_folder, sft_folder, tiny_dirs
from transformers import AutoModelForImageTextToText, AutoProcessor
from trl import GRPOConfig, ModelConfig, SFTConfig, TrlParser

from videokr.models.tiny import ARCHES
from videokr.training import VideoArguments, vision_parts

__all__ = ["rl_folder", "sft_folder", "tiny_dirs"]  # module fixtures, imported so pytest finds them here

ROOT = Path(__file__).resolve().parents[1]
RECIPES = sorted((ROOT / "train" / "recipes").glob("*/*.yaml"))
ACCELERATE_CONFIGS = sorted((ROOT / "train" / "accelerate").glob("*.yaml"))
# No GPU here: bf16 off and CPU forced; nothing reported, nothing saved but the final model.
COMMON = ["--bf16", "false", "--use_cpu", "true", "--report_to", "none", "--save_strategy", "no"]
COMMON += ["--seed", "0"]


def launch(script: str, args: list[str]) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--num_processes",
        "1",
        "--num_machines",
        "1",
        "--cpu",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        str(ROOT / "train" / script),
        *args,
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    return result


def reload(out: Path, arch: str) -> Any:
    model = AutoModelForImageTextToText.from_pretrained(out)
    processor = AutoProcessor.from_pretrained(out)
    assert model.config.model_type == arch
    assert processor.tokenizer.convert_tokens_to_ids("<|video_pad|>") == model.config.video_token_id
    return model


def same(a: list[torch.nn.Parameter], b: list[torch.nn.Parameter]) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("arch", ARCHES)
def test_sft_script_trains_and_saves_a_reloadable_checkpoint(
    arch: str, tiny_dirs: dict[str, Path], sft_folder: Path, tmp_path: Path
) -> None:
    out = tmp_path / "sft"
    args = ["--model_name_or_path", str(tiny_dirs[arch]), "--dataset", str(sft_folder), *SAMPLING_ARGS]
    args += ["--max_samples", "4", "--per_device_train_batch_size", "2", "--max_steps", "2"]
    args += ["--learning_rate", "1e-3", "--output_dir", str(out), *COMMON]
    launch("sft.py", args)

    trained, initial = reload(out, arch), AutoModelForImageTextToText.from_pretrained(tiny_dirs[arch])
    # Recipe default: vision tower and projector frozen, so they are saved bit-equal; the LM moved.
    tower, projector = vision_parts(trained)
    tower0, projector0 = vision_parts(initial)
    assert same(tower, tower0) and same(projector, projector0)
    assert not same(list(trained.lm_head.parameters()), list(initial.lm_head.parameters()))


@pytest.mark.parametrize("arch", ARCHES)
def test_grpo_script_trains_and_saves_a_reloadable_checkpoint(
    arch: str, tiny_dirs: dict[str, Path], rl_folder: Path, tmp_path: Path
) -> None:
    out = tmp_path / "grpo"
    args = ["--model_name_or_path", str(tiny_dirs[arch]), "--dataset", str(rl_folder), *SAMPLING_ARGS]
    args += ["--max_samples", "4", "--per_device_train_batch_size", "4", "--num_generations", "4"]
    args += ["--max_completion_length", "8", "--beta", "0.01", "--max_steps", "1", "--logging_steps", "1"]
    args += ["--output_dir", str(out), *COMMON]
    result = launch("grpo.py", args)
    # Both paper reward terms were computed and logged.
    assert "rewards/accuracy_reward/mean" in result.stdout + result.stderr
    assert "rewards/format_reward/mean" in result.stdout + result.stderr
    reload(out, arch)


def parse(recipe: Path) -> tuple[VideoArguments, Any, ModelConfig]:
    config = SFTConfig if recipe.stem == "sft" else GRPOConfig
    # bf16 is off only because this machine has no GPU; every other value is the recipe's.
    return TrlParser((VideoArguments, config, ModelConfig)).parse_args_and_config(
        args=["--config", str(recipe), "--bf16", "false"]
    )


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_recipes_hold_the_paper_hyper_parameters(recipe: Path) -> None:
    video, training, model = parse(recipe)
    assert (video.fps, video.max_frames, video.max_pixels) == (2.0, 128, 100_352)
    assert training.lr_scheduler_type == "cosine" and training.warmup_steps == 0.02
    assert training.num_train_epochs == 1 and training.activation_checkpointing
    assert model.dtype == "bfloat16"
    per_optimizer_step = training.per_device_train_batch_size * training.gradient_accumulation_steps * 8
    if recipe.stem == "sft":
        assert training.learning_rate == 1e-5 and per_optimizer_step == 32
        assert video.freeze_vision_tower and video.freeze_projector
    else:
        assert training.learning_rate == 5e-6
        assert (training.num_generations, training.temperature, training.beta) == (8, 1.0, 0.01)
        assert training.max_completion_length == 2048 and training.reward_weights == [0.9, 0.1]
        assert per_optimizer_step == 32 * training.num_generations  # 32 prompts × 8 completions
        assert training.steps_per_generation == training.gradient_accumulation_steps


@pytest.mark.parametrize("config", ACCELERATE_CONFIGS, ids=lambda p: p.stem)
def test_accelerate_configs_load(config: Path) -> None:
    from accelerate.commands.config.config_args import load_config_from_file

    loaded = load_config_from_file(str(config))
    expected = {
        "single_gpu": "NO",
        "ddp": "MULTI_GPU",
        "zero2": "DEEPSPEED",
        "zero3": "DEEPSPEED",
        "fsdp2": "FSDP",
    }[config.stem]
    assert loaded.distributed_type == expected
    if expected == "DEEPSPEED":
        assert loaded.deepspeed_config["zero_stage"] == int(config.stem[-1])
    if expected == "FSDP":
        assert loaded.fsdp_config["fsdp_version"] == 2
