"""The shortcut probes give the model exactly what they promise: the sampled clip, one seeded random
frame per trial (three trials), or no visual input at all; asserted on what the model received."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from eval_fixtures import eval_repo, eval_rows, scripted_model, tiny_model_dir

from videokr.data.records import LETTERS, MULTIPLE_CHOICE
from videokr.evaluation.inputs import GenerationRequest, load_probe_visual, probe_frame_index
from videokr.evaluation.run import run_eval
from videokr.evaluation.tasks import SINGLE_FRAME_TRIALS
from videokr.models.tiny import build_tiny_processor
from videokr.vision import FrameSampling, VisualLoader, chat_messages, process, render
from videokr.vision.decode import probe as probe_clip

MAX_FRAMES = 4


@pytest.fixture(scope="module")
def repo(sample_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return eval_repo(sample_corpus, tmp_path_factory.getbasetemp() / "eval-repo")


@pytest.fixture(scope="module")
def probe_run(repo: Path, tmp_path_factory: pytest.TempPathFactory):
    """One lighteval run of the three probe tasks; MC items alternate between right in every trial and
    right in all but the last trial."""
    rows = {row["id"]: row for row in eval_rows(repo)}
    mc = sorted(i for i, r in rows.items() if r["problem_type"] == MULTIPLE_CHOICE)
    always = set(mc[::2])

    def script(request: GenerationRequest) -> str:
        row = rows[request.item_id]
        if row["problem_type"] != MULTIPLE_CHOICE:
            return "<answer>unknown</answer>"
        letter = row["answer"]
        if request.item_id not in always and request.trial == SINGLE_FRAME_TRIALS - 1:
            letter = LETTERS[(LETTERS.index(letter) + 1) % len(row["options"])]
        return f"<think>...</think><answer>{letter}</answer>"

    model_dir = tiny_model_dir(tmp_path_factory.getbasetemp() / "tiny-qwen2_5_vl")
    model = scripted_model(model_dir, tmp_path_factory.mktemp("probe-cache"), script, max_frames=MAX_FRAMES)
    run = run_eval(
        model,
        ["videokr_eval", "videokr_eval_single_frame", "videokr_eval_text_only"],
        dataset=str(repo),
        output_dir=tmp_path_factory.mktemp("probe-results"),
    )
    return model, run, rows, mc, always


def _received(model, probe: str) -> list[GenerationRequest]:
    return [r for r in model.received if r.visual.kind == probe]


def test_full_video_gets_the_sampled_clip(probe_run) -> None:
    model, _, rows, _, _ = probe_run
    video = _received(model, "video")
    assert len(video) == len(rows)
    for request, text in zip(model.received, model.rendered, strict=True):
        if request.visual.kind != "video":
            continue
        assert 2 <= request.visual.num_frames <= MAX_FRAMES
        assert request.visual.metadata is not None
        assert text.count("<|video_pad|>") == 1 and "<|image_pad|>" not in text


def test_single_frame_probe_gets_one_seeded_frame_per_trial(probe_run) -> None:
    model, _, rows, _, _ = probe_run
    single = _received(model, "single_frame")
    assert len(single) == SINGLE_FRAME_TRIALS * len(rows)
    trials: dict[str, list[int]] = {}
    for request in single:
        assert request.visual.num_frames == 1
        (index,) = request.visual.frame_indices
        frames = probe_clip(rows[request.item_id]["video"]["path"]).num_frames
        assert index == probe_frame_index(request.item_id, request.trial, frames)
        trials.setdefault(request.item_id, []).append(index)
    assert sorted(trials) == sorted(rows)
    assert any(len(set(indices)) > 1 for indices in trials.values())  # trials see different frames
    rendered = [
        t for r, t in zip(model.received, model.rendered, strict=True) if r.visual.kind == "single_frame"
    ]
    assert all(t.count("<|image_pad|>") == 1 and "<|video_pad|>" not in t for t in rendered)


def test_text_only_probe_gets_no_visual_input(probe_run) -> None:
    model, _, rows, _, _ = probe_run
    text_only = _received(model, "text_only")
    assert len(text_only) == len(rows)
    assert all(r.visual.frames is None and r.visual.num_frames == 0 for r in text_only)
    rendered = [
        t for r, t in zip(model.received, model.rendered, strict=True) if r.visual.kind == "text_only"
    ]
    assert all("<|vision_start|>" not in t for t in rendered)
    # Same official prompt in every probe: only the visual input differs.
    prompts = {r.item_id: r.prompt for r in _received(model, "video")}
    assert all(r.prompt == prompts[r.item_id] for r in text_only)


def test_single_frame_answerable_rate_is_all_trials_right(probe_run) -> None:
    _, run, _, mc, always = probe_run
    metrics = run.task_metrics()
    single = metrics["videokr_eval_single_frame"]
    assert single["answerable_rate"] == pytest.approx(len(always) / len(mc))
    expected_acc = (
        len(always) + (len(mc) - len(always)) * (SINGLE_FRAME_TRIALS - 1) / SINGLE_FRAME_TRIALS
    ) / len(mc)
    assert single["acc"] == pytest.approx(expected_acc)
    # The full-video and text-only tasks have one trial per item and no answerable rate.
    assert metrics["videokr_eval"]["acc"] == pytest.approx(1.0)
    assert "answerable_rate" not in metrics["videokr_eval_text_only"]


def test_still_single_frame_is_the_clip_held_on_its_one_frame(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``single_frame_as="still"``: the probe's frame, no other, in the clip's form (its frame count and
    timing), so a model trained only on clips gets the input it knows with one frame's information; and
    only that frame is decoded (the clip's timing comes from its index)."""
    row = next(r for r in eval_rows(repo) if r["video"])
    processor = build_tiny_processor("qwen2_5_vl")
    loader = VisualLoader(processor, FrameSampling(max_frames=MAX_FRAMES))
    clip = loader.load(row["video"], "video")
    asked = {"item_id": row["id"], "trial": 1}
    image = load_probe_visual(loader, row["video"], "single_frame", **asked)
    import videokr.vision.frames as frames_module

    decoded: list[int] = []

    def counted(*args: Any, **kwargs: Any) -> Any:
        sampled = real_sample_frames(*args, **kwargs)
        decoded.append(len(sampled.indices))
        return sampled

    real_sample_frames = frames_module.sample_frames
    monkeypatch.setattr(frames_module, "sample_frames", counted)
    still = load_probe_visual(loader, row["video"], "single_frame", single_frame_as="still", **asked)
    assert decoded == [1]
    assert image.kind == "single_frame" and image.num_frames == 1
    assert still.kind == "video" and still.num_frames == clip.num_frames >= 2
    assert all(torch.equal(frame, image.frames[0]) for frame in still.frames)
    assert not all(
        torch.equal(frame, clip.frames[0]) for frame in clip.frames
    )  # the clip moves; the still not
    assert still.frame_indices == image.frame_indices * clip.num_frames
    assert still.metadata == clip.metadata
    text = render(processor, chat_messages("Q?", still.kind), generation_prompt=True)
    batch = process(processor, [text], [still])
    reference = process(processor, [text], [clip])
    assert torch.equal(batch["video_grid_thw"], reference["video_grid_thw"])
    assert torch.equal(batch["input_ids"], reference["input_ids"])  # same tokens, only the pixels differ
    assert not torch.equal(batch["pixel_values_videos"], reference["pixel_values_videos"])
    with pytest.raises(ValueError, match="single-frame form"):
        load_probe_visual(loader, row["video"], "single_frame", single_frame_as="gif", **asked)  # type: ignore[arg-type]
