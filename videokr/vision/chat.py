"""Chat text and the processor call: the one way texts and `Visual`s become a model's `BatchFeature`.

Kept in one place because each argument prevents a silent failure: ``video_metadata`` carries the clip's
true fps and frame indices (without it the processor assumes 24 fps and the temporal positions collapse),
``do_sample_frames=False`` keeps exactly the frames we sampled, and ``do_resize=False`` keeps the
resolution `VisualLoader` chose (see `videokr.vision.frames`), for a video and for a single frame alike.

The chat messages carry a bare ``{"type": "video"}`` (or ``{"type": "image"}``) part where the official
``<video>`` stands: the template renders it as the vision placeholder, and the frames travel beside the
text to `process`, never inside the messages (a processor that found frames in a message would decode
and resize them itself).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from videokr.data.prompts import build_messages

if TYPE_CHECKING:
    from transformers import BatchFeature, ProcessorMixin

    from videokr.vision.frames import Visual, VisualKind

__all__ = ["VIDEO_KEYS", "chat_messages", "clean_messages", "process", "render"]

#: The tensors a Qwen-VL forward needs for video, besides input_ids / attention_mask.
VIDEO_KEYS: tuple[str, ...] = ("pixel_values_videos", "video_grid_thw", "second_per_grid_ts")

#: The keys of a content part the chat template reads.
_TEMPLATE_KEYS = ("type", "text")


def chat_messages(
    text: str,
    kind: VisualKind = "video",
    *,
    system_prompt: str | None = None,
    target: str | None = None,
) -> list[dict[str, Any]]:
    """The messages for a prompt shown with a visual of `kind`: a video part, an image part (the single
    frame) or none before the text, then the assistant `target` when given (training)."""
    return build_messages(
        text,
        video={"type": "video"} if kind == "video" else None,
        image=True if kind == "single_frame" else None,
        system_prompt=system_prompt,
        target=target,
    )


def clean_messages(messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Keep each part's ``type`` and ``text`` only: drops the ``None`` fields Arrow adds when parts of
    different kinds share one struct type, and any frames a caller left in a part (see the module
    docstring), so a visual part stays a bare placeholder for the chat template."""
    cleaned = []
    for message in messages:
        content = message["content"]
        if isinstance(content, list):
            content = [
                {k: v for k, v in part.items() if k in ("type", "text") and v is not None} for part in content
            ]
        cleaned.append({**message, "content": content})
    return cleaned


def render(processor: ProcessorMixin, messages: Sequence[dict[str, Any]], *, generation_prompt: bool) -> str:
    """The chat template's text for `messages` (visual parts become one placeholder each)."""
    return processor.apply_chat_template(
        clean_messages(messages), tokenize=False, add_generation_prompt=generation_prompt
    )


def process(
    processor: ProcessorMixin,
    texts: Sequence[str],
    visuals: Sequence[Visual],
    *,
    padding_side: str = "right",
) -> BatchFeature:
    """Tokenize `texts` (one visual placeholder each, none for text only) with their `visuals`, which
    must all be of one kind; placeholders are expanded to the visual's grid and ``mm_token_type_ids``
    marks them, as the model's M-RoPE requires."""
    kinds = {visual.kind for visual in visuals}
    if len(kinds) > 1 or len(visuals) != len(texts):
        raise ValueError(
            f"one visual of one kind per text, got {len(visuals)} of {sorted(kinds)} for {len(texts)}"
        )
    kind = kinds.pop() if kinds else "text_only"
    arguments: dict[str, Any] = {}
    if kind == "video":
        arguments = {
            "videos": [visual.frames for visual in visuals],
            "video_metadata": [visual.fresh_metadata() for visual in visuals],
            "do_sample_frames": False,
            "do_resize": False,
        }
    elif kind == "single_frame":
        arguments = {"images": [visual.frames[0] for visual in visuals], "do_resize": False}
    return processor(
        text=list(texts), padding=True, padding_side=padding_side, return_tensors="pt", **arguments
    )
