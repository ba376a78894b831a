"""SFT on video: the collator's batch carries the clip with its timing, labels only the response, reports
broken clips without substituting, and a real SFTTrainer step runs the vision tower inside the loss.

Tiny real Qwen-VL models and the sample VideoKR-SFT folder; every step is a real TRL / transformers call.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from training_fixtures import SAMPLING, corrupt_clip, sft_folder
from transformers import BatchFeature
from trl import SFTConfig, SFTTrainer

from videokr.data import prompts
from videokr.errors import VideoDecodeError
from videokr.models.tiny import ARCHES, IM_END, build_tiny_model
from videokr.training import (
    VideoSFTCollator,
    freeze_vision,
    load_video_dataset,
    to_sft_rows,
    vision_parts,
)

__all__ = ["sft_folder"]  # a module fixture, imported so pytest finds it here


@pytest.fixture(scope="module")
def rows(sft_folder: Path) -> list[dict[str, Any]]:
    return list(to_sft_rows(load_video_dataset(str(sft_folder), max_samples=6)))


@pytest.fixture(scope="module", params=ARCHES)
def tiny(request: pytest.FixtureRequest) -> tuple[str, Any, Any]:
    model, processor = build_tiny_model(request.param)
    return request.param, model, processor


def video_tokens(model: Any, batch: BatchFeature) -> torch.Tensor:
    return batch["input_ids"] == model.config.video_token_id


def test_rows_use_the_official_sft_prompt_and_target(rows: list[dict[str, Any]]) -> None:
    row = rows[0]
    assert row["prompt"] == prompts.build_prompt(
        row["question"], row["options"], row["problem_type"], style="sft"
    )
    assert row["completion"] == f"<think>{row['think']}</think>\n<answer>{row['answer']}</answer>"
    assert set(row["video"]) == {"path", "bytes"} and Path(row["video"]["path"]).is_file()


def test_prompt_style_trains_on_another_official_layout(sft_folder: Path) -> None:
    """``--prompt_style eval``: the benchmark's layout, byte for byte, and only the prompt changes."""
    dataset = load_video_dataset(str(sft_folder), max_samples=2)
    official, asked = to_sft_rows(dataset)[0], to_sft_rows(dataset, style="eval")[0]
    assert asked["prompt"] == prompts.build_prompt(
        asked["question"], asked["options"], asked["problem_type"], style="eval"
    )
    assert asked["prompt"] != official["prompt"] and asked["completion"] == official["completion"]


def test_skill_filter_keeps_only_that_skill(sft_folder: Path) -> None:
    everything = load_video_dataset(str(sft_folder))
    vidr = load_video_dataset(str(sft_folder), skills=["VidR"])
    assert set(vidr["skill"]) == {"VidR"}
    assert len(vidr) == sum(skill == "VidR" for skill in everything["skill"]) > 0
    with pytest.raises(ValueError, match="KnowVid"):
        load_video_dataset(str(sft_folder), skills=["Vidr"])


def test_each_folder_loads_its_own_rows_and_clips(sft_folder: Path, tmp_path: Path) -> None:
    """datasets keys a local folder's cache by its base name and card, not its place or content: another
    folder named ``sft`` (a copy elsewhere, a rebuild with other rows) must still load its own rows, with
    clip paths inside it."""
    import pandas

    first = tmp_path / "one" / "sft"
    shutil.copytree(sft_folder, first)
    rows = len(load_video_dataset(str(first)))
    second = tmp_path / "two" / "sft"
    shutil.copytree(first, second)
    shutil.rmtree(first)
    metadata = second / "train" / "metadata.parquet"
    pandas.read_parquet(metadata).iloc[:-1].to_parquet(metadata)  # one row fewer than the first folder
    loaded = load_video_dataset(str(second))
    assert len(loaded) == rows - 1
    paths = [Path(video["path"]) for video in loaded["video"]]
    assert all(path.is_relative_to(second) and path.is_file() for path in paths)


@pytest.mark.parametrize("direct", [False, True], ids=["cot", "direct"])
def test_labels_cover_exactly_the_response(
    tiny: tuple[str, Any, Any], rows: list[dict[str, Any]], sft_folder: Path, direct: bool
) -> None:
    _, model, processor = tiny
    if direct:
        rows = list(to_sft_rows(load_video_dataset(str(sft_folder), max_samples=2), direct=True))
    batch = VideoSFTCollator(processor, SAMPLING)(rows[:2])
    for i, row in enumerate(rows[:2]):
        labelled = batch["labels"][i] != -100
        positions = labelled.nonzero().flatten()
        assert positions.tolist() == list(range(int(positions[0]), int(positions[-1]) + 1))  # one span
        assert torch.equal(batch["labels"][i][labelled], batch["input_ids"][i][labelled])
        assert processor.tokenizer.decode(batch["labels"][i][labelled]) == row["completion"] + IM_END
    assert not (batch["labels"] != -100)[video_tokens(model, batch)].any()
    assert not (batch["labels"] != -100)[batch["attention_mask"] == 0].any()
    if direct:
        assert rows[0]["completion"] == f"<answer>{rows[0]['answer']}</answer>"


def test_batch_carries_the_clip_with_its_timing(
    tiny: tuple[str, Any, Any], rows: list[dict[str, Any]]
) -> None:
    arch, model, processor = tiny
    collator = VideoSFTCollator(processor, SAMPLING)
    batch = collator(rows[:2])
    merge = processor.video_processor.merge_size
    grid = batch["video_grid_thw"]
    assert grid.shape == (2, 3) and int(grid[0, 0]) == 2  # 4 frames, temporal patch 2
    assert batch["pixel_values_videos"].shape[0] == int(grid.prod(-1).sum())
    # mm_token_type_ids marks exactly the placeholders, and there is one per merged patch.
    assert torch.equal(batch["mm_token_type_ids"] == 2, video_tokens(model, batch))
    assert video_tokens(model, batch).sum(-1).tolist() == (grid.prod(-1) // merge**2).tolist()

    clip = collator.loader.load(rows[0]["video"])
    indices, fps = clip.metadata.frames_indices, clip.metadata.fps
    seconds_per_grid = 2 * (indices[1] - indices[0]) / fps
    positions, _ = model.model.get_rope_index(
        batch["input_ids"],
        batch["mm_token_type_ids"],
        video_grid_thw=grid,
        second_per_grid_ts=batch.get("second_per_grid_ts"),
        attention_mask=batch["attention_mask"],
    )
    temporal = positions[0, 0][video_tokens(model, batch)[0]].unique().tolist()
    assert len(temporal) == 2, "the two temporal patches must not share a position"
    if arch == "qwen2_5_vl":
        assert float(batch["second_per_grid_ts"][0]) == pytest.approx(seconds_per_grid)
        step = model.config.vision_config.tokens_per_second * seconds_per_grid
        assert temporal[1] - temporal[0] == round(step)
    else:
        text = processor.decode(batch["input_ids"][0])
        stamps = [(indices[2 * k] + indices[2 * k + 1]) / 2 / fps for k in range(2)]
        assert all(f"<{stamp:.1f} seconds>" in text for stamp in stamps)


def test_loss_depends_on_the_pixels(tiny: tuple[str, Any, Any], rows: list[dict[str, Any]]) -> None:
    _, model, processor = tiny
    batch = VideoSFTCollator(processor, SAMPLING)(rows[:1])
    with torch.no_grad():
        loss = model(**batch).loss
        blank = model(**{**batch, "pixel_values_videos": torch.zeros_like(batch["pixel_values_videos"])}).loss
    assert torch.isfinite(loss) and not torch.isclose(loss, blank, rtol=0, atol=1e-6)


def test_embedded_bytes_decode_like_the_file(tiny: tuple[str, Any, Any], rows: list[dict[str, Any]]) -> None:
    _, _, processor = tiny
    row = rows[0]
    embedded = {**row, "video": {"path": None, "bytes": Path(row["video"]["path"]).read_bytes()}}
    collator = VideoSFTCollator(processor, SAMPLING)
    from_file, from_bytes = collator([row]), collator([embedded])
    for key in from_file:
        assert torch.equal(from_file[key], from_bytes[key]), key


def test_broken_clip_is_counted_reported_and_dropped_not_replaced(
    tiny: tuple[str, Any, Any], rows: list[dict[str, Any]], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _, _, processor = tiny
    broken_path = corrupt_clip(tmp_path)
    broken = {**rows[1], "id": "broken-row", "video": {"path": str(broken_path), "bytes": None}}
    collator = VideoSFTCollator(processor, SAMPLING)
    with caplog.at_level(logging.WARNING, logger="videokr.training.collator"):
        batch = collator([rows[0], broken])
    assert [(f.row_id, f.clip) for f in collator.failures] == [("broken-row", str(broken_path))]
    assert any("broken-row" in r.getMessage() and str(broken_path) in r.getMessage() for r in caplog.records)
    # The batch is the good row alone: nothing was put in the broken row's place.
    alone = VideoSFTCollator(processor, SAMPLING)([rows[0]])
    assert batch["input_ids"].shape[0] == 1
    for key in alone:
        assert torch.equal(batch[key], alone[key]), key

    with pytest.raises(VideoDecodeError, match="broken-row"):
        collator([broken])
    with pytest.raises(VideoDecodeError, match="broken-row"):
        VideoSFTCollator(processor, SAMPLING, on_error="raise")([rows[0], broken])
    capped = VideoSFTCollator(processor, SAMPLING, max_failures=0)
    with pytest.raises(VideoDecodeError, match="max_failures"):
        capped([rows[0], broken])


def test_a_broken_clip_is_refilled_by_another_whole_row_at_batch_size_one(
    tiny: tuple[str, Any, Any], rows: list[dict[str, Any]], tmp_path: Path
) -> None:
    """At the paper's one sample per device a dropped clip would empty the batch and stop the run: with
    ``refill_from`` another row (its own question, clip and answer) takes the place, counted, the same
    one every time (a resumed run refills as the uninterrupted one did)."""
    _, _, processor = tiny
    broken = {**rows[1], "id": "broken-row", "video": {"path": str(corrupt_clip(tmp_path)), "bytes": None}}
    pool = [broken, *rows]
    collator = VideoSFTCollator(processor, SAMPLING, refill_from=pool)
    batch = collator([broken])
    assert batch["input_ids"].shape[0] == 1
    assert [f.row_id for f in collator.failures] == ["broken-row"]
    ((dropped, replacement),) = collator.refills
    assert dropped == "broken-row" and replacement in {row["id"] for row in rows}
    # Exactly the replacement row, collated on its own: the question was not paired with another clip.
    alone = VideoSFTCollator(processor, SAMPLING)([next(r for r in rows if r["id"] == replacement)])
    for key in alone:
        assert torch.equal(batch[key], alone[key]), key
    again = VideoSFTCollator(processor, SAMPLING, refill_from=pool)
    again([rows[0], broken])
    assert again.refills == collator.refills  # decided by the dropped row's id alone
    # A dataset with nothing decodable left to draw stops with a clear error, not an endless search.
    hopeless = VideoSFTCollator(processor, SAMPLING, refill_from=[broken, {**broken, "id": "also-broken"}])
    with pytest.raises(VideoDecodeError, match="no decodable replacement"):
        hopeless([broken])


def snapshot(parameters: list[torch.nn.Parameter]) -> list[torch.Tensor]:
    return [p.detach().clone() for p in parameters]


def changed(before: list[torch.Tensor], parameters: list[torch.nn.Parameter]) -> bool:
    return any(not torch.equal(b, p.detach()) for b, p in zip(before, parameters, strict=True))


@pytest.mark.parametrize("frozen", [True, False], ids=["vision-frozen", "vision-trained"])
def test_sft_step_runs_the_vision_tower_in_the_loss(
    rows: list[dict[str, Any]], sft_folder: Path, tmp_path: Path, frozen: bool
) -> None:
    model, processor = build_tiny_model("qwen2_5_vl")
    model.train()
    if frozen:
        freeze_vision(model)
    tower, projector = vision_parts(model)
    language = list(model.model.language_model.parameters())
    before = {"tower": snapshot(tower), "projector": snapshot(projector), "language": snapshot(language)}
    collator = VideoSFTCollator(processor, SAMPLING)
    expected_rows = collator(rows[:2])["pixel_values_videos"].shape[0]

    calls: list[tuple[int, bool]] = []
    hook = model.model.visual.register_forward_hook(
        lambda _m, args, _o: calls.append((args[0].shape[0], torch.is_grad_enabled()))
    )
    args = SFTConfig(
        output_dir=str(tmp_path),
        max_steps=1,
        per_device_train_batch_size=2,
        learning_rate=1e-2,
        bf16=False,
        use_cpu=True,
        report_to="none",
        save_strategy="no",
        remove_unused_columns=False,
        dataset_kwargs={"skip_prepare_dataset": True},
        seed=0,
    )
    dataset = to_sft_rows(load_video_dataset(str(sft_folder), max_samples=2))
    trainer = SFTTrainer(
        model=model, args=args, train_dataset=dataset, data_collator=collator, processing_class=processor
    )
    try:
        trainer.train()
    finally:
        hook.remove()
    assert calls == [(expected_rows, True)], "one vision forward, inside the loss, with every patch row"
    assert changed(before["language"], language)
    assert changed(before["tower"], tower) is not frozen
    assert changed(before["projector"], projector) is not frozen
