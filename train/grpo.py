"""GRPO of Qwen2.5-VL / Qwen3-VL on VideoKR-RL with TRL, the clip in every rollout and every log-prob.

    accelerate launch --config_file train/accelerate/zero3.yaml train/grpo.py \
        --config train/recipes/qwen2_5_vl_7b/grpo.yaml

Rewards are the paper's: 0.9 × accuracy + 0.1 × format, as two logged reward functions with weights
[0.9, 0.1] (`videokr.training.rewards`, the official rule of `videokr.data.answer_format`).
"""

from __future__ import annotations

import logging

from transformers import AutoModelForImageTextToText, AutoProcessor
from trl import GRPOConfig, ModelConfig, TrlParser, get_peft_config

from videokr.training import VideoArguments, freeze_vision, load_video_dataset, to_grpo_rows
from videokr.training.grpo import VideoGRPOTrainer
from videokr.training.rewards import REWARD_WEIGHTS, reward_functions

logger = logging.getLogger("videokr.train.grpo")


def main(video_args: VideoArguments, training_args: GRPOConfig, model_args: ModelConfig) -> None:
    # Reward functions read `answer`, `problem_type` and `options`; the trainer reads `id` and `video`.
    training_args.remove_unused_columns = False
    if training_args.reward_weights is None:
        training_args.reward_weights = list(REWARD_WEIGHTS)

    model = AutoModelForImageTextToText.from_pretrained(
        model_args.model_name_or_path,
        revision=model_args.model_revision,
        dtype=model_args.dtype,
        attn_implementation=model_args.attn_implementation,
    )
    # Left padding: prompts are batched for generation.
    processor = AutoProcessor.from_pretrained(
        model_args.model_name_or_path, revision=model_args.model_revision, padding_side="left"
    )
    counts = freeze_vision(model, tower=video_args.freeze_vision_tower, projector=video_args.freeze_projector)
    logger.info("parameters: %s", counts)

    dataset = load_video_dataset(
        video_args.dataset,
        video_args.dataset_split,
        skills=video_args.skills,
        max_samples=video_args.max_samples,
    )
    dataset = to_grpo_rows(dataset)

    trainer = VideoGRPOTrainer(
        model=model,
        reward_funcs=reward_functions(),
        args=training_args,
        train_dataset=dataset,
        processing_class=processor,
        peft_config=get_peft_config(model_args),
        sampling=video_args.sampling(),
        rollout_engine=video_args.rollout_engine,
        rollout=video_args.rollout(),
    )
    trainer.train()

    # Writes the model (gathered under ZeRO-3 / FSDP) and the processor into one folder, so
    # AutoModelForImageTextToText / AutoProcessor.from_pretrained(output_dir) reload it.
    trainer.save_model(training_args.output_dir)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = TrlParser((VideoArguments, GRPOConfig, ModelConfig))
    main(*parser.parse_args_and_config())
