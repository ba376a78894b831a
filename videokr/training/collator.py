"""The SFT collator: decode each row's clip, apply the chat template, and label only the response.

TRL's SFTTrainer only treats a dataset as visual when it has an ``image``/``images`` column; with video
it would train on placeholder tokens while the vision tower never runs. This collator does the visual
work itself, and the trainer is configured with ``remove_unused_columns=False`` and
``dataset_kwargs={"skip_prepare_dataset": True}`` so the raw rows reach it.

Labels: ``-100`` everywhere except the response, i.e. the assistant text and its end token
(``<|im_end|>``). Prompt, video placeholders, the newline the template writes after the end token and
padding never count.

Decoding failures: a row whose clip does not decode is **dropped from its batch**; its question is never
paired with another clip. With ``refill_from`` (the training scripts pass the training set) the batch is
**refilled** with other whole rows (question, clip and answer together) drawn from it, so every step
still trains on ``per_device_train_batch_size`` examples, at the paper's batch of one too, where a drop
alone would leave an empty batch. The replacement for a row depends only on that row's id (a seeded
draw), not on what the collator saw before, so a resumed run refills exactly as the uninterrupted one
did. Without ``refill_from`` a batch in which every clip fails raises `VideoDecodeError` (there is nothing
honest to train on). Each failure is counted in `VideoSFTCollator.failures` (and each replacement in
``refills``) and logged as one WARNING line naming the row id and the clip; the failure count passing
``max_failures`` stops the run: a dataset that is broken at scale should stop a run, not thin it
silently. ``on_error="raise"`` stops at the first failure instead. The counters live in the process that
runs the collator; with ``dataloader_num_workers > 0`` each worker keeps its own and the log lines are
the complete record.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import torch

from videokr.errors import VideoDecodeError
from videokr.vision import FrameSampling, Visual, VisualLoader, chat_messages, process, render, video_source

if TYPE_CHECKING:
    from transformers import BatchFeature, ProcessorMixin

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100


@dataclass(frozen=True)
class DecodeFailure:
    """One row kept out of training because its clip did not decode."""

    row_id: str
    clip: str
    reason: str


class VideoSFTCollator:
    """Rows with ``id``, ``video``, ``prompt`` (text) and ``completion`` (target) → a model batch.

    The batch holds ``input_ids``, ``attention_mask``, ``labels``, ``mm_token_type_ids``,
    ``pixel_values_videos``, ``video_grid_thw`` and, for Qwen2.5-VL, ``second_per_grid_ts``.
    """

    def __init__(
        self,
        processor: ProcessorMixin,
        sampling: FrameSampling | None = None,
        *,
        on_error: Literal["drop", "raise"] = "drop",
        max_failures: int | None = None,
        refill_from: Sequence[dict[str, Any]] | None = None,
        max_refill_draws: int = 16,
    ) -> None:
        if on_error not in ("drop", "raise"):
            raise ValueError(f"on_error must be 'drop' or 'raise', got {on_error!r}")
        self.processor = processor
        self.loader = VisualLoader(processor, sampling)
        self.on_error = on_error
        self.max_failures = max_failures
        self.failures: list[DecodeFailure] = []
        self.refill_from = refill_from
        self.max_refill_draws = max_refill_draws
        self.refills: list[tuple[str, str]] = []  # (dropped row id, the row that took its place)
        tokenizer = processor.tokenizer
        self.end_token_id = tokenizer.eos_token_id
        self.placeholder_ids = {
            tokenizer.convert_tokens_to_ids(token)
            for token in (getattr(processor, "video_token", None), getattr(processor, "image_token", None))
            if token is not None
        }

    def __call__(self, rows: Sequence[dict[str, Any]]) -> BatchFeature:
        kept: list[dict[str, Any]] = []
        clips: list[Visual] = []
        for row in rows:
            loaded = self._load(row)
            if loaded is None:
                loaded = self._refill(row)
            if loaded is not None:
                kept.append(loaded[0])
                clips.append(loaded[1])
        if not kept:
            ids = ", ".join(str(row.get("id")) for row in rows)
            raise VideoDecodeError("<batch>", f"no clip in this batch decoded (rows {ids})")

        prompt_texts, full_texts = [], []
        for row in kept:
            prompt_text = render(self.processor, chat_messages(row["prompt"]), generation_prompt=True)
            full_text = render(
                self.processor,
                chat_messages(row["prompt"], target=row["completion"]),
                generation_prompt=False,
            )
            if not full_text.startswith(prompt_text):
                raise ValueError(
                    f"row {row['id']!r}: the chat template does not extend the prompt with the answer"
                )
            prompt_texts.append(prompt_text)
            full_texts.append(full_text)

        batch = process(self.processor, full_texts, clips, padding_side="right")
        batch["labels"] = self._labels(batch, prompt_texts, full_texts, [row["id"] for row in kept])
        return batch

    def _load(self, row: dict[str, Any]) -> tuple[dict[str, Any], Visual] | None:
        """The row with its clip, or None (failure recorded) when the clip does not decode."""
        try:
            return row, self.loader.load(row["video"])
        except VideoDecodeError as error:
            self._record_failure(row, error)
            return None

    def _refill(self, dropped: dict[str, Any]) -> tuple[dict[str, Any], Visual] | None:
        """Another whole row in the dropped row's place, drawn from `refill_from` by a draw seeded with the
        dropped row's id alone (so the same row is always replaced by the same one)."""
        if not self.refill_from:
            return None
        draw = random.Random(f"refill:{dropped.get('id')}")
        for _ in range(self.max_refill_draws):
            candidate = dict(self.refill_from[draw.randrange(len(self.refill_from))])
            if candidate.get("id") == dropped.get("id"):
                continue
            loaded = self._load(candidate)
            if loaded is not None:
                self.refills.append((str(dropped.get("id")), str(candidate.get("id"))))
                logger.warning(
                    "row %s took the place of row %s in its batch", candidate.get("id"), dropped.get("id")
                )
                return loaded
        raise VideoDecodeError(
            "<refill>",
            f"row {dropped.get('id')}: no decodable replacement in {self.max_refill_draws} draws; "
            "check the dataset's clips (videokr build --verify)",
        )

    def _labels(
        self, batch: BatchFeature, prompt_texts: list[str], full_texts: list[str], ids: list[str]
    ) -> torch.Tensor:
        """Label the response tokens only.

        The response's token count is measured on the unexpanded texts (the video placeholder is one
        token there): expanding the placeholder changes only the prompt, so the last ``n`` real tokens of
        the processed sequence are the response. Everything after the end token (the template's newline)
        is then unlabelled.
        """
        tokenizer = self.processor.tokenizer
        labels = torch.full_like(batch["input_ids"], IGNORE_INDEX)
        for i, (prompt_text, full_text) in enumerate(zip(prompt_texts, full_texts, strict=True)):
            prompt_ids = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
            full_ids = tokenizer(full_text, add_special_tokens=False)["input_ids"]
            if full_ids[: len(prompt_ids)] != prompt_ids:
                raise ValueError(f"row {ids[i]!r}: prompt tokens merge with the answer's first token")
            response = full_ids[len(prompt_ids) :]
            if self.end_token_id not in response:
                raise ValueError(f"row {ids[i]!r}: the rendered answer has no end token")
            length = len(response) - response[::-1].index(self.end_token_id)  # through the last end token
            positions = batch["attention_mask"][i].nonzero().flatten()
            start = int(positions[-len(response)])
            labels[i, start : start + length] = batch["input_ids"][i, start : start + length]
        for token_id in self.placeholder_ids:
            labels[batch["input_ids"] == token_id] = IGNORE_INDEX
        return labels

    def _record_failure(self, row: dict[str, Any], error: VideoDecodeError) -> None:
        path, _ = video_source(row["video"])
        failure = DecodeFailure(str(row.get("id")), str(path or error.path), error.reason)
        self.failures.append(failure)
        if self.on_error == "raise":
            raise VideoDecodeError(failure.clip, f"row {failure.row_id}: {error.reason}") from error
        logger.warning(
            "video decode failed, row %s dropped from its batch (its question keeps no other clip): "
            "clip %s: %s [%d so far]",
            failure.row_id,
            failure.clip,
            failure.reason,
            len(self.failures),
        )
        if self.max_failures is not None and len(self.failures) > self.max_failures:
            raise VideoDecodeError(
                failure.clip, f"{len(self.failures)} clips failed to decode, more than max_failures"
            ) from error
