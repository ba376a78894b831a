"""GRPO on video: the clip reaches generation and every forward that computes log-probabilities (policy,
old policy, reference), with its timing; rewards score known completions as the paper does; a broken
clip stops the step with its row id.

A real `VideoGRPOTrainer` (TRL's GRPOTrainer plus our seams) on a tiny Qwen2.5-VL and the sample RL folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from training_fixtures import SAMPLING, corrupt_clip, length_reward, rl_folder, tiny_dirs

from videokr.data import prompts
from videokr.errors import VideoDecodeError
from videokr.training import VideoGRPOConfig, freeze_vision, load_video_dataset, to_grpo_rows, vision_parts
from videokr.training.grpo_trainer import VideoGRPOTrainer
from videokr.training.rewards import REWARD_WEIGHTS, reward_functions, videokr_reward

__all__ = ["rl_folder", "tiny_dirs"]  # module fixtures, imported so pytest finds them here

PROMPTS, GENERATIONS = 2, 2


def grpo_args(out: Path, **overrides: Any) -> VideoGRPOConfig:
    defaults: dict[str, Any] = {
        "output_dir": str(out),
        "per_device_train_batch_size": PROMPTS * GENERATIONS // 2,
        "steps_per_generation": 2,  # two optimizer steps per rollout: the old-policy pass is computed
        "num_generations": GENERATIONS,
        "max_completion_length": 8,
        "max_steps": 2,
        "beta": 0.01,  # the reference model scores every completion
        "learning_rate": 1e-2,
        "bf16": False,
        "use_cpu": True,
        "report_to": "none",
        "save_strategy": "no",
        "logging_steps": 1,
        "seed": 0,
    }
    return VideoGRPOConfig(**{**defaults, **overrides})


@pytest.fixture(scope="module")
def dataset(rl_folder: Path) -> Any:
    return to_grpo_rows(load_video_dataset(str(rl_folder), max_samples=PROMPTS))


def make_trainer(
    model_dir: Path,
    dataset: Any,
    out: Path,
    reward_funcs: Any,
    **overrides: Any,
) -> VideoGRPOTrainer:
    """A trainer on a fresh copy of the model; `overrides` are `VideoGRPOConfig` fields (rollout_engine…)."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model = AutoModelForImageTextToText.from_pretrained(model_dir)
    processor = AutoProcessor.from_pretrained(model_dir, padding_side="left")
    return VideoGRPOTrainer(
        model=model,
        reward_funcs=reward_funcs,
        args=grpo_args(out, **overrides),
        train_dataset=dataset,
        processing_class=processor,
        sampling=SAMPLING,
    )


def test_rows_are_conversational_with_a_video_part_and_the_rl_prompt(dataset: Any) -> None:
    row = dataset[0]
    text = prompts.build_prompt(row["question"], row["options"], row["problem_type"], style="rl")
    (message,) = row["prompt"]
    assert message["role"] == "user"
    assert message["content"][0]["type"] == "video"
    assert message["content"][1]["text"] == text


def test_prompt_style_asks_in_another_official_layout(dataset: Any) -> None:
    row = to_grpo_rows(dataset, style="eval")[0]
    text = prompts.build_prompt(row["question"], row["options"], row["problem_type"], style="eval")
    assert row["prompt"][0]["content"][1]["text"] == text != dataset[0]["prompt"][0]["content"][1]["text"]


@pytest.mark.parametrize(
    ("completion", "accuracy", "fmt"),
    [
        ("<think>The bar halves every 1.5 s.</think>\n<answer>B</answer>", 1.0, 1.0),
        ("<answer>B</answer>", 1.0, 0.0),
        ("<think>It halves.</think><answer>C</answer>", 0.0, 1.0),
        ("The answer is B.", 0.0, 0.0),
    ],
)
def test_rewards_on_known_completions(completion: str, accuracy: float, fmt: float) -> None:
    # GRPOTrainer's calling convention: chat completions plus the dataset columns as lists.
    columns = {"answer": ["B"], "problem_type": ["multiple choice"], "options": [["1 s", "1.5 s", "3 s"]]}
    completions = [[{"role": "assistant", "content": completion}]]
    got = [func(completions=completions, **columns)[0] for func in reward_functions()]
    assert got == [accuracy, fmt]
    total = sum(w * r for w, r in zip(REWARD_WEIGHTS, got, strict=True))
    assert videokr_reward(completions=completions, **columns) == [pytest.approx(total)]
    assert REWARD_WEIGHTS == (0.9, 0.1)


def record_forwards(model: Any, log: list[dict[str, Any]]) -> list[Any]:
    """Hooks on the vision tower (rows it encodes) and on the inner model (what video inputs it gets)."""

    def inner(_module: Any, _args: Any, kwargs: dict[str, Any]) -> None:
        if kwargs.get("pixel_values_videos") is None:
            return
        mm = kwargs.get("mm_token_type_ids")
        log.append(
            {
                "where": "model",
                "rows": kwargs["pixel_values_videos"].shape[0],
                "grid": kwargs["video_grid_thw"].clone(),
                "video_tokens": None if mm is None else int((mm == 2).sum()),
                "seconds": kwargs.get("second_per_grid_ts"),
                "grad": torch.is_grad_enabled(),
            }
        )

    def visual(_module: Any, args: Any, _out: Any) -> None:
        log.append({"where": "visual", "rows": args[0].shape[0], "grad": torch.is_grad_enabled()})

    return [
        model.model.register_forward_pre_hook(inner, with_kwargs=True),
        model.model.visual.register_forward_hook(visual),
    ]


@pytest.mark.parametrize(
    ("frozen", "engine"),
    [(False, "videokr"), (True, "videokr"), (False, "generate")],
    ids=["vision-trained", "vision-frozen", "transformers-generate"],
)
def test_video_reaches_generation_and_every_logprob_pass(
    tiny_dirs: dict[str, Path], dataset: Any, tmp_path: Path, frozen: bool, engine: str
) -> None:
    trainer = make_trainer(tiny_dirs["qwen2_5_vl"], dataset, tmp_path, [length_reward], rollout_engine=engine)
    assert (trainer.rollout_engine is None) == (engine == "generate")  # read from the config
    policy, reference = trainer.model, trainer.ref_model
    if frozen:
        freeze_vision(policy)  # before train() builds the optimizer, as in the script
    tower, projector = vision_parts(policy)
    before = [p.detach().clone() for p in tower + projector]
    language_before = [p.detach().clone() for p in policy.model.language_model.parameters()]

    # What one clip costs: every prompt of this dataset has the same clip size.
    encoded = trainer._encode_prompts([dataset[i] for i in range(PROMPTS)])
    per_clip = {int(p.shape[0]) for p in encoded.video.pixel_values}
    assert len(per_clip) == 1
    rows = per_clip.pop()
    merge = trainer.processing_class.video_processor.merge_size
    tokens = rows // merge**2

    policy_log: list[dict[str, Any]] = []
    reference_log: list[dict[str, Any]] = []
    hooks = record_forwards(policy, policy_log) + record_forwards(reference, reference_log)
    try:
        trainer.train()
    finally:
        for hook in hooks:
            hook.remove()

    batch = PROMPTS * GENERATIONS  # sequences per rollout
    chunk = trainer.args.per_device_train_batch_size
    visual_calls = [(e["rows"], e["grad"]) for e in policy_log if e["where"] == "visual"]
    # rollout prefill → old policy (per chunk) → loss (per optimizer step, with grad). Our engine encodes
    # each group's clip once; transformers' generate encodes it for every completion.
    prefill = PROMPTS * rows if engine == "videokr" else batch * rows
    assert visual_calls == [(prefill, False)] + [(chunk * rows, False)] * 2 + [(chunk * rows, True)] * 2
    reference_calls = [(e["rows"], e["grad"]) for e in reference_log if e["where"] == "visual"]
    assert reference_calls == [(chunk * rows, False)] * 2

    for entry in (e for e in policy_log + reference_log if e["where"] == "model"):
        # Every forward with video has its placeholders typed as video, one per merged patch, and the
        # clip's timing (Qwen2.5-VL): without these, M-RoPE would silently go one-dimensional.
        assert entry["video_tokens"] == entry["rows"] // rows * tokens
        assert entry["seconds"] is not None and entry["seconds"].shape[0] == entry["grid"].shape[0]

    after = [p.detach() for p in tower + projector]
    assert any(not torch.equal(b, a) for b, a in zip(before, after, strict=True)) is not frozen
    assert any(
        not torch.equal(b, a)
        for b, a in zip(language_before, policy.model.language_model.parameters(), strict=True)
    )


def test_broken_clip_stops_the_rollout_with_its_row_id(
    tiny_dirs: dict[str, Path], dataset: Any, tmp_path: Path
) -> None:
    trainer = make_trainer(tiny_dirs["qwen2_5_vl"], dataset, tmp_path, reward_functions(), beta=0.0)
    broken = {
        **dataset[0],
        "id": "broken-rl-row",
        "video": {"path": str(corrupt_clip(tmp_path)), "bytes": None},
    }
    with pytest.raises(VideoDecodeError, match="broken-rl-row"):
        trainer._generate_and_score_completions([dataset[1], broken])
