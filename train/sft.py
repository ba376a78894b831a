"""Supervised fine-tuning of Qwen2.5-VL / Qwen3-VL on VideoKR-SFT with TRL, video included.

    accelerate launch --config_file train/accelerate/zero3.yaml train/sft.py \
        --config train/recipes/qwen2_5_vl_7b/sft.yaml

TRL's SFTTrainer has no video path: the `VideoSFTCollator` decodes each clip, applies the chat template
and masks everything but the response, and the trainer is told to hand it the raw rows
(`remove_unused_columns=False`, `skip_prepare_dataset`).
"""

from __future__ import annotations

import logging

from transformers import AutoModelForImageTextToText, AutoProcessor
from trl import ModelConfig, SFTConfig, SFTTrainer, TrlParser, get_peft_config

from videokr.training import VideoArguments, VideoSFTCollator, freeze_vision, load_video_dataset, to_sft_rows

logger = logging.getLogger("videokr.train.sft")


def main(video_args: VideoArguments, training_args: SFTConfig, model_args: ModelConfig) -> None:
    # The collator needs the raw rows (clip path, prompt, target), not TRL's tokenized columns.
    training_args.remove_unused_columns = False
    training_args.dataset_kwargs = {**(training_args.dataset_kwargs or {}), "skip_prepare_dataset": True}

    model = AutoModelForImageTextToText.from_pretrained(
        model_args.model_name_or_path,
        revision=model_args.model_revision,
        dtype=model_args.dtype,
        attn_implementation=model_args.attn_implementation,
    )
    processor = AutoProcessor.from_pretrained(
        model_args.model_name_or_path, revision=model_args.model_revision
    )
    counts = freeze_vision(model, tower=video_args.freeze_vision_tower, projector=video_args.freeze_projector)
    logger.info("parameters: %s", counts)

    dataset = load_video_dataset(
        video_args.dataset,
        video_args.dataset_split,
        skills=video_args.skills,
        max_samples=video_args.max_samples,
    )
    dataset = to_sft_rows(dataset, direct=video_args.target == "direct")
    collator = VideoSFTCollator(processor, video_args.sampling(), max_failures=video_args.max_decode_failures)

    trainer = SFTTrainer(
        model=model,
        args=training_args,
        train_dataset=dataset,
        data_collator=collator,
        processing_class=processor,
        peft_config=get_peft_config(model_args),
    )
    trainer.train()

    # Writes the model (gathered under ZeRO-3 / FSDP) and the processor into one folder, so
    # AutoModelForImageTextToText / AutoProcessor.from_pretrained(output_dir) reload it.
    trainer.save_model(training_args.output_dir)
    logger.info("clips that failed to decode in this process: %d", len(collator.failures))
    for failure in collator.failures:
        logger.info("  row %s: %s: %s", failure.row_id, failure.clip, failure.reason)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = TrlParser((VideoArguments, SFTConfig, ModelConfig))
    main(*parser.parse_args_and_config())
