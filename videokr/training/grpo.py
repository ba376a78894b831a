"""`VideoGRPOTrainer`: TRL's GRPOTrainer with the clip's tensors in generation and in every log-prob forward.

TRL 1.16 fails silently on video: its rollout tokenizes chat prompts without our frames and timing, and
the forwards that score completions (policy, old policy, reference) only receive *image* tensors, so
``pixel_values_videos`` never reaches the loss and the policy is optimised as if blind. This subclass
changes four seams and nothing else:

``_generate_and_score_completions``
    Decodes each row's clip once (`ClipLoader`), renders the prompt, runs the processor once per distinct
    row (a group's ``num_generations`` copies share the result), and makes the video tensors the active
    *video context* while TRL generates, scores and computes the old-policy / reference log-probs. The
    per-sample video tensors are added to the returned batch so they are shuffled and split together
    with the completions they belong to.
``_tokenize_prompts``
    Returns those prompt ids and video tensors to TRL's generation step (with ``mm_token_type_ids`` as
    per-token lists, which TRL left-pads like the ids), so ``generate`` sees the video with its M-RoPE
    positions.
``_compute_loss``
    Makes the mini-batch's own video tensors the active context for the policy forward.
``_get_per_token_logps_and_entropies``
    When a video context is active, runs the same chunked forward as TRL but with
    ``pixel_values_videos``, ``video_grid_thw``, ``second_per_grid_ts`` and ``mm_token_type_ids``
    sliced to each chunk; otherwise defers to TRL.

Generation also suppresses the image and video placeholder tokens (TRL suppresses only the image one): a
sampled placeholder has no features behind it and would break the scoring forward.

A clip that fails to decode raises `VideoDecodeError` with the row id: GRPO cannot drop a row the way
SFT does, because every group must keep its ``num_generations`` completions and every process must
contribute the same number of rows to the reward gather. Check clips when building the dataset
(``videokr build --verify``) instead. vLLM generation, tools and environments are not supported here.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from trl import GRPOTrainer

from videokr.errors import VideoDecodeError
from videokr.training.clips import Clip, ClipLoader, FrameSampling, video_source
from videokr.training.encoding import process, render

logger = logging.getLogger(__name__)

__all__ = ["VideoBatch", "VideoGRPOTrainer"]


@dataclass
class VideoBatch:
    """The video tensors of a batch, kept per sample so any slice of samples can be cut out of them."""

    pixel_values: list[torch.Tensor]  # one (patches, dim) tensor per sample
    grid_thw: torch.Tensor  # (B, 3)
    second_per_grid_ts: torch.Tensor | None  # (B,), Qwen2.5-VL only

    def __len__(self) -> int:
        return len(self.pixel_values)

    def model_inputs(self, start: int = 0, end: int | None = None) -> dict[str, torch.Tensor]:
        """Forward kwargs for samples ``start:end``."""
        end = len(self) if end is None else end
        inputs = {
            "pixel_values_videos": torch.cat(self.pixel_values[start:end], dim=0),
            "video_grid_thw": self.grid_thw[start:end],
        }
        if self.second_per_grid_ts is not None:
            inputs["second_per_grid_ts"] = self.second_per_grid_ts[start:end]
        return inputs

    def to_batch(self) -> dict[str, Any]:
        """Entries for TRL's batch dict: lists and tensors with one entry per sample, which TRL's
        `shuffle_sequence_dict` and `split_tensor_dict` permute and slice together with the completions."""
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
    """Prompt token ids (unpadded) with their per-token modality ids, and the video tensors, per sample."""

    prompt_ids: list[list[int]]
    mm_token_type_ids: list[list[int]]
    video: VideoBatch


class VideoGRPOTrainer(GRPOTrainer):
    """GRPOTrainer for rows with a ``video`` column (path or ``{"path", "bytes"}``) and a chat ``prompt``
    whose user turn has a ``{"type": "video"}`` part; see the module docstring for what is overridden."""

    def __init__(self, *args: Any, sampling: FrameSampling | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.use_vllm or self.tools or self.rollout_func is not None:
            raise NotImplementedError("VideoGRPOTrainer supports transformers generation without tools only")
        self.clip_loader = ClipLoader(self.processing_class, sampling)
        self._video_context: VideoBatch | None = None
        self._pending_prompts: EncodedPrompts | None = None
        placeholders = {t for t in (self._image_pad_token_id, self._video_pad_token_id) if t is not None}
        suppress = sorted(set(self.generation_kwargs.get("suppress_tokens") or []) | placeholders)
        self.generation_kwargs["suppress_tokens"] = suppress
        self.generation_config.suppress_tokens = suppress

    # ------------------------------------------------------------------------------------------ rollout

    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        encoded = self._encode_prompts(inputs)
        self._pending_prompts = encoded
        try:
            with self._video_forward(encoded.video):
                output = super()._generate_and_score_completions(inputs)
        finally:
            self._pending_prompts = None
        device = self.accelerator.device
        video = VideoBatch(
            [p.to(device) for p in encoded.video.pixel_values],
            encoded.video.grid_thw.to(device),
            None if encoded.video.second_per_grid_ts is None else encoded.video.second_per_grid_ts.to(device),
        )
        output.update(video.to_batch())
        return output

    def _tokenize_prompts(self, prompts: list) -> tuple[list[list[int]], None, dict[str, Any]]:
        encoded = self._pending_prompts
        if encoded is None:
            return super()._tokenize_prompts(prompts)
        if len(prompts) != len(encoded.prompt_ids):
            raise RuntimeError(f"{len(prompts)} prompts but {len(encoded.prompt_ids)} encoded video prompts")
        fields = {**encoded.video.model_inputs(), "mm_token_type_ids": encoded.mm_token_type_ids}
        return encoded.prompt_ids, None, fields

    def _encode_prompts(self, rows: Sequence[dict[str, Any]]) -> EncodedPrompts:
        """Decode each distinct clip and process each distinct (clip, prompt) once: the group's repeats,
        and rows asking different questions about one clip, share the decoded frames."""
        clips: dict[str, Clip] = {}
        per_row: dict[tuple[str, str], tuple[list[int], list[int], dict[str, torch.Tensor]]] = {}
        prompt_ids, mm_ids, pixels, grids, seconds = [], [], [], [], []
        for row in rows:
            path, data = video_source(row["video"])
            # A clip on disk is shared by its path; an embedded one only within its row (names may repeat).
            clip_key = path if path and data is None else f"row:{row['id']}"
            text = render(self.processing_class, row["prompt"], generation_prompt=True)
            if (clip_key, text) not in per_row:
                if clip_key not in clips:
                    clips[clip_key] = self._load_clip(row)
                features = process(self.processing_class, [text], [clips[clip_key]], padding_side="left")
                per_row[clip_key, text] = (
                    features["input_ids"][0].tolist(),
                    features["mm_token_type_ids"][0].tolist(),
                    {k: v for k, v in features.items() if k not in ("input_ids", "attention_mask")},
                )
            ids, mm, features = per_row[clip_key, text]
            prompt_ids.append(ids)
            mm_ids.append(mm)
            pixels.append(features["pixel_values_videos"])
            grids.append(features["video_grid_thw"])
            if "second_per_grid_ts" in features:
                seconds.append(features["second_per_grid_ts"])
        video = VideoBatch(pixels, torch.cat(grids), torch.cat(seconds) if seconds else None)
        return EncodedPrompts(prompt_ids, mm_ids, video)

    def _load_clip(self, row: dict[str, Any]) -> Clip:
        try:
            return self.clip_loader.load(row["video"])
        except VideoDecodeError as error:
            logger.error("video decode failed for row %s: clip %s: %s", row["id"], error.path, error.reason)
            raise VideoDecodeError(
                error.path, f"row {row['id']}: {error.reason}", backend=error.backend
            ) from error

    # ------------------------------------------------------------------------------------------ scoring

    @contextlib.contextmanager
    def _video_forward(self, video: VideoBatch | None) -> Iterator[None]:
        """Make `video` the tensors every log-prob forward inside the block receives."""
        previous, self._video_context = self._video_context, video
        try:
            yield
        finally:
            self._video_context = previous

    def _compute_loss(self, model: torch.nn.Module, inputs: dict[str, Any]) -> torch.Tensor:
        with self._video_forward(VideoBatch.from_batch(inputs)):
            return super()._compute_loss(model, inputs)

    def _get_per_token_logps_and_entropies(
        self,
        model: torch.nn.Module,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        logits_to_keep: int,
        batch_size: int | None = None,
        compute_entropy: bool = False,
        compute_aux_loss: bool = False,
        **image_inputs: Any,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        video = self._video_context
        if video is None:
            return super()._get_per_token_logps_and_entropies(
                model,
                input_ids,
                attention_mask,
                logits_to_keep,
                batch_size,
                compute_entropy,
                compute_aux_loss,
                **image_inputs,
            )
        if image_inputs.get("pixel_values") is not None:
            raise NotImplementedError("rows with both images and a video are not supported")
        if len(video) != input_ids.size(0):
            raise RuntimeError(f"{input_ids.size(0)} sequences but video tensors for {len(video)}")
        mm_token_type_ids = self._mm_token_type_ids(input_ids, logits_to_keep)
        batch_size = batch_size or input_ids.size(0)
        all_logps, all_entropies, all_aux = [], [], []
        for start in range(0, input_ids.size(0), batch_size):
            end = min(start + batch_size, input_ids.size(0))
            ids, mask = input_ids[start:end], attention_mask[start:end]
            model_inputs = {
                "input_ids": ids,
                "attention_mask": mask,
                "mm_token_type_ids": mm_token_type_ids[start:end],
                **{k: v.to(ids.device) for k, v in video.model_inputs(start, end).items()},
            }
            if compute_aux_loss:
                model_inputs["output_router_logits"] = True
            # As TRL: only completion tokens are scored.
            labels = ids.masked_fill(mask == 0, -100)
            labels[:, :-logits_to_keep] = -100
            with self.accelerator.autocast():
                outputs = model(**model_inputs, labels=labels, fused_lm_head=True)
            all_logps.append(outputs.log_probs[:, -logits_to_keep:])
            if compute_entropy:
                all_entropies.append(outputs.entropy[:, -logits_to_keep:])
            if compute_aux_loss:
                all_aux.append(outputs.aux_loss)
        logps = torch.cat(all_logps, dim=0)
        entropies = torch.cat(all_entropies, dim=0) if compute_entropy else None
        aux_loss = torch.stack(all_aux).mean() if compute_aux_loss else None
        return logps, entropies, aux_loss

    def _mm_token_type_ids(self, input_ids: torch.Tensor, logits_to_keep: int) -> torch.Tensor:
        """Modality ids for prompt+completion sequences: 2 on video placeholders, 1 on image ones, in the
        prompt only (generation cannot emit placeholders, see the suppressed tokens)."""
        prompt = input_ids[:, : input_ids.size(1) - logits_to_keep]
        mm = torch.zeros_like(input_ids)
        if self._video_pad_token_id is not None:
            mm[:, : prompt.size(1)][prompt == self._video_pad_token_id] = 2
        if self._image_pad_token_id is not None:
            mm[:, : prompt.size(1)][prompt == self._image_pad_token_id] = 1
        return mm
