"""Supervised fine-tuning of Qwen2.5-VL / Qwen3-VL on VideoKR-SFT with TRL, video included.

    accelerate launch --config_file train/accelerate/zero3.yaml -m videokr.training.sft \\
        --config train/recipes/qwen2_5_vl_7b/sft.yaml

TRL's SFTTrainer has no video path: the `VideoSFTCollator` decodes each clip, applies the chat template
and masks everything but the response, and the trainer is told to hand it the raw rows
(`remove_unused_columns=False`, `skip_prepare_dataset`). Options: `VideoScriptArguments`, TRL's
`SFTConfig` and `ModelConfig`, from the recipe and the command line.
"""

from __future__ import annotations

import logging

from trl import ModelConfig, SFTConfig, SFTTrainer

from videokr.training.args import VideoScriptArguments
from videokr.training.collator import VideoSFTCollator
from videokr.training.data import load_video_dataset, streaming_trainer_args, to_sft_rows
from videokr.training.launch import run_script
from videokr.training.model import prepare_start

__all__ = ["cli", "main"]

logger = logging.getLogger(__name__)


def main(script_args: VideoScriptArguments, training_args: SFTConfig, model_args: ModelConfig) -> None:
    """Train on ``script_args.dataset_name`` and save the model and processor to ``output_dir``."""
    if not script_args.dataset_name:
        raise ValueError("no dataset: set dataset_name (a Hub id or a folder built with `videokr build sft`)")
    # The collator needs the raw rows (clip path, prompt, target), not TRL's tokenized columns.
    training_args.remove_unused_columns = False
    training_args.dataset_kwargs = {**(training_args.dataset_kwargs or {}), "skip_prepare_dataset": True}

    start = prepare_start(script_args, training_args, model_args)

    dataset = load_video_dataset(
        script_args.dataset_name,
        script_args.dataset_train_split,
        skills=script_args.skills,
        max_samples=script_args.max_samples,
        streaming=script_args.dataset_streaming,
    )
    if script_args.dataset_streaming:
        streaming_trainer_args(training_args)
    dataset = to_sft_rows(
        dataset, direct=script_args.target == "direct", style=script_args.prompt_style or "sft"
    )
    # A row whose clip does not decode is replaced by another whole row, so a batch never shrinks or
    # empties (the paper trains at one sample per device); see `VideoSFTCollator`.
    collator = VideoSFTCollator(
        start.processor,
        script_args.sampling(),
        max_failures=script_args.max_decode_failures,
        refill_from=None if script_args.dataset_streaming else dataset,  # a stream has no rows to draw
    )

    trainer = SFTTrainer(
        model=start.model,
        args=training_args,
        train_dataset=dataset,
        data_collator=collator,
        processing_class=start.processor,
        peft_config=start.peft_config,
    )
    trainer.train(resume_from_checkpoint=start.resume)

    # Writes the model (gathered under ZeRO-3 / FSDP) and the processor into one folder, so
    # AutoModelForImageTextToText / AutoProcessor.from_pretrained(output_dir) reload it.
    trainer.save_model(training_args.output_dir)
    # trainer_state.json beside the model: the logged loss, rewards and learning rate per step (the
    # curves a user plots), whatever save_strategy was.
    trainer.save_state()
    logger.info(
        "clips that failed to decode in this process: %d (rows refilled: %d)",
        len(collator.failures),
        len(collator.refills),
    )
    for failure in collator.failures:
        logger.info("  row %s: %s: %s", failure.row_id, failure.clip, failure.reason)


def cli(args: list[str] | None = None) -> None:
    """Parse ``--config <recipe>`` and command-line overrides, then run `main` (errors: one line)."""
    run_script(main, (VideoScriptArguments, SFTConfig, ModelConfig), args)


if __name__ == "__main__":
    cli()
