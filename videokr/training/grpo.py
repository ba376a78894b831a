"""GRPO of Qwen2.5-VL / Qwen3-VL on VideoKR-RL with TRL, the clip in every rollout and every log-prob.

    accelerate launch --config_file train/accelerate/zero3.yaml -m videokr.training.grpo \\
        --config train/recipes/qwen2_5_vl_7b/grpo.yaml

Reward functions are named in the config (``reward_funcs``, from `videokr.training.rewards.REWARD_FUNCS`).
The default is the paper's reward, 0.9 × accuracy + 0.1 × format, as two logged functions
``[accuracy, format]`` whose ``reward_weights`` default to ``[0.9, 0.1]``; any other choice is weighted as
TRL weighs it (``reward_weights``, else 1 each). Options: `VideoScriptArguments`, `VideoGRPOConfig` (TRL's
``GRPOConfig`` plus rollouts and rewards) and ``ModelConfig``, from the recipe and the command line. The
trainer is `VideoGRPOTrainer` (`videokr.training.grpo_trainer`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from trl import ModelConfig

from videokr.training.args import VideoGRPOConfig, VideoScriptArguments
from videokr.training.data import load_video_dataset, streaming_trainer_args, to_grpo_rows
from videokr.training.grpo_trainer import VideoGRPOTrainer
from videokr.training.launch import run_script
from videokr.training.model import prepare_start
from videokr.training.rewards import PAPER_REWARD_FUNCS, REWARD_WEIGHTS, reward_functions

__all__ = ["cli", "main", "reward_setup"]

logger = logging.getLogger(__name__)


def reward_setup(training_args: VideoGRPOConfig) -> list[Callable[..., list[float]]]:
    """The reward functions ``training_args.reward_funcs`` names; for the paper's ``[accuracy, format]``
    with no ``reward_weights`` given, the weights become the paper's ``[0.9, 0.1]``."""
    funcs = reward_functions(training_args.reward_funcs)
    if training_args.reward_weights is None and tuple(training_args.reward_funcs) == PAPER_REWARD_FUNCS:
        training_args.reward_weights = list(REWARD_WEIGHTS)
    weights = training_args.reward_weights or "1 each"
    logger.info("rewards: %s, weights %s", training_args.reward_funcs, weights)
    return funcs


def main(script_args: VideoScriptArguments, training_args: VideoGRPOConfig, model_args: ModelConfig) -> None:
    """Train on ``script_args.dataset_name`` and save the model and processor to ``output_dir``."""
    if not script_args.dataset_name:
        raise ValueError("no dataset: set dataset_name (a Hub id or a folder built with `videokr build rl`)")
    # Reward functions read `answer`, `problem_type` and `options`; the trainer reads `id` and `video`.
    training_args.remove_unused_columns = False
    reward_funcs = reward_setup(training_args)

    # Left padding: prompts are batched for generation.
    start = prepare_start(script_args, training_args, model_args, padding_side="left")

    dataset = load_video_dataset(
        script_args.dataset_name,
        script_args.dataset_train_split,
        skills=script_args.skills,
        max_samples=script_args.max_samples,
        streaming=script_args.dataset_streaming,
    )
    if script_args.dataset_streaming:
        streaming_trainer_args(training_args)
    dataset = to_grpo_rows(dataset, style=script_args.prompt_style or "rl")

    trainer = VideoGRPOTrainer(
        model=start.model,
        reward_funcs=reward_funcs,
        args=training_args,
        train_dataset=dataset,
        processing_class=start.processor,
        peft_config=start.peft_config,
        sampling=script_args.sampling(),
    )
    trainer.train(resume_from_checkpoint=start.resume)

    # Writes the model (gathered under ZeRO-3 / FSDP) and the processor into one folder, so
    # AutoModelForImageTextToText / AutoProcessor.from_pretrained(output_dir) reload it.
    trainer.save_model(training_args.output_dir)
    # trainer_state.json beside the model: the logged loss, rewards and learning rate per step (the
    # curves a user plots), whatever save_strategy was.
    trainer.save_state()


def cli(args: list[str] | None = None) -> None:
    """Parse ``--config <recipe>`` and command-line overrides, then run `main` (errors: one line)."""
    run_script(main, (VideoScriptArguments, VideoGRPOConfig, ModelConfig), args)


if __name__ == "__main__":
    cli()
