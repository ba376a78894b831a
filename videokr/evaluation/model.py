"""A video-capable lighteval model for Qwen2.5-VL / Qwen3-VL through transformers.

lighteval 0.13 has no video path (its VLM model passes images only), so this class is the way in: it
reads the clip path and probe mode from ``Doc.specific``, decodes the frames the probe asks for (see
`videokr.evaluation.inputs`), renders the chat template with a video (or image) part where the official
``<video>`` stands, and generates in batches of one probe kind with left padding.

Generation goes through `videokr.generation.VideoRolloutEngine` (``engine="videokr"``, the default): the
batch's prompts are prefilled together and decoded together, on CUDA over a static KV cache with the
decode step compiled (CUDA graphs), elsewhere over a growing cache, with the decoding settings
``generate`` would use (the config's generation parameters over the model's own ``generation_config``),
so answers are token for token those of ``model.generate`` (tested in float32). In bf16 the static
cache's attention, which spans its not-yet-written slots, rounds differently from ``generate``'s, so
where two tokens tie or nearly tie the answers may part. A setting the engine does not implement is
refused when the model loads. ``engine="generate"`` calls ``model.generate`` itself.

**Runs.** The paper reports the mean of 3 runs. A config with ``runs=n`` answers every item for the seeds
``seed`` … ``seed + n - 1`` at once: lighteval gets the first run's answers and the others are written to
their own runs' prediction caches, so the runs that follow (`next_run`, ``videokr eval --runs``) are
answered from there. Through the engine each item is then prefilled once for all its runs and, with the
sampling keyed by (seed, item, trial), each run's answers are exactly those it gets when run alone (and do
not depend on the batch size either); off CUDA the runs of an item decode as one sequence until their
tokens part, which under the official decoding (top-p 0.001) happens only where two tokens tie. With
``engine="generate"`` the runs are generated one after another, each seeding torch's random state.

Everything that changes what the model sees is a field of `VideoModelConfig` (fps, frame cap, pixel
budget, probe override, frame seed, generation settings): lighteval's prediction cache keys on the
model config's hash under the model name, so two runs that saw different frames can never share cached
answers. The defaults are the paper's: 2 fps, at most 128 frames, 100,352 pixels per frame,
temperature 0.1, up to 8,192 new tokens.

``lighteval custom`` builds the model from a bare ``CustomModelConfig`` whose only free field is the
model name, so that name may carry the settings in lighteval's own ``key=value`` syntax, e.g.
``model_name=Qwen/Qwen2.5-VL-7B-Instruct,max_frames=32,batch_size=4``.
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from lighteval.models.abstract_model import LightevalModel, ModelConfig
from lighteval.models.model_input import GenerationParameters
from lighteval.models.model_output import ModelResponse
from lighteval.tasks.requests import Doc, SamplingMethod
from lighteval.utils.cache_management import SampleCache
from pydantic import Field

from videokr.errors import VideoDecodeError
from videokr.evaluation.inputs import (
    UNREADABLE,
    GenerationRequest,
    Probe,
    SingleFrameForm,
    load_probe_visual,
)
from videokr.evaluation.tasks import MAX_NEW_TOKENS
from videokr.evaluation.weights import weights_identity
from videokr.vision import (
    PAPER_FPS,
    PAPER_MAX_FRAMES,
    PAPER_MAX_PIXELS,
    PAPER_MIN_PIXELS,
    FrameSampling,
    Visual,
    VisualLoader,
    chat_messages,
    encode_visual_prompts,
    process,
    render,
)

if TYPE_CHECKING:
    from transformers import PreTrainedModel, ProcessorMixin

    from videokr.generation import Rollout, SamplingSettings, VideoRolloutEngine

__all__ = ["PAPER_GENERATION", "Generation", "VideoLightevalModel", "VideoModelConfig"]

logger = logging.getLogger(__name__)

#: The official evaluation's decoding: sampling at temperature 0.1 with top-p 0.001 (so in effect the most
#: likely token unless two tie), up to 8,192 new tokens. The paper reports the mean of 3 such runs.
PAPER_GENERATION = {"temperature": 0.1, "top_p": 0.001, "max_new_tokens": MAX_NEW_TOKENS}


class VideoModelConfig(ModelConfig):
    """Model and frame settings; every field is part of the cache key (see the module docstring)."""

    model_name: str
    revision: str | None = None
    dtype: str = "auto"  # "auto": bfloat16 on GPU, float32 on CPU
    device: str = "auto"  # "auto": cuda when available
    attn_implementation: str | None = None
    batch_size: int = Field(default=1, ge=1)
    fps: float = Field(default=PAPER_FPS, gt=0)
    max_frames: int = Field(default=PAPER_MAX_FRAMES, ge=1)
    num_frames: int | None = None  # a fixed frame count instead of fps (ablations)
    max_pixels: int = PAPER_MAX_PIXELS
    min_pixels: int = PAPER_MIN_PIXELS
    video_backend: str | None = None
    probe: Probe | None = None  # None: as the task says; else forced for every task
    frame_seed: int = 0  # seeds the single-frame probe's frame choice
    single_frame_as: SingleFrameForm = "image"  # the probe's frame as an image (paper) or a still video
    seed: int = 0  # seeds sampling (temperature > 0)
    runs: int = Field(default=1, ge=1)  # answers for seeds seed … seed + runs - 1, generated together
    generation_parameters: GenerationParameters = GenerationParameters(**PAPER_GENERATION)
    engine: Literal["videokr", "generate"] = "videokr"  # the batched engine, or transformers' generate
    # The weights' identity (`videokr.evaluation.weights`), filled in when the model loads: the prediction
    # cache is keyed on it, so a checkpoint retrained in place is evaluated again, never answered from
    # the old weights' cache.
    weights: str | None = None

    @classmethod
    def from_model_name(cls, name: str, **overrides: Any) -> VideoModelConfig:
        """Parse a ``lighteval custom`` model name: a bare model id/path, or ``key=value,…`` settings.

        Generation parameters given there are merged over the paper's, so asking for fewer tokens does
        not silently switch sampling to greedy.
        """
        fields: dict[str, Any] = {}
        if "=" in name:
            fields = cls._parse_args(name)
            for alias in ("pretrained", "model"):
                if alias in fields and "model_name" not in fields:
                    fields["model_name"] = fields.pop(alias)
        else:
            fields["model_name"] = name
        generation = {**PAPER_GENERATION, **dict(fields.pop("generation_parameters", {}) or {})}
        return cls(**fields, generation_parameters=GenerationParameters(**generation), **overrides)

    @property
    def sampling(self) -> FrameSampling:
        return FrameSampling(
            fps=self.fps,
            max_frames=self.max_frames,
            num_frames=self.num_frames,
            max_pixels=self.max_pixels,
            min_pixels=self.min_pixels,
            backend=self.video_backend,
        )


@dataclass(frozen=True)
class Generation:
    """One generated answer with the token ids lighteval records in its details."""

    text: str
    input_tokens: list[int]
    output_tokens: list[int]
    input_text: str = ""


class VideoLightevalModel(LightevalModel):
    """Qwen2.5-VL / Qwen3-VL (any ``AutoModelForImageTextToText`` with a Qwen-style processor) on video.

    Subclasses may replace `_load_model` and `_generate_runs` (tests script the answers that way) while
    keeping the real request building, frame decoding and probe handling.
    """

    def __init__(self, config: ModelConfig) -> None:
        if not isinstance(config, VideoModelConfig):
            config = VideoModelConfig.from_model_name(config.model_name)
        self.config: VideoModelConfig = config
        self.processor = self._load_processor()
        self.model = self._load_model()
        self.visuals = VisualLoader(self.processor, config.sampling)
        self._weights = weights_identity(config.model_name, config.revision)
        self._cache = SampleCache(_cache_config(config, self._weights))
        self.unreadable: list[tuple[str, str]] = []  # (item id, why its clip could not be read)
        self._engine: VideoRolloutEngine | None = None
        self.last_rollout: Rollout | None = None  # the engine's last call (its timings and decode rows)
        if self.model is not None and config.engine == "videokr":
            self._sampling(MAX_NEW_TOKENS)  # refuse settings the engine cannot honour before any item runs

    # ----------------------------------------------------------------------------------- loading

    def _load_processor(self) -> ProcessorMixin:
        from transformers import AutoProcessor

        return AutoProcessor.from_pretrained(self.config.model_name, revision=self.config.revision)

    def _load_model(self) -> PreTrainedModel | None:
        import torch
        from transformers import AutoModelForImageTextToText

        device = self.device
        dtype = self.config.dtype
        if dtype == "auto":
            dtype = "bfloat16" if device.startswith("cuda") else "float32"
        kwargs: dict[str, Any] = {"revision": self.config.revision, "dtype": getattr(torch, dtype)}
        if self.config.attn_implementation:
            kwargs["attn_implementation"] = self.config.attn_implementation
        model = AutoModelForImageTextToText.from_pretrained(self.config.model_name, **kwargs)
        return model.to(device).eval()

    @property
    def device(self) -> str:
        if self.config.device != "auto":
            return self.config.device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    # ----------------------------------------------------------------------------------- lighteval API

    @property
    def tokenizer(self) -> Any:
        return self.processor.tokenizer

    @property
    def add_special_tokens(self) -> bool:
        return False

    @property
    def max_length(self) -> int:
        text_config = getattr(getattr(self.model, "config", None), "text_config", None)
        return int(getattr(text_config, "max_position_embeddings", 32768))

    @property
    def seeds(self) -> list[int]:
        """The runs answered together: this run's seed, then the next ``runs - 1``."""
        return [self.config.seed + k for k in range(self.config.runs)]

    def next_run(self) -> None:
        """Move on to the next run (the next seed), whose answers the previous runs have cached."""
        if self.config.runs < 2:
            raise ValueError("this was the last of the runs the model was configured for")
        self.config = self.config.model_copy(
            update={"seed": self.config.seed + 1, "runs": self.config.runs - 1}
        )
        self._cache = SampleCache(_cache_config(self.config, self._weights))

    def greedy_until(self, docs: list[Doc]) -> list[ModelResponse]:
        """One response per doc, with one text per trial (``specific["trials"]``), always a list.

        Answers come from lighteval's prediction cache where it has them; the rest are generated a batch
        of docs at a time, for every run in `seeds`, and written to the runs' caches as each batch
        finishes, so an interrupted run loses at most one batch and a re-run generates only what is
        missing. An item whose clip cannot be read is answered with the `UNREADABLE` marker (scored wrong,
        counted and listed by the metric), logged with its id, and not cached, so a fixed clip is evaluated
        on the next run.
        """
        cache, method = self._cache, SamplingMethod.GENERATIVE
        if cache is None:
            return self._respond(docs, self.seeds[:1])[0][0]
        task_ids = {cache.get_task_id(doc.task_name, method) for doc in docs}
        todo, _ = cache.get_samples_to_process_and_cache(docs, method)
        if len(todo) < len(docs):
            logger.info("prediction cache: %d of %d items already answered", len(docs) - len(todo), len(docs))
        later = [self._run_cache(seed) for seed in self.seeds[1:]]
        unreadable: dict[int, ModelResponse] = {}
        step = self.config.batch_size
        for start in range(0, len(todo), step):
            chunk = todo[start : start + step]
            by_run, failed = self._respond(chunk, self.seeds)
            kept = [k for k in range(len(chunk)) if k not in failed]
            for run_cache, responses in zip([cache, *later], by_run, strict=True):
                _store(run_cache, [chunk[k] for k in kept], [responses[k] for k in kept])
            unreadable.update({id(chunk[k]): by_run[0][k] for k in failed})
        answered = [doc for doc in docs if id(doc) not in unreadable]
        stored = iter(cache.get_samples_from_cache(answered, task_ids, method) if answered else [])
        return [unreadable[id(doc)] if id(doc) in unreadable else next(stored) for doc in docs]

    def _run_cache(self, seed: int) -> SampleCache:
        """The prediction cache of the run with `seed` (this one's registry, so the task hashes agree)."""
        cache = SampleCache(_cache_config(self.config.model_copy(update={"seed": seed}), self._weights))
        cache._init_registry(self._cache.registry)
        return cache

    def _respond(self, docs: list[Doc], seeds: Sequence[int]) -> tuple[list[list[ModelResponse]], set[int]]:
        """Per run (`seeds`), the responses for `docs`; and the positions of docs whose clip could not be
        read."""
        requests = self.requests(docs)
        generations: dict[tuple[int, int, int], Generation] = {}
        failed: dict[int, str] = {}
        for batch in self._batches(requests):
            prepared = []
            for request in batch:
                if request.doc_index in failed:
                    continue
                try:
                    prepared.append(self._with_visual(docs[request.doc_index], request))
                except VideoDecodeError as error:
                    failed[request.doc_index] = f"{error.path}: {error.reason}"
                    self.unreadable.append((request.item_id, failed[request.doc_index]))
                    logger.warning(
                        "item %s: clip unreadable, scored as wrong: %s",
                        request.item_id,
                        failed[request.doc_index],
                    )
            prepared = [request for request in prepared if request.doc_index not in failed]
            if not prepared:
                continue
            budget = self._max_new_tokens(docs[prepared[0].doc_index])
            for run, answers in enumerate(self._generate_runs(prepared, budget, seeds)):
                for request, generation in zip(prepared, answers, strict=True):
                    generations[run, request.doc_index, request.trial] = generation
        by_run = []
        for run in range(len(seeds)):
            responses = []
            for i, doc in enumerate(docs):
                trials = _trials(doc)
                if i in failed:
                    marker = f"{UNREADABLE} {failed[i]}"
                    responses.append(
                        ModelResponse(input="", text=[marker] * trials, output_tokens=[[]] * trials)
                    )
                    continue
                outs = [generations[run, i, t] for t in range(trials)]
                responses.append(
                    ModelResponse(
                        input=outs[0].input_text,
                        input_tokens=outs[0].input_tokens,
                        text=[g.text for g in outs],
                        output_tokens=[g.output_tokens for g in outs],
                    )
                )
            by_run.append(responses)
        return by_run, set(failed)

    def loglikelihood(self, docs: list[Doc]) -> list[ModelResponse]:
        raise NotImplementedError("VideoKR-Eval is generative; log-likelihood tasks are not supported")

    def loglikelihood_rolling(self, docs: list[Doc]) -> list[ModelResponse]:
        raise NotImplementedError("VideoKR-Eval is generative; perplexity tasks are not supported")

    # ----------------------------------------------------------------------------------- requests

    def requests(self, docs: Sequence[Doc]) -> list[GenerationRequest]:
        """One request per (doc, trial), visual not yet decoded."""
        out = []
        for i, doc in enumerate(docs):
            item = doc.specific or {}
            probe = self.config.probe or item.get("probe", "video")
            for trial in range(_trials(doc)):
                visual = Visual(probe)
                out.append(GenerationRequest(i, trial, str(item.get("id", doc.id)), doc.query, visual))
        return out

    def _batches(self, requests: list[GenerationRequest]) -> list[list[GenerationRequest]]:
        """Batches of one probe mode (a processor call takes one kind of visual) and one token budget."""
        groups: dict[Probe, list[GenerationRequest]] = defaultdict(list)
        for request in requests:
            groups[request.visual.kind].append(request)
        size = self.config.batch_size
        return [group[i : i + size] for group in groups.values() for i in range(0, len(group), size)]

    def _with_visual(self, doc: Doc, request: GenerationRequest) -> GenerationRequest:
        video = (doc.specific or {}).get("video")
        visual = load_probe_visual(
            self.visuals,
            video,
            request.visual.kind,
            item_id=request.item_id,
            trial=request.trial,
            frame_seed=self.config.frame_seed,
            single_frame_as=self.config.single_frame_as,
        )
        return GenerationRequest(request.doc_index, request.trial, request.item_id, request.prompt, visual)

    def _max_new_tokens(self, doc: Doc) -> int:
        return int(self.config.generation_parameters.max_new_tokens or doc.generation_size or MAX_NEW_TOKENS)

    # ----------------------------------------------------------------------------------- generation

    def render(self, request: GenerationRequest) -> str:
        """The chat text: a video (or image) part where the official ``<video>`` stands, then the prompt."""
        messages = chat_messages(request.prompt, request.visual.kind, system_prompt=self.config.system_prompt)
        return render(self.processor, messages, generation_prompt=True)

    def _generate_runs(
        self, batch: list[GenerationRequest], max_new_tokens: int, seeds: Sequence[int]
    ) -> list[list[Generation]]:
        """Per run (one per seed), one answer per request of the batch (all of one probe kind), through
        the configured engine."""
        texts = [self.render(r) for r in batch]
        visuals = [r.visual for r in batch]
        if self.config.engine == "generate":
            return [self._generate_transformers(texts, visuals, max_new_tokens, seed) for seed in seeds]
        keys = [[sampling_key(seed, r.item_id, r.trial) for seed in seeds] for r in batch]
        return self._generate_engine(texts, visuals, max_new_tokens, keys)

    def _generation_options(self, max_new_tokens: int) -> dict[str, Any]:
        """The options passed to ``generate`` (either engine decodes with what ``generate`` makes of them)."""
        params = self.config.generation_parameters
        sample = params.temperature > 0
        return {
            "max_new_tokens": max_new_tokens,
            "do_sample": sample,
            **({"temperature": params.temperature} if sample else {}),
            **{k: getattr(params, k) for k in ("top_p", "top_k", "repetition_penalty") if getattr(params, k)},
        }

    def _sampling(self, max_new_tokens: int) -> SamplingSettings:
        """The engine's settings: the generation config ``generate`` would decode with (the options over
        the model's ``generation_config`` over the library's defaults), refused where the engine lacks one."""
        from videokr.generation import SamplingSettings

        options = self._generation_options(max_new_tokens)
        config, _ = self.model._prepare_generation_config(None, **options)
        return SamplingSettings.from_generation_config(
            config, instead="evaluate with engine=generate (transformers' generate)"
        )

    def _generate_engine(
        self, texts: list[str], visuals: list[Visual], max_new_tokens: int, keys: list[list[int]]
    ) -> list[list[Generation]]:
        """Through `VideoRolloutEngine`: each request its own distinct prompt, prefilled once for all its
        runs (``keys[request][run]``, keyed sampling), the batch's runs decoded together."""
        from videokr.generation import RolloutOptions, VideoRolloutEngine

        settings = self._sampling(max_new_tokens)
        if self._engine is None or self._engine.settings != settings:
            # Kept across batches so its static cache (and a captured CUDA graph) is reused. One prefill
            # for the batch, as generate's. Off CUDA nothing is compiled, so fixed shapes buy nothing and
            # the growing cache keeps generate's own arithmetic (bf16 included, see the module docstring).
            cuda = next(self.model.parameters()).device.type == "cuda"
            options = RolloutOptions(
                cache="static" if cuda else "dynamic", prefill_batch=self.config.batch_size
            )
            self._engine = VideoRolloutEngine(settings, options)
        runs = len(keys[0])
        prompts = encode_visual_prompts(self.processor, texts, visuals).repeat(runs)
        rollout = self._engine.generate(self.model, prompts, [key for request in keys for key in request])
        self.last_rollout = rollout
        answers = self.processor.batch_decode(rollout.completion_ids, skip_special_tokens=True)
        pad = self.tokenizer.pad_token_id
        by_run: list[list[Generation]] = [[] for _ in range(runs)]
        for sample, (text, completion) in enumerate(zip(answers, rollout.completion_ids, strict=True)):
            request, run = divmod(sample, runs)
            kept = [t for t in completion if t != pad]
            by_run[run].append(Generation(text, prompts.prompt_ids[sample], kept, texts[request]))
        return by_run

    def _generate_transformers(
        self, texts: list[str], visuals: list[Visual], max_new_tokens: int, seed: int
    ) -> list[Generation]:
        """Through ``model.generate`` on the left-padded batch, torch's random state seeded with `seed`."""
        import torch

        inputs = process(self.processor, texts, visuals, padding_side="left").to(self.model.device)
        torch.manual_seed(seed)
        with torch.no_grad():
            out = self.model.generate(**inputs, **self._generation_options(max_new_tokens))
        width = inputs["input_ids"].shape[1]
        new = out[:, width:]
        answers = self.processor.batch_decode(new, skip_special_tokens=True)
        pad = self.tokenizer.pad_token_id
        result = []
        for row, text in enumerate(answers):
            prompt_ids = inputs["input_ids"][row][inputs["attention_mask"][row].bool()].tolist()
            new_ids = [t for t in new[row].tolist() if t != pad]
            result.append(Generation(text, prompt_ids, new_ids, texts[row]))
        return result


def _cache_config(config: VideoModelConfig, weights: str | None = None) -> VideoModelConfig:
    """The config lighteval's cache is keyed on: the weights' identity, and a model name safe to use as a
    folder name; ``runs`` left out.

    lighteval joins ``cache_dir / model_name``: an absolute local model path would replace the cache
    folder and put the cache inside the model's own folder. The path is kept, flattened, so the cache
    still tells models apart; every other field (frames, probe, generation, seed, weights) enters the
    hash. ``runs`` does not: a run's answers are the same whether it was generated alone or with others
    (keyed sampling; ``generate`` runs one seed at a time anyway), so they are found either way.
    """
    safe = config.model_name.strip("/").replace("/", "__") or "model"
    return config.model_copy(update={"model_name": safe, "weights": weights or config.weights, "runs": 1})


def _store(cache: SampleCache, docs: list[Doc], responses: list[ModelResponse]) -> None:
    """Write the answers `cache` lacks (a later run may already hold some, from a run of its own: keyed
    sampling made them the same answers, and lighteval warns about rewriting them)."""
    method = SamplingMethod.GENERATIVE
    missing = {id(doc) for doc in cache.get_samples_to_process_and_cache(docs, method)[0]}
    pairs = [(doc, response) for doc, response in zip(docs, responses, strict=True) if id(doc) in missing]
    if pairs:
        task_ids = list({cache.get_task_id(doc.task_name, method) for doc, _ in pairs})
        cache.cache_samples([doc for doc, _ in pairs], [response for _, response in pairs], task_ids, method)


def sampling_key(seed: int, item_id: str, trial: int) -> int:
    """The engine's sampling key for one answer (`videokr.generation`, keyed sampling): a stable 64-bit
    hash of (run seed, item id, trial), the same in every process and batch."""
    digest = hashlib.blake2b(f"{seed}\x00{item_id}\x00{trial}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


def _trials(doc: Doc) -> int:
    return int((doc.specific or {}).get("trials", 1))
