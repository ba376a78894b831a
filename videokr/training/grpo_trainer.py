"""`VideoGRPOTrainer`: TRL's GRPOTrainer with the clip's tensors in generation and in every log-prob forward.

TRL 1.16 fails silently on video: its rollout tokenizes chat prompts without our frames and timing, and
the forwards that score completions (policy, old policy, reference) only receive *image* tensors, so
``pixel_values_videos`` never reaches the loss and the policy is optimised as if blind. This subclass
changes five seams and nothing else:

``_generate_and_score_completions``
    Decodes each row's clip once (`VisualLoader`), renders the prompt, runs the processor once per distinct
    row (a group's ``num_generations`` copies share the result), and makes the video tensors the active
    *video context* while TRL generates, scores and computes the old-policy / reference log-probs. The
    per-sample video tensors are added to the returned batch so they are shuffled and split together
    with the completions they belong to.
``_tokenize_prompts``
    Returns those prompt ids and video tensors to TRL's generation step (with ``mm_token_type_ids`` as
    per-token lists, which TRL left-pads like the ids), so ``generate`` sees the video with its M-RoPE
    positions.
``_generate_single_turn``
    Runs the rollout with `VideoRolloutEngine` (`videokr.generation`): each distinct prompt is
    prefilled once for its whole group, the step's sequences decode together over a static KV cache,
    compiled on CUDA; it returns each token's sampling log-probability, which TRL keeps as
    ``sampling_per_token_logps``. Its settings are the ``rollout_*`` fields of a `VideoGRPOConfig`
    (defaults with a plain ``GRPOConfig``); ``rollout_engine: generate`` keeps TRL's ``model.generate``.
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
import dataclasses
import logging
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from trl import GRPOTrainer
from trl.extras.profiling import profiling_context
from trl.models import unwrap_model_for_generation

from videokr.generation import Rollout, RolloutOptions, SamplingSettings, VideoRolloutEngine
from videokr.training.args import VideoGRPOConfig
from videokr.vision import EncodedPrompts, FrameSampling, VideoBatch, VisualLoader, encode_prompts

logger = logging.getLogger(__name__)

__all__ = ["VideoBatch", "VideoGRPOTrainer"]


class VideoGRPOTrainer(GRPOTrainer):
    """GRPOTrainer for rows with a ``video`` column (path or ``{"path", "bytes"}``) and a chat ``prompt``
    whose user turn has a ``{"type": "video"}`` part; see the module docstring for what is overridden.

    ``sampling`` is how clips become frames (as in SFT and evaluation). The rollout settings come from
    ``args``: a `VideoGRPOConfig` picks our `VideoRolloutEngine` or TRL's ``model.generate`` path
    (``rollout_engine``) and the engine's options (``rollout_*``); a plain ``GRPOConfig`` gets our engine
    with default options. Compilation left at its default is turned off when the weights are sharded
    (ZeRO-3, FSDP): gathered weights get new addresses every rollout, so a captured CUDA graph would not
    hold. ``reward_funcs`` are passed as to TRL (callables or models); `VideoGRPOConfig.reward_funcs` holds
    names for the GRPO script, which turns them into functions.
    """

    def __init__(self, *args: Any, sampling: FrameSampling | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.use_vllm or self.tools or self.rollout_func is not None:
            raise NotImplementedError("VideoGRPOTrainer supports transformers generation without tools only")
        if isinstance(self.args, VideoGRPOConfig):
            engine, options = self.args.rollout_engine, self.args.rollout()
        else:
            engine, options = "videokr", RolloutOptions()
        self.clip_loader = VisualLoader(self.processing_class, sampling)
        self._video_context: VideoBatch | None = None
        self._pending_prompts: EncodedPrompts | None = None
        placeholders = {t for t in (self._image_pad_token_id, self._video_pad_token_id) if t is not None}
        suppress = sorted(set(self.generation_kwargs.get("suppress_tokens") or []) | placeholders)
        self.generation_kwargs["suppress_tokens"] = suppress
        self.generation_config.suppress_tokens = suppress
        self.rollout_engine: VideoRolloutEngine | None = None
        if engine == "videokr":
            if options.compile is None and self._weights_sharded():
                options = dataclasses.replace(options, compile=False)
            settings = SamplingSettings.from_generation_kwargs(self.generation_kwargs)
            self.rollout_engine = VideoRolloutEngine(settings, options)

    def _weights_sharded(self) -> bool:
        deepspeed = getattr(self.accelerator.state, "deepspeed_plugin", None)
        return self.is_fsdp_enabled or (deepspeed is not None and deepspeed.zero_stage == 3)

    # ------------------------------------------------------------------------------------------ rollout

    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        encoded = self._encode_prompts(inputs)
        self._pending_prompts = encoded
        try:
            with self._video_forward(encoded.video):
                output = super()._generate_and_score_completions(inputs)
        finally:
            self._pending_prompts = None
        output.update(encoded.video.to(self.accelerator.device).to_batch())
        return output

    def _generate_single_turn(
        self,
        prompt_ids: list[list[int]],
        images: Any,
        multimodal_fields: dict[str, Any],
        num_generations: int,
        has_tool_images: bool = False,
    ) -> tuple[list[list[int]], list[list[float]] | None]:
        """The rollout: our engine (each prompt prefilled once, static cache, compiled decoding) unless
        the config's ``rollout_engine`` is ``generate``, which keeps TRL's ``model.generate`` path."""
        encoded = self._pending_prompts
        if self.rollout_engine is None or encoded is None:
            return super()._generate_single_turn(
                prompt_ids, images, multimodal_fields, num_generations, has_tool_images
            )
        if prompt_ids != encoded.prompt_ids:
            raise RuntimeError("TRL's prompt ids differ from the encoded video prompts")
        with (
            profiling_context(self, "videokr.rollout"),
            unwrap_model_for_generation(
                self.model_wrapped,
                self.accelerator,
                gather_deepspeed3_params=self.args.ds3_gather_for_generation,
                generation_kwargs=self.generation_kwargs,
                gradient_checkpointing_kwargs=self.args.gradient_checkpointing_kwargs,
            ) as unwrapped_model,
            torch.no_grad(),
            self._dist.summon_full_params(self.model_wrapped, recurse=False),
        ):
            rollout = self.rollout_engine.generate(unwrapped_model, encoded)
        self._log_rollout(rollout)
        return rollout.completion_ids, rollout.logprobs

    def _log_rollout(self, rollout: Rollout) -> None:
        """Rollout speed in the training logs: new tokens per second, and where the time went."""
        mode = "train" if self.model.training else "eval"
        seconds = rollout.prefill_s + rollout.decode_s
        metrics = self._metrics[mode]
        metrics["rollout/new_tokens_per_s"].append(rollout.new_tokens / seconds if seconds else 0.0)
        metrics["rollout/prefill_s"].append(rollout.prefill_s)
        metrics["rollout/decode_s"].append(rollout.decode_s)
        metrics["rollout/prompts_prefilled"].append(float(rollout.prompts_prefilled))

    def _tokenize_prompts(self, prompts: list) -> tuple[list[list[int]], None, dict[str, Any]]:
        encoded = self._pending_prompts
        if encoded is None:
            return super()._tokenize_prompts(prompts)
        if len(prompts) != len(encoded.prompt_ids):
            raise RuntimeError(f"{len(prompts)} prompts but {len(encoded.prompt_ids)} encoded video prompts")
        fields = {**encoded.video.model_inputs(), "mm_token_type_ids": encoded.mm_token_type_ids}
        return encoded.prompt_ids, None, fields

    def _encode_prompts(self, rows: Sequence[dict[str, Any]]) -> EncodedPrompts:
        return encode_prompts(self.processing_class, self.clip_loader, rows)

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
