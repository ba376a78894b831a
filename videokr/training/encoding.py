"""One processor call for a batch of chat texts and clips, with the arguments video needs in transformers 5.

Kept in one place because each argument prevents a silent failure: ``video_metadata`` carries the clip's
true fps and frame indices (without it the processor assumes 24 fps and the temporal positions collapse),
``do_sample_frames=False`` keeps exactly the frames we sampled, and ``do_resize=False`` keeps the
resolution `ClipLoader` chose (see `videokr.training.clips`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformers import BatchFeature, ProcessorMixin

    from videokr.training.clips import Clip

#: The tensors a Qwen-VL forward needs for video, besides input_ids / attention_mask.
VIDEO_KEYS: tuple[str, ...] = ("pixel_values_videos", "video_grid_thw", "second_per_grid_ts")


def clean_messages(messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Drop the ``None`` fields Arrow adds when message parts of different kinds share one struct type,
    so a video part stays ``{"type": "video"}`` for the chat template."""
    cleaned = []
    for message in messages:
        content = message["content"]
        if isinstance(content, list):
            content = [{k: v for k, v in part.items() if v is not None} for part in content]
        cleaned.append({**message, "content": content})
    return cleaned


def render(processor: ProcessorMixin, messages: Sequence[dict[str, Any]], *, generation_prompt: bool) -> str:
    """The chat template's text for `messages` (video parts become one placeholder each)."""
    return processor.apply_chat_template(
        clean_messages(messages), tokenize=False, add_generation_prompt=generation_prompt
    )


def process(
    processor: ProcessorMixin, texts: Sequence[str], clips: Sequence[Clip], *, padding_side: str = "right"
) -> BatchFeature:
    """Tokenize `texts` (one video placeholder each) with their `clips`; placeholders are expanded to the
    clip's grid and ``mm_token_type_ids`` marks them, as the model's M-RoPE requires."""
    return processor(
        text=list(texts),
        videos=[clip.frames for clip in clips],
        video_metadata=[clip.fresh_metadata() for clip in clips],
        do_sample_frames=False,
        do_resize=False,
        padding=True,
        padding_side=padding_side,
        return_tensors="pt",
    )
