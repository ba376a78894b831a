"""What both training scripts start from, prepared one way: the model and processor, the vision parts
frozen as asked, the PEFT config, and the checkpoint a resume continues from with its weights loaded."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from videokr.training.freeze import freeze_vision
from videokr.training.resume import checkpoint_to_resume, load_checkpoint_weights, trainer_restores_weights

if TYPE_CHECKING:
    from transformers import TrainingArguments
    from trl import ModelConfig

    from videokr.training.args import VideoScriptArguments

__all__ = ["Start", "load_model_and_processor", "prepare_start"]

logger = logging.getLogger(__name__)


@dataclass
class Start:
    """The pieces a trainer is built from, and the checkpoint to pass to ``trainer.train`` (or None)."""

    model: Any
    processor: Any
    peft_config: Any
    resume: str | None


def prepare_start(
    script_args: VideoScriptArguments,
    training_args: TrainingArguments,
    model_args: ModelConfig,
    *,
    padding_side: str | None = None,
) -> Start:
    """Check the resume first (a resume that cannot happen, or a fresh run that would overwrite
    checkpoints, fails before anything loads; see `videokr.training.resume`), then load, freeze and, when
    resuming, load the checkpoint's weights: transformers' own reload of them matches no Qwen-VL key, so
    its "missing keys" warning that follows is about that no-op reload, not about these weights."""
    from trl import get_peft_config

    resume = checkpoint_to_resume(training_args)
    model, processor = load_model_and_processor(model_args, padding_side=padding_side)
    counts = freeze_vision(
        model, tower=script_args.freeze_vision_tower, projector=script_args.freeze_projector
    )
    logger.info("parameters: %s", counts)
    peft_config = get_peft_config(model_args)
    if resume and not trainer_restores_weights(training_args, adapters=peft_config is not None):
        load_checkpoint_weights(model, resume)
    return Start(model, processor, peft_config, resume)


def load_model_and_processor(model_args: ModelConfig, *, padding_side: str | None = None) -> tuple[Any, Any]:
    """``AutoModelForImageTextToText`` and ``AutoProcessor`` for ``model_args.model_name_or_path`` at
    ``model_revision``, the model in ``dtype`` with ``attn_implementation``.

    ``padding_side`` sets the tokenizer's side when given: GRPO batches prompts for generation, so it
    asks for ``"left"``; SFT keeps the checkpoint's own.
    """
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model = AutoModelForImageTextToText.from_pretrained(
        model_args.model_name_or_path,
        revision=model_args.model_revision,
        dtype=model_args.dtype,
        attn_implementation=model_args.attn_implementation,
    )
    extra = {} if padding_side is None else {"padding_side": padding_side}
    processor = AutoProcessor.from_pretrained(
        model_args.model_name_or_path, revision=model_args.model_revision, **extra
    )
    return model, processor
