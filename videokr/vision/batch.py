"""Visual tensors and encoded prompts of a batch, kept per sample so any slice of samples can be cut out.

`VideoGRPOTrainer` builds them once per rollout (`encode_prompts`: a video per sample); the generation
engine reads the *distinct* prompts (a GRPO group repeats one prompt ``num_generations`` times) and TRL's
shuffle/split carry the per-sample tensors alongside the completions they belong to. The evaluation
builds them for a batch of requests of one kind (`encode_visual_prompts`: a video, one image or nothing
per sample) through the same processor call ``generate`` would get.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from videokr.errors import VideoDecodeError
from videokr.vision.chat import process, render
from videokr.vision.frames import Visual, VisualKind, VisualLoader, video_source

logger = logging.getLogger(__name__)

__all__ = ["EncodedPrompts", "VideoBatch", "encode_prompts", "encode_visual_prompts"]

#: The forward kwargs of each kind's pixels and grid (a single frame goes to the model as an image).
_KEYS: dict[VisualKind, tuple[str, str]] = {
    "video": ("pixel_values_videos", "video_grid_thw"),
    "single_frame": ("pixel_values", "image_grid_thw"),
}


@dataclass
class VideoBatch:
    """The visual tensors of a batch, one entry per sample, all of one `kind`: a video each (GRPO and the
    evaluation's video probe), one image each (the single-frame probe) or none (the text-only probe, whose
    entries are empty and give no forward inputs)."""

    pixel_values: list[torch.Tensor]  # one (patches, dim) tensor per sample
    grid_thw: torch.Tensor  # (B, 3); zeros for text only
    second_per_grid_ts: torch.Tensor | None  # (B,), Qwen2.5-VL video only
    kind: VisualKind = "video"

    @classmethod
    def text_only(cls, n: int) -> VideoBatch:
        """`n` samples without a visual."""
        return cls([torch.zeros(0)] * n, torch.zeros((n, 3), dtype=torch.long), None, "text_only")

    def __len__(self) -> int:
        return len(self.pixel_values)

    def model_inputs(self, start: int = 0, end: int | None = None) -> dict[str, torch.Tensor]:
        """Forward kwargs for samples ``start:end``: ``pixel_values_videos``, ``video_grid_thw`` (and
        ``second_per_grid_ts``) for video, ``pixel_values`` and ``image_grid_thw`` for a single frame,
        nothing for text only."""
        if self.kind == "text_only":
            return {}
        end = len(self) if end is None else end
        pixels, grid = _KEYS[self.kind]
        inputs = {pixels: torch.cat(self.pixel_values[start:end], dim=0), grid: self.grid_thw[start:end]}
        if self.second_per_grid_ts is not None:
            inputs["second_per_grid_ts"] = self.second_per_grid_ts[start:end]
        return inputs

    def select(self, indices: list[int]) -> VideoBatch:
        """The samples at `indices`, in that order (tensors are shared, not copied)."""
        index = torch.tensor(indices, dtype=torch.long)
        seconds = self.second_per_grid_ts
        return VideoBatch(
            [self.pixel_values[i] for i in indices],
            self.grid_thw[index.to(self.grid_thw.device)],
            None if seconds is None else seconds[index.to(seconds.device)],
            self.kind,
        )

    def to(self, device: torch.device | str) -> VideoBatch:
        """The batch on `device`; a tensor the samples share (a GRPO group's one clip) is moved once and
        stays shared, instead of one copy per sample (8 per group, ~1 GB at 128 frames)."""
        seconds = self.second_per_grid_ts
        moved: dict[int, torch.Tensor] = {}
        for pixels in self.pixel_values:
            if id(pixels) not in moved:
                moved[id(pixels)] = pixels.to(device)
        return VideoBatch(
            [moved[id(p)] for p in self.pixel_values],
            self.grid_thw.to(device),
            None if seconds is None else seconds.to(device),
            self.kind,
        )

    def to_batch(self) -> dict[str, Any]:
        """Entries for TRL's batch dict: lists and tensors with one entry per sample, which TRL's
        `shuffle_sequence_dict` and `split_tensor_dict` permute and slice together with the completions.
        GRPO batches carry video only."""
        if self.kind != "video":
            raise ValueError(f"a GRPO batch carries video, not {self.kind}")
        batch: dict[str, Any] = {
            "pixel_values_videos": list(self.pixel_values),
            "video_grid_thw": self.grid_thw,
        }
        if self.second_per_grid_ts is not None:
            batch["second_per_grid_ts"] = self.second_per_grid_ts
        return batch

    @classmethod
    def from_batch(cls, batch: dict[str, Any]) -> VideoBatch | None:
        """The inverse of `to_batch` (None when the batch carries no video)."""
        if "pixel_values_videos" not in batch:
            return None
        return cls(
            list(batch["pixel_values_videos"]), batch["video_grid_thw"], batch.get("second_per_grid_ts")
        )


@dataclass
class EncodedPrompts:
    """Prompt token ids (unpadded) with their per-token modality ids and visual tensors, per sample.

    ``distinct[i]`` is the index of the first sample whose clip and prompt text equal sample ``i``'s: the
    samples of a GRPO group all point at one, so their prompt is prefilled (and their clip encoded) once.
    """

    prompt_ids: list[list[int]]
    mm_token_type_ids: list[list[int]]
    video: VideoBatch
    distinct: list[int]

    def __len__(self) -> int:
        return len(self.prompt_ids)

    def repeat(self, n: int) -> EncodedPrompts:
        """Each sample `n` times in a row, the repeats pointing at their first (so a prompt's repeats are
        prefilled once): the runs of the evaluation's protocol, laid out as GRPO lays out a group."""
        order = [i for i in range(len(self)) for _ in range(n)]
        return EncodedPrompts(
            [self.prompt_ids[i] for i in order],
            [self.mm_token_type_ids[i] for i in order],
            self.video.select(order),
            [n * self.distinct[i] for i in order],
        )

    def unique(self) -> tuple[EncodedPrompts, list[int]]:
        """The distinct prompts, and for every sample the position of its prompt among them."""
        firsts = sorted(set(self.distinct))
        position = {first: n for n, first in enumerate(firsts)}
        prompts = EncodedPrompts(
            [self.prompt_ids[i] for i in firsts],
            [self.mm_token_type_ids[i] for i in firsts],
            self.video.select(firsts),
            list(range(len(firsts))),
        )
        return prompts, [position[first] for first in self.distinct]


def encode_prompts(processor: Any, loader: VisualLoader, rows: Sequence[dict[str, Any]]) -> EncodedPrompts:
    """Decode each distinct clip and process each distinct (clip, prompt) once: a group's repeats, and
    rows asking different questions about one clip, share the decoded frames.

    Rows carry ``id``, ``video`` (path or ``{"path", "bytes"}``) and a chat ``prompt``. A clip that fails
    to decode raises `VideoDecodeError` naming the row.
    """
    clips: dict[str, Visual] = {}
    first: dict[tuple[str, str], int] = {}
    features: list[dict[str, torch.Tensor]] = []
    distinct: list[int] = []
    for sample, row in enumerate(rows):
        path, data = video_source(row["video"])
        # A clip on disk is shared by its path; an embedded one only within its row (names may repeat).
        clip_key = path if path and data is None else f"row:{row['id']}"
        text = render(processor, row["prompt"], generation_prompt=True)
        if (clip_key, text) not in first:
            if clip_key not in clips:
                clips[clip_key] = _load_clip(loader, row)
            first[clip_key, text] = sample
            processed = process(processor, [text], [clips[clip_key]], padding_side="left")
        else:
            processed = features[first[clip_key, text]]
        features.append(processed)
        distinct.append(first[clip_key, text])
    seconds = [f["second_per_grid_ts"] for f in features if "second_per_grid_ts" in f]
    video = VideoBatch(
        [f["pixel_values_videos"] for f in features],
        torch.cat([f["video_grid_thw"] for f in features]),
        torch.cat(seconds) if seconds else None,
    )
    return EncodedPrompts(
        [f["input_ids"][0].tolist() for f in features],
        [f["mm_token_type_ids"][0].tolist() for f in features],
        video,
        distinct,
    )


def encode_visual_prompts(processor: Any, texts: Sequence[str], visuals: Sequence[Visual]) -> EncodedPrompts:
    """`texts` (chat text, one visual placeholder each or none) with their `visuals`, all of one kind,
    through the one `process` call (left padding, as ``generate`` gets them), cut back into per-sample
    prompts: the unpadded ids, their modality ids and each sample's own pixels. Every sample is its own
    distinct prompt."""
    features = process(processor, texts, visuals, padding_side="left")
    mask = features["attention_mask"].bool()
    ids = [row[keep].tolist() for row, keep in zip(features["input_ids"], mask, strict=True)]
    if "mm_token_type_ids" in features:
        types = [row[keep].tolist() for row, keep in zip(features["mm_token_type_ids"], mask, strict=True)]
    else:
        types = [[0] * len(row) for row in ids]
    return EncodedPrompts(ids, types, _visual_batch(features, len(ids)), list(range(len(ids))))


def _visual_batch(features: Any, n: int) -> VideoBatch:
    """The per-sample visual tensors of one processor call with one visual (or none) per text."""
    for kind, (pixels, grid_key) in _KEYS.items():
        if pixels in features:
            grid = features[grid_key]
            if len(grid) != n:
                raise ValueError(f"{n} prompts but {len(grid)} {kind} grids: one visual per prompt")
            per_sample = torch.split(features[pixels], grid.prod(dim=-1).tolist())
            return VideoBatch(list(per_sample), grid, features.get("second_per_grid_ts"), kind)
    return VideoBatch.text_only(n)


def _load_clip(loader: VisualLoader, row: dict[str, Any]) -> Visual:
    try:
        return loader.load(row["video"])
    except VideoDecodeError as error:
        logger.error("video decode failed for row %s: clip %s: %s", row["id"], error.path, error.reason)
        reason = f"row {row['id']}: {error.reason}"
        raise VideoDecodeError(error.path, reason, backend=error.backend) from error
