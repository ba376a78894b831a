"""Batched generation for Qwen-VL prompts: each prompt prefilled once, a static KV cache, compiled decoding.

One engine for GRPO rollouts (`videokr.training.grpo_trainer`) and for evaluation
(`videokr.evaluation.model`). A prompt shows a video, one image (the evaluation's single-frame probe) or
nothing (its text-only probe): `videokr.vision.EncodedPrompts` carries the prompt ids, their modality ids
and the per-sample visual tensors of one kind.

Why not ``model.generate`` (TRL's transformers path, and lighteval's): it repeats every prompt
``num_generations`` times *before* prefill, so a group of 8 runs the vision tower and a ~2,000-token video
prefill 8 times over for identical keys and values; and it decodes with a cache that grows every step, so
shapes change each step, nothing can be captured as a CUDA graph, and a 7B decode step costs tens of
milliseconds of Python and kernel launches for ~5 ms of weight reads (57 new tokens/s at batch 8 on an
H100, against ~1,600 that the memory bandwidth allows).

`VideoRolloutEngine.generate` instead:

1. **prefills each distinct prompt once**: the prompts of a step are left-padded together and run through
   the model (vision tower included, with the video, image or no pixels the prompts carry) in chunks of
   ``prefill_batch``, with the 3-D M-RoPE positions that the model's own ``get_rope_index`` gives for
   those grids, exactly as ``generate`` and the loss pass compute them;
2. **fans the keys and values out** to every sample of the prompt (``index_select`` on the batch axis) in
   a `StaticCache` whose length is rounded up to ``cache_bucket`` tokens, so consecutive rollouts reuse
   one compiled graph;
3. **decodes every sample of the step together**, one token per step with fixed shapes, through
   ``model.get_compiled_call`` (``torch.compile``, CUDA graphs under ``mode="reduce-overhead"``) when
   ``compile`` is on; text positions continue from each prompt's M-RoPE offset;
4. **samples on the device** (repetition penalty, suppressed tokens, temperature, top-k, top-p, min-p, in
   ``generate``'s order; the most likely token when ``do_sample`` is off) and records each chosen token's
   log-probability *as the loss pass defines it* (log-softmax of logits / temperature, before any penalty
   or truncation), which TRL keeps as ``sampling_per_token_logps``;
5. stops when every sample has produced an end-of-sequence token, checked every ``sync_every`` steps so
   the host does not wait on the device each step.

**Keyed sampling** (``keys``, evaluation): sample ``i``'s token at step ``t`` is the one the uniform draw
fixed by ``(keys[i], t)`` selects from the step's distribution (inverse CDF, vocabulary order), so a
completion depends on its prompt and key alone: not on the batch, the chunking, the other samples, or the
global random state. The evaluation keys a sample by (run seed, item, trial), so the paper's protocol (3
runs at temperature 0.1) can generate all its runs at once and each run's answers are those it would get
alone. Over the growing cache the samples of one prompt then **decode as one row until their tokens part**
(a row whose samples draw different tokens splits, the keys and values copied): under the official
decoding (top-p 0.001) the runs part only where two tokens tie, so the 3 runs cost about one run's decode
as well as one prefill. The static cache keeps one row per sample (its shapes, and a captured graph, stay
fixed; a decode step on a GPU is bound by reading the weights, so rows are nearly free there).

Completions end at their first end-of-sequence token (included), as TRL's own path returns them.
``cache="dynamic"`` keeps steps 1, 2, 4, 5 with a growing cache and no compilation: the baseline that
separates what the shared prefill buys from what the static cache and compilation buy (`bench/rollout.py`).

Settings come from TRL's ``generation_kwargs`` (`SamplingSettings.from_generation_kwargs`, GRPO) or from
the generation config ``generate`` would use (`SamplingSettings.from_generation_config`, evaluation);
either refuses an option the engine does not implement rather than ignoring it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from transformers import CompileConfig, DynamicCache, GenerationConfig, StaticCache
from trl.trainer.utils import pad

from videokr.vision import EncodedPrompts

__all__ = ["Rollout", "RolloutOptions", "SamplingSettings", "VideoRolloutEngine"]

# `generate` options the engine implements (anything else with a non-default value is refused).
_HANDLED = {
    "max_new_tokens",
    "do_sample",
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "eos_token_id",
    "pad_token_id",
    "bos_token_id",
    "suppress_tokens",
}
_NEUTRAL = {"repetition_penalty": 1.0, "num_beams": 1, "num_return_sequences": 1, "use_cache": True}

# Generation-config fields `from_generation_config` reads (besides the `_HANDLED` ones), and fields whose
# value does not change which tokens come out: the engine keeps its own cache and compilation, always
# gets ``max_new_tokens``, and beam, encoder-decoder and assisted-generation options have no effect on a
# decoder-only model sampling one sequence per prompt without an assistant.
_CONFIG_HANDLED = _HANDLED | {"repetition_penalty"}
_NO_EFFECT = {
    "transformers_version",
    "_from_model_config",
    "max_length",
    "use_cache",
    "cache_implementation",
    "cache_config",
    "max_cache_len",
    "compile_config",
    "disable_compile",
    "prefill_chunk_size",
    "output_scores",
    "output_logits",
    "output_attentions",
    "output_hidden_states",
    "return_dict_in_generate",
    "renormalize_logits",  # a log-softmax after the warpers: the same distribution
    "early_stopping",
    "length_penalty",
    "encoder_repetition_penalty",
    "encoder_no_repeat_ngram_size",
    "decoder_start_token_id",
    "num_assistant_tokens",
    "num_assistant_tokens_schedule",
    "assistant_confidence_threshold",
    "assistant_lookbehind",
    "target_lookbehind",
}
# Warpers `generate` applies only when sampling: irrelevant to greedy decoding.
_SAMPLING_ONLY = {
    "temperature",
    "top_k",
    "top_p",
    "min_p",
    "typical_p",
    "epsilon_cutoff",
    "eta_cutoff",
    "top_h",
}


@dataclass(frozen=True)
class SamplingSettings:
    """How the next token is chosen; the subset of `generate`'s options GRPO rollouts and evaluation use."""

    max_new_tokens: int
    eos_token_ids: tuple[int, ...]
    pad_token_id: int
    do_sample: bool = True
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    min_p: float | None = None
    suppress_tokens: tuple[int, ...] = ()
    repetition_penalty: float = 1.0  # as generate's: prompt and generated tokens (evaluation only)

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError("generation needs max_new_tokens of at least 1")
        if self.do_sample and self.temperature <= 0:
            raise ValueError(f"sampling needs a temperature above 0, not {self.temperature}")
        if self.repetition_penalty <= 0:
            raise ValueError(f"repetition_penalty must be above 0, not {self.repetition_penalty}")

    @classmethod
    def from_generation_kwargs(cls, kwargs: Mapping[str, Any]) -> SamplingSettings:
        """From TRL's ``generation_kwargs`` (what it would pass to ``generate``); refuses options the engine
        does not implement rather than silently ignoring them."""
        unsupported = sorted(
            key
            for key, value in kwargs.items()
            if key not in _HANDLED and value is not None and _NEUTRAL.get(key, object()) != value
        )
        if unsupported:
            hint = " (its cache is --rollout_cache)" if "cache_implementation" in unsupported else ""
            raise ValueError(
                f"the video rollout engine does not implement generation option(s) {unsupported}{hint}; "
                "remove them or train with --rollout_engine generate (transformers' generate)"
            )
        eos = kwargs.get("eos_token_id")
        eos_ids = () if eos is None else (eos,) if isinstance(eos, int) else tuple(eos)
        if kwargs.get("pad_token_id") is None:
            raise ValueError("generation needs a pad_token_id (the tokenizer has none)")
        temperature = kwargs.get("temperature")
        return cls(
            max_new_tokens=int(kwargs["max_new_tokens"]),
            eos_token_ids=eos_ids,
            pad_token_id=int(kwargs["pad_token_id"]),
            do_sample=bool(kwargs.get("do_sample", True)),
            temperature=1.0 if temperature is None else float(temperature),
            top_p=1.0 if kwargs.get("top_p") is None else float(kwargs["top_p"]),
            top_k=int(kwargs.get("top_k") or 0),
            min_p=kwargs.get("min_p"),
            suppress_tokens=tuple(kwargs.get("suppress_tokens") or ()),
        )

    @classmethod
    def from_generation_config(cls, config: GenerationConfig, *, instead: str) -> SamplingSettings:
        """From the generation config ``generate`` would decode with (the call's options over the model's
        ``generation_config`` over the library's defaults: ``model._prepare_generation_config``).

        Every field that would change the tokens and that the engine does not implement must be unset or
        at the library's default, else a `ValueError` names it and suggests `instead` (the way back to
        ``generate``). The repetition penalty is honoured as ``generate`` applies it (the prompt's tokens
        and those generated so far; padding excluded).
        """
        values = config.to_dict()
        neutral = GenerationConfig._get_default_generation_params()
        sampling = bool(values.get("do_sample"))
        unsupported = sorted(
            key
            for key, value in values.items()
            if key not in _CONFIG_HANDLED
            and key not in _NO_EFFECT
            and not (key in _SAMPLING_ONLY and not sampling)
            and value is not None
            and value != neutral.get(key)
        )
        if unsupported:
            raise ValueError(
                f"the videokr generation engine does not implement generation option(s) {unsupported} "
                f"({', '.join(f'{k}={values[k]!r}' for k in unsupported)}); unset them or {instead}"
            )
        if config.max_new_tokens is None:
            raise ValueError("the videokr generation engine needs max_new_tokens")
        eos = config.eos_token_id
        eos_ids = () if eos is None else (eos,) if isinstance(eos, int) else tuple(eos)
        pad = config.pad_token_id if config.pad_token_id is not None else (eos_ids[0] if eos_ids else None)
        if pad is None:
            raise ValueError("generation needs a pad_token_id (neither the config nor an eos id gives one)")
        return cls(
            max_new_tokens=int(config.max_new_tokens),
            eos_token_ids=eos_ids,
            pad_token_id=int(pad),
            do_sample=sampling,
            # Greedy: the warpers do not apply (so neither does the temperature, which may then be 0).
            temperature=float(config.temperature) if sampling and config.temperature is not None else 1.0,
            top_p=float(config.top_p) if sampling and config.top_p is not None else 1.0,
            top_k=int(config.top_k or 0) if sampling else 0,
            min_p=config.min_p if sampling else None,
            suppress_tokens=tuple(config.suppress_tokens or ()),
            repetition_penalty=float(config.repetition_penalty or 1.0),
        )


@dataclass(frozen=True)
class RolloutOptions:
    """Engine knobs (`VideoGRPOConfig` exposes them as ``--rollout_*``)."""

    cache: Literal["static", "dynamic"] = "static"
    compile: bool | None = None  # None: on for a CUDA model whose weights are not sharded (ZeRO-3 / FSDP)
    prefill_batch: int = 4  # distinct prompts per prefill forward (vision tower memory)
    max_batch: int | None = None  # sequences decoded together (KV-cache memory); None: the whole step
    cache_bucket: int = 256  # static cache length is rounded up to a multiple of this
    sync_every: int = 16  # decode steps between checks for "all finished"

    def __post_init__(self) -> None:
        if self.cache not in ("static", "dynamic"):
            raise ValueError(f"rollout cache must be 'static' or 'dynamic', not {self.cache!r}")
        if self.compile is True and self.cache != "static":
            raise ValueError("compiled decoding needs the static cache (fixed shapes)")
        for name in ("prefill_batch", "cache_bucket", "sync_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"rollout {name} must be at least 1")
        if self.max_batch is not None and self.max_batch < 1:
            raise ValueError("rollout max_batch must be at least 1")


@dataclass
class Rollout:
    """Completions (up to and including the first end-of-sequence token) and their sampling log-probs."""

    completion_ids: list[list[int]]
    logprobs: list[list[float]]
    prefill_s: float = 0.0
    decode_s: float = 0.0
    prompts_prefilled: int = 0
    rows_decoded: int = 0  # decode rows at the end (keyed samples of one prompt share a row until they part)

    @property
    def new_tokens(self) -> int:
        return sum(len(c) for c in self.completion_ids)


@dataclass
class _Prefilled:
    """Per distinct prompt: its padded ids and their attention mask, first-token logits, keys/values, next
    position."""

    input_ids: torch.Tensor  # (U, P), left-padded
    attention_mask: torch.Tensor  # (U, P)
    logits: torch.Tensor  # (U, V) float32
    keys: list[torch.Tensor]  # per layer (U, H, P, D)
    values: list[torch.Tensor]
    next_position: torch.Tensor  # (U,) M-RoPE text position of the first generated token


class VideoRolloutEngine:
    """Generates completions for prompts with a video, one image or no visual (GRPO rollouts, evaluation);
    see the module docstring for how."""

    def __init__(self, settings: SamplingSettings, options: RolloutOptions | None = None) -> None:
        self.settings = settings
        self.options = options or RolloutOptions()
        self._compile_config = CompileConfig(fullgraph=False, dynamic=False, mode="reduce-overhead")
        self._static_cache: tuple[tuple[Any, ...], StaticCache] | None = None

    # ------------------------------------------------------------------------------------------ public

    @torch.no_grad()
    def generate(
        self, model: torch.nn.Module, prompts: EncodedPrompts, keys: Sequence[int] | None = None
    ) -> Rollout:
        """Completions for every sample of `prompts` (samples sharing a distinct prompt share its prefill).

        `keys` (one signed 64-bit integer per sample) switches to keyed sampling (module docstring);
        without them tokens are drawn from torch's global random state, as ``generate`` draws them.
        """
        if keys is not None and len(keys) != len(prompts):
            raise ValueError(f"{len(prompts)} samples but {len(keys)} sampling keys")
        distinct, sample_to_prompt = prompts.unique()
        device = next(model.parameters()).device
        start = time.perf_counter()
        prefilled = self._prefill(model, distinct, device)
        prefill_s = time.perf_counter() - start

        completion_ids: list[list[int]] = [[] for _ in range(len(prompts))]
        logprobs: list[list[float]] = [[] for _ in range(len(prompts))]
        rows_decoded = 0
        start = time.perf_counter()
        for samples in self._decode_chunks(sample_to_prompt):
            index = torch.tensor([sample_to_prompt[s] for s in samples], device=device)
            draws = None if keys is None else _Draws([keys[s] for s in samples], device)
            tokens, logps, lengths, row_of = self._decode(model, prefilled, index, draws)
            rows_decoded += len(lengths)
            # One transfer, not per row; each sample reads its row.
            tokens, logps, lengths, row_of = tokens.cpu(), logps.cpu(), lengths.cpu(), row_of.tolist()
            for member, sample in enumerate(samples):
                row = row_of[member]
                n = int(lengths[row])
                completion_ids[sample] = tokens[row, :n].tolist()
                logprobs[sample] = logps[row, :n].tolist()
        decode_s = time.perf_counter() - start
        return Rollout(completion_ids, logprobs, prefill_s, decode_s, len(distinct), rows_decoded)

    # ----------------------------------------------------------------------------------------- prefill

    def _prefill(self, model: torch.nn.Module, prompts: EncodedPrompts, device: torch.device) -> _Prefilled:
        """Left-pad the distinct prompts together; run them in chunks; keep their caches and last logits."""
        # Left padding with TRL's own `pad`, as its generation path pads the same prompts.
        ids = [torch.tensor(p, dtype=torch.long) for p in prompts.prompt_ids]
        input_ids = pad(ids, padding_value=self.settings.pad_token_id, padding_side="left").to(device)
        mask = pad([torch.ones_like(i) for i in ids], padding_side="left").to(device)
        mm_types = [torch.tensor(m, dtype=torch.long) for m in prompts.mm_token_type_ids]
        mm_types = pad(mm_types, padding_side="left").to(device)

        logits, keys, values, positions = [], [], [], []
        step = self.options.prefill_batch
        for start in range(0, len(prompts), step):
            end = min(start + step, len(prompts))
            # The prompts' video, image or nothing (text only); M-RoPE needs their grids, not their pixels.
            visual = {k: v.to(device) for k, v in prompts.video.model_inputs(start, end).items()}
            rope_kwargs = {k: v for k, v in visual.items() if k not in _PIXEL_KEYS}
            position_ids, rope_deltas = _rope_index(model)(
                input_ids[start:end],
                mm_token_type_ids=mm_types[start:end],
                attention_mask=mask[start:end],
                **rope_kwargs,
            )
            cache = DynamicCache(config=model.config)
            output = model(
                input_ids=input_ids[start:end],
                attention_mask=mask[start:end],
                position_ids=position_ids,
                mm_token_type_ids=mm_types[start:end],
                cache=cache,
                use_cache=True,
                logits_to_keep=1,
                **visual,
            )
            logits.append(output.logits[:, -1].float())
            keys.append([layer.keys for layer in cache.layers])
            values.append([layer.values for layer in cache.layers])
            # The first new token sits right after the prompt's own tokens, shifted by its M-RoPE offset.
            positions.append(mask[start:end].sum(dim=1) + rope_deltas.view(-1).to(device))
        return _Prefilled(
            input_ids=input_ids,
            attention_mask=mask,
            logits=torch.cat(logits),
            keys=[torch.cat(layer) for layer in zip(*keys, strict=True)],
            values=[torch.cat(layer) for layer in zip(*values, strict=True)],
            next_position=torch.cat(positions),
        )

    # ------------------------------------------------------------------------------------------ decode

    def _decode_chunks(self, sample_to_prompt: Sequence[int]) -> Iterator[list[int]]:
        """Samples in decode batches of at most ``max_batch``, each group kept together when it fits."""
        limit = self.options.max_batch or len(sample_to_prompt)
        order = sorted(range(len(sample_to_prompt)), key=lambda s: sample_to_prompt[s])
        for start in range(0, len(order), limit):
            yield order[start : start + limit]

    def _decode(
        self, model: torch.nn.Module, prefilled: _Prefilled, index: torch.Tensor, draws: _Draws | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Decode the samples whose prompts are `index`; returns per row its tokens, log-probs and length,
        and per sample its row.

        Without `draws` (or over the static cache) every sample is its own row. With them, over the growing
        cache, the samples of one prompt start as one row and a row splits where its samples' tokens part.
        """
        s, options = self.settings, self.options
        device = index.device
        # Samples map to rows through `row_of` (a row's samples share its tokens until they part); without
        # keyed draws, or over the static cache, every sample is its own row and `row_of` is None.
        row_of: torch.Tensor | None = None
        if draws is not None and options.cache == "dynamic":
            index, row_of = torch.unique(index, return_inverse=True)  # one row per distinct prompt
        rows, prompt_length = len(index), prefilled.attention_mask.shape[1]
        capacity = prompt_length + s.max_new_tokens
        if options.cache == "static":
            capacity = math.ceil(capacity / options.cache_bucket) * options.cache_bucket
            cache: Any = self._reusable_static_cache(model, rows, capacity, prefilled.keys[0])
        else:
            cache = DynamicCache(config=model.config)
        for layer, (k, v) in enumerate(zip(prefilled.keys, prefilled.values, strict=True)):
            cache.update(k.index_select(0, index), v.index_select(0, index), layer)
        # Prompt padding stays masked; every later slot is open (causality hides the ones not written yet).
        full_mask = torch.ones((rows, capacity), dtype=torch.long, device=device)
        full_mask[:, :prompt_length] = prefilled.attention_mask.index_select(0, index)
        compiled = _compiled(model, options)
        forward = model.get_compiled_call(self._compile_config) if compiled else model.__call__
        position = prefilled.next_position.index_select(0, index)
        eos = torch.tensor(s.eos_token_ids, dtype=torch.long, device=device)
        suppress = torch.tensor(s.suppress_tokens, dtype=torch.long, device=device)

        tokens = torch.full((rows, s.max_new_tokens), s.pad_token_id, dtype=torch.long, device=device)
        logps = torch.zeros((rows, s.max_new_tokens), dtype=torch.float32, device=device)
        lengths = torch.full((rows,), s.max_new_tokens, dtype=torch.long, device=device)
        done = torch.zeros(rows, dtype=torch.bool, device=device)
        occurred = self._prompt_tokens(prefilled, index) if s.repetition_penalty != 1.0 else None
        logits = prefilled.logits.index_select(0, index)
        for step in range(s.max_new_tokens):
            uniform = None if draws is None else draws.at(step)
            token, logp = self._choose(logits, suppress, occurred, uniform, row_of)
            if row_of is not None:
                # A finished row's samples stay together (they only pad from here on).
                token = token.masked_fill(done.index_select(0, row_of), s.pad_token_id)
                lead = _per_row(token, row_of, rows)
                parting = _parting(row_of, token, lead) if len(row_of) > rows else None
                if parting is not None:
                    parent, row_of = parting
                    cache.reorder_cache(parent)
                    tokens, logps, lengths, done, position, full_mask = (
                        t.index_select(0, parent) for t in (tokens, logps, lengths, done, position, full_mask)
                    )
                    occurred = None if occurred is None else occurred.index_select(0, parent)
                    rows = len(parent)
                    lead = _per_row(token, row_of, rows)
                token, logp = lead, _per_row(logp, row_of, rows)
            token = token.masked_fill(done, s.pad_token_id)
            if occurred is not None:
                occurred.scatter_(1, token.view(rows, 1), True)
            tokens[:, step], logps[:, step] = token, logp.masked_fill(done, 0.0)
            finished = ~done & torch.isin(token, eos)
            lengths = torch.where(finished, step + 1, lengths)
            done |= finished
            if step + 1 == s.max_new_tokens or ((step + 1) % options.sync_every == 0 and bool(done.all())):
                break
            seen = prompt_length + step + 1
            mask = full_mask if options.cache == "static" else full_mask[:, :seen]
            positions = (position + step).view(1, rows, 1).expand(3, rows, 1)
            logits = (
                forward(
                    input_ids=token.view(rows, 1),
                    attention_mask=mask,
                    position_ids=positions,
                    cache=cache,
                    use_cache=True,
                    logits_to_keep=1,
                )
                .logits[:, -1]
                .float()
            )
        return tokens, logps, lengths, torch.arange(rows, device=device) if row_of is None else row_of

    @staticmethod
    def _prompt_tokens(prefilled: _Prefilled, index: torch.Tensor) -> torch.Tensor:
        """(rows, vocab) True where the row's prompt holds the token (its padding excluded), for the
        repetition penalty."""
        vocab = prefilled.logits.shape[-1]
        ids = prefilled.input_ids.index_select(0, index)
        ids = ids.masked_fill(prefilled.attention_mask.index_select(0, index) == 0, vocab)
        occurred = torch.zeros((len(index), vocab + 1), dtype=torch.bool, device=index.device)
        return occurred.scatter_(1, ids, True)[:, :vocab]

    def _reusable_static_cache(
        self, model: torch.nn.Module, rows: int, capacity: int, like: torch.Tensor
    ) -> StaticCache:
        """The previous rollout's cache, emptied, when the shapes match (as ``generate`` keeps its own):
        its tensors keep their addresses, so a captured CUDA graph is replayed rather than re-recorded."""
        key = (id(model), rows, capacity, like.dtype, like.device)
        if self._static_cache is not None and self._static_cache[0] == key:
            cache = self._static_cache[1]
            cache.reset()
        else:
            self._static_cache = None  # free the old one before allocating
            cache = StaticCache(config=model.config, max_cache_len=capacity)
            self._static_cache = (key, cache)
        return cache

    def _choose(
        self,
        logits: torch.Tensor,
        suppress: torch.Tensor,
        occurred: torch.Tensor | None = None,
        uniform: torch.Tensor | None = None,
        row_of: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Next token per sample, and its log-probability under logits / temperature (the loss pass's).

        `logits` are per row and `row_of` maps each sample to its row (None: one sample per row).
        `occurred` (rows, vocab): tokens the repetition penalty applies to, as ``generate`` applies it (on the
        logits, before the temperature: a positive logit divided by the penalty, a negative multiplied).
        `uniform` (one draw in [0, 1) per sample): keyed sampling, the token where the draw falls in the
        cumulative distribution; else torch's global random state picks it (one sample per row).
        """
        s = self.settings
        scaled = logits / s.temperature
        logprobs = torch.log_softmax(scaled, dim=-1)
        if occurred is not None:
            penalty = s.repetition_penalty
            penalized = torch.where(logits < 0, logits * penalty, logits / penalty)
            scaled = torch.where(occurred, penalized, logits) / s.temperature
        if suppress.numel():
            scaled = scaled.index_fill(-1, suppress, -math.inf)
        if not s.do_sample:
            token = scaled.argmax(dim=-1)
            token = token if row_of is None else token.index_select(0, row_of)
        elif uniform is not None:
            token = _inverse_cdf(torch.softmax(_truncate(scaled, s), dim=-1), uniform, row_of)
        elif row_of is None:
            token = torch.multinomial(torch.softmax(_truncate(scaled, s), dim=-1), 1).squeeze(-1)
        else:
            raise ValueError("samples share rows only under keyed sampling")
        if row_of is not None:  # each sample's token in its row, without copying rows out per sample
            return token, logprobs[row_of, token]
        return token, logprobs.gather(-1, token.unsqueeze(-1)).squeeze(-1)


class _Draws:
    """Keyed uniform draws: sample ``i``'s draw at step ``t`` is a fixed function of (key ``i``, ``t``)
    (SplitMix64, computed on the device in wrapping int64 arithmetic), the same on every device and in
    every batch."""

    def __init__(self, keys: Sequence[int], device: torch.device) -> None:
        self.keys = _splitmix64(torch.tensor([_signed64(k) for k in keys], dtype=torch.long, device=device))

    def at(self, step: int) -> torch.Tensor:
        bits = _splitmix64(self.keys + step)
        return _shift_right(bits, 11).double() * 2.0**-53  # 53 random bits: [0, 1)


def _signed64(value: int) -> int:
    """`value` modulo 2**64 as a signed int64 (torch has no unsigned 64-bit arithmetic)."""
    value %= 1 << 64
    return value - (1 << 64) if value >= 1 << 63 else value


def _shift_right(x: torch.Tensor, bits: int) -> torch.Tensor:
    """A logical right shift (torch shifts int64 arithmetically, copying the sign bit)."""
    return (x >> bits) & ((1 << (64 - bits)) - 1)


def _splitmix64(x: torch.Tensor) -> torch.Tensor:
    """SplitMix64's output function of ``x`` + its increment (Steele, Lea, Flood 2014)."""
    x = x + _signed64(0x9E3779B97F4A7C15)
    x = (x ^ _shift_right(x, 30)) * _signed64(0xBF58476D1CE4E5B9)
    x = (x ^ _shift_right(x, 27)) * _signed64(0x94D049BB133111EB)
    return x ^ _shift_right(x, 31)


def _inverse_cdf(probs: torch.Tensor, uniform: torch.Tensor, row_of: torch.Tensor | None) -> torch.Tensor:
    """Per sample, the first token (vocabulary order) whose cumulative probability in its row (`row_of`;
    None: its own) exceeds its draw times the row's total; a token of probability 0 is never chosen."""
    cdf = probs.double().cumsum(dim=-1)
    last = probs.shape[-1] - 1 - (probs.flip(-1) > 0).int().argmax(dim=-1)
    if row_of is not None:
        cdf, last = cdf.index_select(0, row_of), last.index_select(0, row_of)
    target = (uniform * cdf[:, -1]).unsqueeze(-1)
    token = torch.searchsorted(cdf, target, right=True).squeeze(-1)
    # A draw that rounds onto the total would fall past the vocabulary (or onto trailing zeros): take the
    # last token with any probability.
    return torch.minimum(token, last)


def _parting(
    row_of: torch.Tensor, token: torch.Tensor, lead: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """None when every row's samples chose its `lead` token (one of its samples' tokens); else each new
    row's parent row and each sample's new row (one row per (row, token), in row order)."""
    if bool((token == lead.index_select(0, row_of)).all()):
        return None
    pairs, new_row_of = torch.unique(torch.stack([row_of, token], dim=1), dim=0, return_inverse=True)
    return pairs[:, 0], new_row_of


def _per_row(values: torch.Tensor, row_of: torch.Tensor, rows: int) -> torch.Tensor:
    """One sample's value per row (rows whose samples agree, so any one)."""
    return values.new_zeros(rows).scatter_(0, row_of, values)


#: Forward inputs that carry pixels (the vision tower's), as opposed to the grids M-RoPE also reads.
_PIXEL_KEYS = ("pixel_values", "pixel_values_videos")


def _rope_index(model: torch.nn.Module) -> Any:
    """The model's ``get_rope_index`` (on the inner Qwen-VL model; found through wrappers such as PEFT)."""
    for module in model.modules():
        if hasattr(type(module), "get_rope_index"):
            return module.get_rope_index
    raise TypeError(f"{type(model).__name__} has no get_rope_index: only Qwen2.5-VL / Qwen3-VL are supported")


def _compiled(model: torch.nn.Module, options: RolloutOptions) -> bool:
    """Whether the decode step is compiled: as asked, else where it pays (a CUDA model with a static
    cache; the trainer turns it off for sharded weights, since it knows the distributed setup)."""
    if options.compile is not None:
        return options.compile
    return options.cache == "static" and next(model.parameters()).device.type == "cuda"


#: How far the best token's probability must clear top-p for `_only_the_best_survives_top_p`: far above
#: the float32 rounding of the cumulative sums the full rule compares (about 1e-6 over 152K tokens).
_TOP_P_MARGIN = 1e-4


def _only_the_best_survives_top_p(scaled: torch.Tensor, top_p: float) -> bool:
    """Whether top-p keeps only each row's most likely token, known without sorting the vocabulary.

    The rule drops tokens in ascending order while their cumulative mass stays within 1 - top_p; all but
    the best sum to 1 - p_best, so when p_best clears top_p (by `_TOP_P_MARGIN`) and no token ties with
    it, every other token is dropped, in any order. That is the official decoding's usual step (top-p
    0.001), where the full rule sorts 152K logits per row: about a tenth of a 7B-width decode step on a
    CPU. Only there: the check reads a flag on the host, which on CUDA would be a sync every step."""
    if scaled.device.type != "cpu" or scaled.shape[-1] < 2:
        return False
    top = torch.topk(scaled, 2, dim=-1).values
    best = torch.softmax(scaled, dim=-1).amax(dim=-1)
    return bool(((top[:, 0] > top[:, 1]) & (best >= top_p + _TOP_P_MARGIN)).all())


def _truncate(scaled: torch.Tensor, s: SamplingSettings) -> torch.Tensor:
    """Top-k, then top-p (nucleus), then min-p, as `generate`'s warpers order them."""
    if s.top_k and s.top_k < scaled.shape[-1]:
        kth = torch.topk(scaled, s.top_k, dim=-1).values[..., -1:]
        scaled = scaled.masked_fill(scaled < kth, -math.inf)
    if s.top_p < 1.0 and _only_the_best_survives_top_p(scaled, s.top_p):
        best = scaled.argmax(dim=-1, keepdim=True)
        scaled = torch.full_like(scaled, -math.inf).scatter(-1, best, scaled.gather(-1, best))
    elif s.top_p < 1.0:
        # Drop the least likely tokens while their mass stays within 1 - top_p (the best one always stays),
        # computed as transformers' warper computes it (ascending sort and cumulative sum), so tokens that
        # tie (frequent in bf16) or sit at the edge are kept or dropped exactly as ``generate`` does.
        ordered, order = torch.sort(scaled, dim=-1, descending=False)
        drop = torch.softmax(ordered, dim=-1).cumsum(dim=-1) <= 1 - s.top_p
        drop[..., -1] = False
        scaled = scaled.masked_fill(drop.scatter(-1, order, drop), -math.inf)
    if s.min_p:
        probs = torch.softmax(scaled, dim=-1)
        floor = s.min_p * probs.max(dim=-1, keepdim=True).values
        scaled = scaled.masked_fill(probs < floor, -math.inf)
    return scaled
