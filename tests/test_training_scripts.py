"""The training scripts as a user runs them, on a tiny checkpoint and the sample datasets, a couple of steps
on CPU, then the saved folder reloads with the Auto classes: SFT through the repository's shim
(`accelerate launch train/sft.py`), GRPO as a module of the package (`accelerate launch -m
videokr.training.grpo`, from a folder outside the repository). Also: the recipes parse into the scripts'
argument classes with the paper's hyper-parameters, bad options fail before any model loads, and the
accelerate configs load.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from training_fixtures import SAMPLING_ARGS, rl_folder, sft_folder, tiny_dirs
from transformers import AutoModelForImageTextToText, AutoProcessor
from trl import ModelConfig, SFTConfig, TrlParser

from videokr.models.tiny import ARCHES
from videokr.training import VideoGRPOConfig, VideoScriptArguments, vision_parts
from videokr.training.rewards import REWARD_FUNCS

__all__ = ["rl_folder", "sft_folder", "tiny_dirs"]  # module fixtures, imported so pytest finds them here

ROOT = Path(__file__).resolve().parents[1]
RECIPES = sorted((ROOT / "train" / "recipes").glob("*/*.yaml"))
ACCELERATE_CONFIGS = sorted((ROOT / "train" / "accelerate").glob("*.yaml"))
# No GPU here: bf16 off and CPU forced; nothing reported, nothing saved but the final model.
COMMON = ["--bf16", "false", "--use_cpu", "true", "--report_to", "none", "--save_strategy", "no"]
COMMON += ["--seed", "0"]


def launch(script: list[str], args: list[str], cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """``accelerate launch SCRIPT ARGS`` on one CPU process; `script` is a file or ``["-m", module]``."""
    command = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1"]
    command += ["--num_machines", "1", "--cpu", "--mixed_precision", "no", "--dynamo_backend", "no"]
    command += [*script, *args]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
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
    args = ["--model_name_or_path", str(tiny_dirs[arch]), "--dataset_name", str(sft_folder), *SAMPLING_ARGS]
    args += ["--max_samples", "4", "--per_device_train_batch_size", "2", "--max_steps", "2"]
    args += ["--learning_rate", "1e-3", "--output_dir", str(out), *COMMON]
    launch([str(ROOT / "train" / "sft.py")], args)

    trained, initial = reload(out, arch), AutoModelForImageTextToText.from_pretrained(tiny_dirs[arch])
    # Recipe default: vision tower and projector frozen, so they are saved bit-equal; the LM moved.
    tower, projector = vision_parts(trained)
    tower0, projector0 = vision_parts(initial)
    assert same(tower, tower0) and same(projector, projector0)
    assert not same(list(trained.lm_head.parameters()), list(initial.lm_head.parameters()))
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    assert any("train_loss" in entry for entry in history)


@pytest.mark.parametrize("arch", ARCHES)
def test_grpo_script_trains_and_saves_a_reloadable_checkpoint(
    arch: str, tiny_dirs: dict[str, Path], rl_folder: Path, tmp_path: Path
) -> None:
    out = tmp_path / "grpo"
    args = ["--model_name_or_path", str(tiny_dirs[arch]), "--dataset_name", str(rl_folder), *SAMPLING_ARGS]
    args += ["--max_samples", "4", "--per_device_train_batch_size", "4", "--num_generations", "4"]
    args += ["--max_completion_length", "8", "--beta", "0.01", "--max_steps", "1", "--logging_steps", "1"]
    args += ["--output_dir", str(out), *COMMON]
    elsewhere = tmp_path / "elsewhere"  # not the repository: the module comes from the installed package
    elsewhere.mkdir()
    result = launch(["-m", "videokr.training.grpo"], args, cwd=elsewhere)
    logs = result.stdout + result.stderr
    # The paper's reward terms, named by default, were computed and logged with the paper's weights.
    assert "rewards/accuracy_reward/mean" in logs and "rewards/format_reward/mean" in logs
    assert "rewards: ['accuracy', 'format'], weights [0.9, 0.1]" in logs
    assert "RuntimeWarning" not in logs  # runpy: the package does not import its script modules
    reload(out, arch)
    # The trainer's log is kept beside the model, whatever save_strategy was: the reward curve's source.
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    assert [entry["step"] for entry in history if "reward" in entry] == [1]


def parse(recipe: Path, *extra: str) -> tuple[VideoScriptArguments, Any, ModelConfig]:
    config = SFTConfig if recipe.stem == "sft" else VideoGRPOConfig
    # bf16 is off only because this machine has no GPU; every other value is the recipe's.
    return TrlParser((VideoScriptArguments, config, ModelConfig)).parse_args_and_config(
        args=["--config", str(recipe), "--bf16", "false", *extra]
    )


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_recipes_hold_the_paper_hyper_parameters(recipe: Path) -> None:
    video, training, model = parse(recipe)
    kind = {"sft": "SFT-201K", "grpo": "RL-114K"}[recipe.stem]
    assert (video.dataset_name, video.dataset_train_split) == (f"out/hub/VideoKR-{kind}", "train")
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
        assert training.reward_funcs == ["accuracy", "format"]
        assert training.rollout_engine == "videokr" and training.rollout().cache == "static"
        assert per_optimizer_step == 32 * training.num_generations  # 32 prompts × 8 completions
        assert training.steps_per_generation == training.gradient_accumulation_steps


def test_recipe_fields_override_on_the_command_line() -> None:
    recipe = ROOT / "train" / "recipes" / "qwen2_5_vl_7b" / "grpo.yaml"
    extra = ["--dataset_name", "org/VideoKR-RL", "--reward_funcs", "videokr", "--reward_weights", "1.0"]
    video, training, _ = parse(recipe, *extra, "--rollout_engine", "generate", "--num_frames", "32")
    assert video.dataset_name == "org/VideoKR-RL" and video.sampling().num_frames == 32
    assert training.reward_funcs == ["videokr"] and training.reward_weights == [1.0]
    assert training.rollout_engine == "generate"
    assert video.prompt_style is None  # each script then asks in its stage's official layout
    video, _, _ = parse(recipe, *extra, "--prompt_style", "eval")
    assert video.prompt_style == "eval"


def test_grpo_script_names_the_rewards_and_weighs_only_the_paper_pair(tmp_path: Path) -> None:
    from videokr.training.grpo import reward_setup
    from videokr.training.rewards import accuracy_reward, format_reward, videokr_reward

    def config(**fields: Any) -> VideoGRPOConfig:
        return VideoGRPOConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, report_to="none", **fields)

    paper = config()
    assert reward_setup(paper) == [accuracy_reward, format_reward] and paper.reward_weights == [0.9, 0.1]
    kept = config(reward_weights=[0.5, 0.5])
    reward_setup(kept)
    assert kept.reward_weights == [0.5, 0.5]
    single = config(reward_funcs=["videokr"])
    assert reward_setup(single) == [videokr_reward] and single.reward_weights is None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"reward_funcs": ["accuracy", "length"]}, r"unknown reward function\(s\) \['length'\]"),
        ({"reward_funcs": []}, "reward_funcs is empty"),
        ({"reward_weights": [1.0]}, r"1 reward_weights for 2 reward_funcs"),
        ({"rollout_engine": "vllm"}, "rollout_engine must be"),
        ({"rollout_cache": "dynamic", "rollout_compile": True}, "compiled decoding needs the static cache"),
    ],
    ids=["unknown-reward", "no-reward", "weights", "engine", "cache"],
)
def test_grpo_config_refuses_bad_options_before_any_model_loads(
    fields: dict[str, Any], message: str, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match=message) as error:
        VideoGRPOConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, report_to="none", **fields)
    if "unknown" in message:
        assert all(name in str(error.value) for name in REWARD_FUNCS)


def test_script_arguments_refuse_what_the_scripts_do_not_do() -> None:
    assert VideoScriptArguments(dataset_name="x").sampling().fps == 2.0
    with pytest.raises(ValueError, match="dataset_config"):
        VideoScriptArguments(dataset_name="x", dataset_config="default")


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
