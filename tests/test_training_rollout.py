"""The GRPO rollout engine: the same tokens as transformers' ``generate`` under greedy decoding (both
architectures, left-padded prompts of different lengths, static and dynamic caches, chunked prefill and
decode, compiled decoding), completions cut at the first end-of-sequence token as TRL cuts them, each
group's prompt prefilled once, sampling log-probs equal to what the loss pass computes, and truncation
(top-k / top-p / min-p) keeping exactly the tokens transformers' warpers keep.

Real tiny Qwen2.5-VL / Qwen3-VL models and the sample RL clips; nothing is mocked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from training_fixtures import SAMPLING, rl_folder, tiny_dirs
from trl import GRPOConfig

from videokr.generation.engine import RolloutOptions, SamplingSettings, VideoRolloutEngine, _truncate
from videokr.training import load_video_dataset, to_grpo_rows
from videokr.training.grpo_trainer import VideoGRPOTrainer
from videokr.vision import EncodedPrompts, VideoBatch, VisualLoader, encode_prompts

__all__ = ["rl_folder", "tiny_dirs"]  # module fixtures, imported so pytest finds them here

GROUP = 3  # completions per prompt
NEW_TOKENS = 12


@pytest.fixture(scope="module")
def rows(rl_folder: Path) -> list[dict[str, Any]]:
    """Three RL rows whose prompts differ in length (so left padding is exercised)."""
    dataset = to_grpo_rows(load_video_dataset(str(rl_folder), max_samples=3))
    return list(dataset)


@pytest.fixture(scope="module", params=["qwen2_5_vl", "qwen3_vl"])
def arch(request: pytest.FixtureRequest) -> str:
    return request.param


def load(model_dir: Path) -> tuple[Any, Any]:
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model = AutoModelForImageTextToText.from_pretrained(model_dir).eval()
    return model, AutoProcessor.from_pretrained(model_dir, padding_side="left")


def grouped(processor: Any, rows: list[dict[str, Any]]) -> EncodedPrompts:
    """Every row repeated GROUP times, as TRL's sampler lays out a generation batch."""
    samples = [row for row in rows for _ in range(GROUP)]
    return encode_prompts(processor, VisualLoader(processor, SAMPLING), samples)


def greedy(model: Any, processor: Any, **overrides: Any) -> SamplingSettings:
    """Greedy decoding with the tokenizer's end-of-sequence token suppressed, so every sample runs all
    NEW_TOKENS steps (a divergence anywhere would show) unless `eos_token_ids` names others."""
    tokenizer = processor.tokenizer
    suppress = (model.config.image_token_id, model.config.video_token_id, tokenizer.eos_token_id)
    return SamplingSettings(
        max_new_tokens=NEW_TOKENS,
        eos_token_ids=overrides.pop("eos_token_ids", ()),
        pad_token_id=tokenizer.pad_token_id,
        do_sample=False,
        suppress_tokens=suppress,
        **overrides,
    )


def plain_generate(
    model: Any, prompts: EncodedPrompts, settings: SamplingSettings
) -> tuple[list[list[int]], list[list[float]]]:
    """What TRL's transformers path does: every sample (repeats included) left-padded into one
    ``generate`` call with its video; completions cut after the first end-of-sequence token. Also the
    log-probability of each chosen token under generate's own logits."""
    length = max(len(ids) for ids in prompts.prompt_ids)
    ids = torch.full((len(prompts), length), settings.pad_token_id)
    mask, types = torch.zeros_like(ids), torch.zeros_like(ids)
    for row, (prompt, mm) in enumerate(zip(prompts.prompt_ids, prompts.mm_token_type_ids, strict=True)):
        ids[row, length - len(prompt) :] = torch.tensor(prompt)
        types[row, length - len(mm) :] = torch.tensor(mm)
        mask[row, length - len(prompt) :] = 1
    output = model.generate(
        input_ids=ids,
        attention_mask=mask,
        mm_token_type_ids=types,
        **prompts.video.model_inputs(),
        max_new_tokens=settings.max_new_tokens,
        do_sample=False,
        suppress_tokens=list(settings.suppress_tokens),
        eos_token_id=list(settings.eos_token_ids) or None,
        pad_token_id=settings.pad_token_id,
        output_logits=True,
        return_dict_in_generate=True,
    )
    chosen = output.sequences[:, length:]
    logprobs = torch.log_softmax(torch.stack(output.logits, dim=1).float(), dim=-1)
    logprobs = logprobs.gather(-1, chosen.unsqueeze(-1)).squeeze(-1)
    completions, completion_logprobs = [], []
    for sequence, row_logprobs in zip(chosen.tolist(), logprobs.tolist(), strict=True):
        ends = [i for i, token in enumerate(sequence) if token in settings.eos_token_ids]
        end = ends[0] + 1 if ends else len(sequence)
        completions.append(sequence[:end])
        completion_logprobs.append(row_logprobs[:end])
    return completions, completion_logprobs


@pytest.mark.parametrize(
    "options",
    [
        RolloutOptions(cache="static", compile=False),
        RolloutOptions(cache="dynamic", compile=False),
        RolloutOptions(cache="static", compile=False, prefill_batch=2, max_batch=4, cache_bucket=16),
    ],
    ids=["static", "dynamic", "static-chunked"],
)
def test_greedy_tokens_equal_transformers_generate(
    tiny_dirs: dict[str, Path], rows: list[dict[str, Any]], arch: str, options: RolloutOptions
) -> None:
    model, processor = load(tiny_dirs[arch])
    prompts = grouped(processor, rows)
    assert len({len(ids) for ids in prompts.prompt_ids}) == len(rows)  # three different prompt lengths
    settings = greedy(model, processor)
    expected, expected_logprobs = plain_generate(model, prompts, settings)
    rollout = VideoRolloutEngine(settings, options).generate(model, prompts)
    assert rollout.completion_ids == expected
    assert all(len(c) == NEW_TOKENS for c in rollout.completion_ids)
    # Same logits step by step, not only the same argmax: a wrong M-RoPE offset for the generated text
    # shifts Qwen2.5-VL's log-probs by ~1e-3 while leaving a tiny model's greedy tokens unchanged.
    gap = (torch.tensor(rollout.logprobs) - torch.tensor(expected_logprobs)).abs().max().item()
    assert gap < 2e-5
    assert rollout.prompts_prefilled == len(rows)


def test_compiled_decoding_gives_the_same_tokens(
    tiny_dirs: dict[str, Path], rows: list[dict[str, Any]]
) -> None:
    """torch.compile of the decode step (inductor; CUDA graphs on a GPU) over the static cache."""
    model, processor = load(tiny_dirs["qwen2_5_vl"])
    prompts = grouped(processor, rows)
    settings = greedy(model, processor)
    expected, expected_logprobs = plain_generate(model, prompts, settings)
    rollout = VideoRolloutEngine(settings, RolloutOptions(compile=True)).generate(model, prompts)
    assert rollout.completion_ids == expected
    gap = (torch.tensor(rollout.logprobs) - torch.tensor(expected_logprobs)).abs().max().item()
    assert gap < 2e-5
    assert hasattr(model, "_compiled_call")  # the compiled forward was really used


def test_a_second_rollout_reuses_the_emptied_static_cache(
    tiny_dirs: dict[str, Path], rows: list[dict[str, Any]]
) -> None:
    """Keeping the cache's tensors at one address lets a captured CUDA graph replay; emptying it must
    leave nothing of the previous rollout behind."""
    model, processor = load(tiny_dirs["qwen3_vl"])
    engine = VideoRolloutEngine(greedy(model, processor))
    first = engine.generate(model, grouped(processor, rows[:2]))
    assert engine._static_cache is not None
    address = engine._static_cache[1].layers[0].keys.data_ptr()
    swapped = grouped(processor, [rows[1], rows[0]])  # other prompts in each row, the same shapes
    other = engine.generate(model, swapped)
    assert engine._static_cache[1].layers[0].keys.data_ptr() == address
    again = engine.generate(model, grouped(processor, rows[:2]))
    assert again.completion_ids == first.completion_ids
    assert torch.allclose(torch.tensor(again.logprobs), torch.tensor(first.logprobs))
    assert other.completion_ids == plain_generate(model, swapped, engine.settings)[0]


def test_completions_end_at_the_first_end_of_sequence_token(
    tiny_dirs: dict[str, Path], rows: list[dict[str, Any]]
) -> None:
    model, processor = load(tiny_dirs["qwen2_5_vl"])
    prompts = grouped(processor, rows)
    free = VideoRolloutEngine(greedy(model, processor)).generate(model, prompts).completion_ids
    # Declare as end-of-sequence a token the first prompt produces mid-way: its samples must stop there.
    stop = free[0][4]
    settings = greedy(model, processor, eos_token_ids=(stop,))
    rollout = VideoRolloutEngine(settings, RolloutOptions(sync_every=2)).generate(model, prompts)
    assert rollout.completion_ids == plain_generate(model, prompts, settings)[0]
    first = free[0].index(stop)
    assert [len(c) for c in rollout.completion_ids[:GROUP]] == [first + 1] * GROUP
    assert all(c[-1] == stop or len(c) == NEW_TOKENS for c in rollout.completion_ids)
    assert all(len(lp) == len(c) for lp, c in zip(rollout.logprobs, rollout.completion_ids, strict=True))


def test_each_group_prefills_its_clip_once(tiny_dirs: dict[str, Path], rows: list[dict[str, Any]]) -> None:
    model, processor = load(tiny_dirs["qwen2_5_vl"])
    prompts = grouped(processor, rows)
    encoded_rows: list[int] = []
    hook = model.model.visual.register_forward_hook(
        lambda _m, args, _o: encoded_rows.append(int(args[0].shape[0]))
    )
    try:
        VideoRolloutEngine(greedy(model, processor)).generate(model, prompts)
    finally:
        hook.remove()
    per_clip = [int(p.shape[0]) for p in prompts.video.pixel_values[::GROUP]]
    assert encoded_rows == [sum(per_clip)]  # one prefill forward, each distinct clip once (not ×GROUP)


def test_loss_pass_logprobs_match_the_sampling_logprobs(
    tiny_dirs: dict[str, Path], rl_folder: Path, rows: list[dict[str, Any]], tmp_path: Path
) -> None:
    """Sampled rollouts through the trainer: the policy's scoring forward (video, M-RoPE positions and
    temperature as the loss sees them) gives the log-probs recorded while sampling."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model_dir = tiny_dirs["qwen2_5_vl"]
    args = GRPOConfig(
        output_dir=str(tmp_path),
        per_device_train_batch_size=GROUP * 2,
        num_generations=GROUP,
        max_completion_length=NEW_TOKENS,
        temperature=0.7,
        top_p=0.9,
        use_cpu=True,
        bf16=False,
        report_to="none",
        seed=0,
    )
    trainer = VideoGRPOTrainer(
        model=AutoModelForImageTextToText.from_pretrained(model_dir),
        reward_funcs=[lambda completions, **_: [0.0] * len(completions)],
        args=args,
        train_dataset=to_grpo_rows(load_video_dataset(str(rl_folder), max_samples=2)),
        processing_class=AutoProcessor.from_pretrained(model_dir, padding_side="left"),
        sampling=SAMPLING,
    )
    # A plain GRPOConfig (no rollout fields) gets our engine with its default options.
    assert trainer.rollout_engine is not None and trainer.rollout_engine.options == RolloutOptions()
    batch = [row for row in rows[:2] for _ in range(GROUP)]
    output = trainer._generate_and_score_completions(batch)
    sampled = output["sampling_per_token_logps"]
    mask = output["completion_mask"].bool()
    assert mask.sum() > 0 and torch.isfinite(sampled[mask]).all()

    ids = torch.cat([output["prompt_ids"], output["completion_ids"]], dim=1)
    attention = torch.cat([output["prompt_mask"], output["completion_mask"]], dim=1)
    with torch.no_grad(), trainer._video_forward(VideoBatch.from_batch(output)):
        scored, _, _ = trainer._get_per_token_logps_and_entropies(
            trainer.model, ids, attention, output["completion_ids"].size(1)
        )
    gap = (scored - sampled).abs()[mask]
    assert gap.max().item() < 1e-4, f"loss-pass and sampling log-probs differ by up to {gap.max():.2e}"
    # Not trivially equal: the completions carry real, non-degenerate log-probabilities.
    assert sampled[mask].min().item() < -0.1


@pytest.mark.parametrize(
    "settings",
    [{"top_k": 5}, {"top_p": 0.8}, {"min_p": 0.1}, {"top_k": 20, "top_p": 0.6, "min_p": 0.05}],
    ids=["top-k", "top-p", "min-p", "all"],
)
def test_truncation_keeps_the_tokens_transformers_keeps(settings: dict[str, Any]) -> None:
    from transformers import LogitsProcessorList, MinPLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    logits = torch.randn(6, 64, generator=torch.Generator().manual_seed(0)) * 3
    warpers = LogitsProcessorList()
    if "top_k" in settings:
        warpers.append(TopKLogitsWarper(settings["top_k"]))
    if "top_p" in settings:
        warpers.append(TopPLogitsWarper(settings["top_p"]))
    if "min_p" in settings:
        warpers.append(MinPLogitsWarper(settings["min_p"]))
    expected = torch.isfinite(warpers(torch.zeros(6, 1, dtype=torch.long), logits.clone()))
    ours = _truncate(logits, SamplingSettings(max_new_tokens=1, eos_token_ids=(), pad_token_id=0, **settings))
    assert torch.equal(torch.isfinite(ours), expected)
    assert expected.sum() < expected.numel()  # something was cut


def test_top_p_keeps_only_the_best_token_without_sorting_exactly_when_the_full_rule_would() -> None:
    """The official decoding's top-p 0.001 usually keeps one token; `_truncate` then skips the sort. On
    peaked rows (temperature 0.1), on a row whose best two tokens tie, and on rows whose best token sits
    just above and just below top-p, the kept tokens are those transformers' warpers keep."""
    from transformers import LogitsProcessorList, TopKLogitsWarper, TopPLogitsWarper

    from videokr.generation.engine import _TOP_P_MARGIN, _only_the_best_survives_top_p

    peaked = torch.randn(6, 500, generator=torch.Generator().manual_seed(1)) * 3 / 0.1
    tied = peaked.clone()
    tied[0, 7] = tied[0].max()  # two tokens share the top
    flat = torch.zeros(2, 500)
    flat[0, 3] = flat[1, 3] = 1.0
    # p_best = e / (e + 499): set top-p just under and just over it (by less than the margin).
    p_best = float(torch.softmax(flat[0], dim=-1).max())
    cases = [
        (peaked, {"top_k": 50, "top_p": 0.001}, True),
        (tied, {"top_k": 50, "top_p": 0.001}, False),
        (flat, {"top_p": p_best - _TOP_P_MARGIN / 2}, False),
        (flat, {"top_p": p_best - 2 * _TOP_P_MARGIN}, True),
    ]
    for logits, settings, fast in cases:
        warpers = LogitsProcessorList()
        if "top_k" in settings:
            warpers.append(TopKLogitsWarper(settings["top_k"]))
        warpers.append(TopPLogitsWarper(settings["top_p"]))
        expected = torch.isfinite(warpers(torch.zeros(len(logits), 1, dtype=torch.long), logits.clone()))
        s = SamplingSettings(max_new_tokens=1, eos_token_ids=(), pad_token_id=0, **settings)
        assert _only_the_best_survives_top_p(logits, s.top_p) is fast
        ours = _truncate(logits, s)
        assert torch.equal(torch.isfinite(ours), expected), settings
        kept = ours[torch.isfinite(ours)]
        assert torch.equal(kept, logits[expected])  # the kept logits are unchanged
    assert int(expected.sum()) == len(flat)  # the last case kept one token per row


def test_generation_options_the_engine_lacks_are_refused() -> None:
    base = {"max_new_tokens": 8, "pad_token_id": 0, "eos_token_id": [1], "do_sample": True}
    assert SamplingSettings.from_generation_kwargs({**base, "repetition_penalty": 1.0}).max_new_tokens == 8
    with pytest.raises(ValueError, match=r"repetition_penalty.*--rollout_engine generate"):
        SamplingSettings.from_generation_kwargs({**base, "repetition_penalty": 1.1})
    with pytest.raises(ValueError, match="num_beams"):
        SamplingSettings.from_generation_kwargs({**base, "num_beams": 4})
    with pytest.raises(ValueError, match=r"cache_implementation.*--rollout_cache"):
        SamplingSettings.from_generation_kwargs({**base, "cache_implementation": "static"})
    assert SamplingSettings.from_generation_kwargs({**base, "cache_implementation": None}).do_sample
    with pytest.raises(ValueError, match="compiled decoding needs the static cache"):
        RolloutOptions(cache="dynamic", compile=True)
