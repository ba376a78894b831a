"""The evaluation generates through the batched engine (`videokr.generation`): the same answers as
transformers' ``generate`` for the three probe kinds (a video, one frame as an image, text only) on both
architectures, under greedy decoding and under the official decoding, with the model's own generation
config (its suppressed tokens, its repetition penalty) applied as ``generate`` applies it; options the
engine does not implement refused when the model loads.

Real tiny Qwen2.5-VL / Qwen3-VL models and the sample VideoKR-Eval items (prompts of different lengths,
so left padding is exercised); nothing is mocked.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest
import torch
from eval_fixtures import eval_repo, eval_rows

from videokr.evaluation.inputs import GenerationRequest
from videokr.evaluation.model import PAPER_GENERATION, Generation, VideoLightevalModel, VideoModelConfig
from videokr.evaluation.tasks import videokr_prompt
from videokr.generation import RolloutOptions, SamplingSettings, VideoRolloutEngine
from videokr.vision import VISUAL_KINDS, encode_visual_prompts

NEW_TOKENS = 10
BATCH = 4


@pytest.fixture(scope="module")
def repo(sample_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return eval_repo(sample_corpus, tmp_path_factory.getbasetemp() / "eval-repo")


@pytest.fixture(scope="module")
def rows(repo: Path) -> list[dict[str, Any]]:
    """BATCH items whose prompts differ in length."""
    items = eval_rows(repo)[:BATCH]
    assert len({len(videokr_prompt(r).query) for r in items}) == BATCH
    return items


@pytest.fixture(scope="module", params=["qwen2_5_vl", "qwen3_vl"])
def arch(request: pytest.FixtureRequest) -> str:
    return request.param


@functools.cache
def model_dir(arch: str, out: Path) -> Path:
    from videokr.models.tiny import save_tiny_model

    return save_tiny_model(arch, out / f"tiny-{arch}")


class TunedModel(VideoLightevalModel):
    """The real model class, with fields of the model's own generation config changed at load (as a
    checkpoint's ``generation_config.json`` would set them)."""

    def __init__(self, config: VideoModelConfig, generation_config: dict[str, Any]) -> None:
        self.generation_config = generation_config
        super().__init__(config)

    def _load_model(self) -> Any:
        model = super()._load_model()
        for key, value in self.generation_config.items():
            setattr(model.generation_config, key, value)
        return model


def eval_model(
    directory: Path,
    cache: Path,
    *,
    engine: str = "videokr",
    model_generation: dict[str, Any] | None = None,
    **generation: Any,
) -> VideoLightevalModel:
    """The lighteval model on CPU at 4 frames, batch BATCH; greedy NEW_TOKENS unless `generation` says
    otherwise; `model_generation` changes the model's own generation config."""
    parameters = {"temperature": 0.0, "max_new_tokens": NEW_TOKENS, **generation}
    config = VideoModelConfig(
        model_name=str(directory),
        device="cpu",
        max_frames=4,
        batch_size=BATCH,
        cache_dir=str(cache),
        generation_parameters=parameters,
        engine=engine,
    )
    return TunedModel(config, model_generation or {})


def end_of_sequence(model: VideoLightevalModel) -> list[int]:
    """The ids `generate` stops at: suppressing them makes every answer NEW_TOKENS long, so a divergence
    anywhere in the decode would show."""
    eos = model.model.generation_config.eos_token_id
    return list(eos) if isinstance(eos, list) else [eos]


def batch(model: VideoLightevalModel, rows: list[dict[str, Any]], kind: str) -> list[GenerationRequest]:
    """One request per item for probe `kind` (the first trial), its visual decoded as the model does."""
    docs = [videokr_prompt(row, probe=kind) for row in rows]  # type: ignore[arg-type]
    requests = [r for r in model.requests(docs) if r.trial == 0]
    return [model._with_visual(docs[r.doc_index], r) for r in requests]


def both(
    model: VideoLightevalModel, requests: list[GenerationRequest]
) -> tuple[list[Generation], list[Generation]]:
    """The batch's answers through the engine, then through ``generate`` (same model, same inputs)."""
    config = model.config
    answers = []
    for engine in ("videokr", "generate"):
        model.config = config.model_copy(update={"engine": engine})
        answers.append(model._generate_runs(requests, NEW_TOKENS, [config.seed])[0])
    model.config = config
    return answers[0], answers[1]


@pytest.mark.parametrize("kind", VISUAL_KINDS)
def test_greedy_answers_are_those_of_generate(
    arch: str, kind: str, rows: list[dict[str, Any]], tmp_path_factory: pytest.TempPathFactory
) -> None:
    base = tmp_path_factory.getbasetemp()
    model = eval_model(model_dir(arch, base), tmp_path_factory.mktemp("cache"))
    model.model.generation_config.suppress_tokens = end_of_sequence(model)
    requests = batch(model, rows, kind)
    assert {r.visual.kind for r in requests} == {kind}
    ours, theirs = both(model, requests)
    assert ours == theirs  # text, prompt ids and new ids of every answer
    assert all(len(g.output_tokens) == NEW_TOKENS for g in ours)
    assert len({len(g.input_tokens) for g in ours}) == BATCH  # left padding was exercised
    assert model._engine is not None and model._engine.options.cache == "dynamic"  # not compiled on CPU


@pytest.mark.parametrize("cache", ["static", "dynamic"])
@pytest.mark.parametrize("kind", VISUAL_KINDS)
def test_engine_log_probs_equal_generate_logits(
    arch: str, kind: str, cache: str, rows: list[dict[str, Any]], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Same logits step by step, not only the same argmax: a wrong M-RoPE offset for the text after an
    image or a video shifts the log-probs while leaving a tiny model's greedy tokens unchanged. Both
    caches: the evaluation decodes over the static one on CUDA, over the growing one elsewhere."""
    base = tmp_path_factory.getbasetemp()
    model = eval_model(model_dir(arch, base), tmp_path_factory.mktemp("cache"))
    requests = batch(model, rows, kind)
    texts, visuals = [model.render(r) for r in requests], [r.visual for r in requests]
    prompts = encode_visual_prompts(model.processor, texts, visuals)
    assert prompts.video.kind == kind and len(prompts.video) == BATCH
    config, _ = model.model._prepare_generation_config(
        None, max_new_tokens=NEW_TOKENS, do_sample=False, suppress_tokens=end_of_sequence(model)
    )
    settings = SamplingSettings.from_generation_config(config, instead="use generate")
    options = RolloutOptions(cache=cache, compile=False, prefill_batch=BATCH)  # type: ignore[arg-type]
    rollout = VideoRolloutEngine(settings, options).generate(model.model, prompts)

    from videokr.vision import process

    inputs = process(model.processor, texts, visuals, padding_side="left")
    output = model.model.generate(
        **inputs, generation_config=config, output_logits=True, return_dict_in_generate=True
    )
    width = inputs["input_ids"].shape[1]
    chosen = output.sequences[:, width:]
    assert rollout.completion_ids == chosen.tolist()
    logprobs = torch.log_softmax(torch.stack(output.logits, dim=1).float(), dim=-1)
    logprobs = logprobs.gather(-1, chosen.unsqueeze(-1)).squeeze(-1)
    assert (torch.tensor(rollout.logprobs) - logprobs).abs().max().item() < 2e-5


def test_the_official_decoding_gives_the_answers_of_generate(
    arch: str, rows: list[dict[str, Any]], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Sampling at temperature 0.1 with top-p 0.001 (and the library's top-k 50 that ``generate`` adds),
    seeded: the same answers from both engines."""
    base = tmp_path_factory.getbasetemp()
    official = {k: v for k, v in PAPER_GENERATION.items() if k != "max_new_tokens"}
    model = eval_model(model_dir(arch, base), tmp_path_factory.mktemp("cache"), **official)
    settings = model._sampling(NEW_TOKENS)
    assert (settings.do_sample, settings.temperature, settings.top_p, settings.top_k) == (
        True,
        0.1,
        0.001,
        50,
    )
    model.model.generation_config.suppress_tokens = end_of_sequence(model)
    ours, theirs = both(model, batch(model, rows, "video"))
    assert ours == theirs


def test_the_models_repetition_penalty_is_applied_as_generate_applies_it(
    rows: list[dict[str, Any]], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A checkpoint's ``repetition_penalty`` (Qwen2.5-VL-7B-Instruct ships 1.05) covers the prompt's tokens
    and the ones generated so far, padding excluded, exactly as ``generate`` applies it."""
    base = tmp_path_factory.getbasetemp()
    directory, cache = model_dir("qwen2_5_vl", base), tmp_path_factory.mktemp("cache")
    plain = eval_model(directory, cache)
    penalized = eval_model(directory, cache, model_generation={"repetition_penalty": 1.5})
    assert penalized._sampling(NEW_TOKENS).repetition_penalty == 1.5
    answers = []
    for model in (plain, penalized):
        model.model.generation_config.suppress_tokens = end_of_sequence(model)
        ours, theirs = both(model, batch(model, rows, "video"))
        assert ours == theirs
        answers.append(ours)
    assert answers[0] != answers[1]  # the penalty changed the answers


def test_generation_options_the_engine_lacks_are_refused_when_the_model_loads(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    base = tmp_path_factory.getbasetemp()
    directory, cache = model_dir("qwen2_5_vl", base), tmp_path_factory.mktemp("cache")
    with pytest.raises(ValueError, match=r"no_repeat_ngram_size.*engine=generate"):
        eval_model(directory, cache, model_generation={"no_repeat_ngram_size": 3})
    with pytest.raises(ValueError, match=r"num_beams"):
        eval_model(directory, cache, model_generation={"num_beams": 2})
    # transformers' generate implements them: that engine loads.
    eval_model(directory, cache, engine="generate", model_generation={"no_repeat_ngram_size": 3})
    # Fields that change nothing about the tokens are not refused.
    eval_model(directory, cache, model_generation={"cache_implementation": "static", "max_length": 64})


def test_the_engine_is_a_config_field() -> None:
    assert VideoModelConfig(model_name="m").engine == "videokr"
    assert VideoModelConfig.from_model_name("model_name=m,engine=generate").engine == "generate"
    with pytest.raises(ValueError, match="engine"):
        VideoModelConfig(model_name="m", engine="vllm")  # type: ignore[arg-type]
