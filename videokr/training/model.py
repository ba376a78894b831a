"""The model and processor both training scripts start from, loaded one way."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trl import ModelConfig

__all__ = ["load_model_and_processor"]


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
