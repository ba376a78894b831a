"""Frames at the size the model sees: the decoder's scaler, and the training view.

The reference everywhere is the full path: every sampled frame decoded at the clip's own size, then shrunk
with torchvision's antialiased bicubic (`resize_frames`, the operation qwen-vl-utils runs). The scaled
decode and the training view must give frames within 35 dB PSNR of it, and the same token ids, grids and
temporal positions through the real Qwen processors.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from videokr.data.training_view import (
    TrainingViewMismatch,
    ViewReport,
    ViewSettings,
    build_training_view,
    read_view_clip,
)
from videokr.models.tiny import build_tiny_processor
from videokr.sample.encode import write_clip
from videokr.vision import FrameSampling, Visual, VisualLoader, chat_messages, process, render
from videokr.vision import decode as video
from videokr.vision.frames import resize_frames

#: The paper's fps and pixel budget over a short clip: 640×360 shrinks to 420×224 (Qwen2.5-VL grid).
SAMPLING = FrameSampling(max_frames=8)
MIN_PSNR = 35.0


def _textured_frames(count: int, height: int, width: int, seed: int = 0) -> list[np.ndarray]:
    """Smooth colour texture at three scales, panned a few pixels per frame, plus fine grain: detail at
    every frequency, so a scaler that aliases or mishandles chroma shows in the PSNR."""
    rng = np.random.default_rng(seed)
    big = np.zeros((height + 64, width + 128, 3))
    for scale in (4, 16, 64):
        coarse = rng.random(((height + 64) // scale + 2, (width + 128) // scale + 2, 3))
        big += np.kron(coarse, np.ones((scale, scale, 1)))[: height + 64, : width + 128] / 3
    frames = []
    for i in range(count):
        frame = big[i : i + height, 2 * i : 2 * i + width] * 255 + rng.normal(0, 3, (height, width, 3))
        frames.append(np.clip(frame, 0, 255).astype(np.uint8))
    return frames


@pytest.fixture(scope="module")
def hd_like(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 s at 10 fps, 640×360: 6 frames sampled at 2 fps, each shrunk about 2.3× in area."""
    path = tmp_path_factory.mktemp("clips") / "textured.mp4"
    return write_clip(path, _textured_frames(30, 360, 640), 10.0, qp=18)


@pytest.fixture(scope="module")
def processors() -> dict[str, object]:
    return {arch: build_tiny_processor(arch) for arch in ("qwen2_5_vl", "qwen3_vl")}


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


def _full_path(loader: VisualLoader, clip: Path) -> Visual:
    """What the loader did before the decoder scaled: full-size frames, then the torchvision resize."""
    visual = loader.load(str(clip))
    full = video.sample_frames(clip, indices=list(visual.frame_indices), backend=loader.sampling.backend)
    height, width = full.frames.shape[1:3]
    frames = resize_frames(full.frames, loader.target_size(height, width))
    return Visual("video", frames, full.metadata, visual.frame_indices)


def _model_inputs(processor: object, visual: Visual) -> dict[str, torch.Tensor]:
    text = render(processor, chat_messages("What happens?"), generation_prompt=True)
    return dict(process(processor, [text], [visual]))


@pytest.mark.parametrize("backend", video.available_backends())
def test_decoder_scaler_matches_the_full_path(hd_like: Path, backend: str) -> None:
    indices = [2, 11, 25]
    full = video.sample_frames(hd_like, indices=indices, backend=backend).frames
    reference = resize_frames(full, (224, 420)).permute(0, 2, 3, 1).numpy()
    scaled = video.sample_frames(hd_like, indices=indices, backend=backend, size=(224, 420))
    assert scaled.frames.shape == (3, 224, 420, 3)
    assert (scaled.metadata.width, scaled.metadata.height) == (640, 360)  # the clip's own size
    assert _psnr(scaled.frames, reference) >= MIN_PSNR


@pytest.mark.parametrize("arch", ["qwen2_5_vl", "qwen3_vl"])
def test_scaled_loader_gives_the_full_paths_tokens_and_positions(
    hd_like: Path, processors: dict[str, object], arch: str
) -> None:
    processor = processors[arch]
    loader = VisualLoader(processor, SAMPLING)
    scaled, full = loader.load(str(hd_like)), _full_path(loader, hd_like)
    assert scaled.frames.shape == full.frames.shape
    assert _psnr(scaled.frames.numpy(), full.frames.numpy()) >= MIN_PSNR
    ours, reference = _model_inputs(processor, scaled), _model_inputs(processor, full)
    for key in ("input_ids", "mm_token_type_ids", "video_grid_thw", "second_per_grid_ts"):
        if key in reference:
            assert torch.equal(ours[key], reference[key]), key


# --------------------------------------------------------------------------------------------------
# The training view
# --------------------------------------------------------------------------------------------------

#: Rows of the source folder: two share the textured clip, one has a 29.97 fps clip, one a broken file.
_ROWS = [
    ("r0", "000/textured.mp4"),
    ("r1", "000/textured.mp4"),
    ("r2", "001/ntsc.mp4"),
    ("r3", "002/broken.mp4"),
]


def _source_folder(root: Path, textured: Path) -> Path:
    """A videofolder in the layout `videokr build` writes (card YAML, metadata.parquet, clips)."""
    import shutil

    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = root / "source"
    videos = folder / "train" / "videos"
    (videos / "000").mkdir(parents=True)
    shutil.copyfile(textured, videos / "000" / "textured.mp4")
    ntsc = _textured_frames(50, 240, 320, seed=1)  # 1.7 s at 29.97 fps: 4 frames at 2 fps
    write_clip(videos / "001" / "ntsc.mp4", ntsc, 30000 / 1001, qp=18)
    (videos / "002").mkdir()
    (videos / "002" / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"not a video" * 50)
    table = pa.table(
        {
            "file_name": [f"videos/{name}" for _, name in _ROWS],
            "id": [row_id for row_id, _ in _ROWS],
            "question": [f"What happens in {row_id}?" for row_id, _ in _ROWS],
        }
    )
    pq.write_table(table, folder / "train" / "metadata.parquet")
    (folder / "README.md").write_text(
        "---\npretty_name: Source\nlicense: cc-by-4.0\nconfigs:\n- config_name: default\n  data_files:\n"
        "  - split: train\n    path: train/**\ndataset_info:\n  features:\n  - name: id\n    dtype: string\n"
        "  - name: video\n    dtype: video\n  - name: question\n    dtype: string\n---\n\n# Source\n",
        encoding="utf-8",
    )
    (folder / "ATTRIBUTION.md").write_text("# Attribution\n\nClips: CC BY 4.0, the test suite.\n")
    return folder


@pytest.fixture(scope="module")
def source(hd_like: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _source_folder(tmp_path_factory.mktemp("view-source"), hd_like)


@pytest.fixture(scope="module")
def views(source: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, ViewReport]]:
    """The view at the paper's settings for each architecture's grid (28 and 32)."""
    root = tmp_path_factory.mktemp("views")
    built = {}
    for arch, factor in (("qwen2_5_vl", 28), ("qwen3_vl", 32)):
        settings = ViewSettings.of(SAMPLING, factor)
        built[arch] = (root / arch, build_training_view(source, root / arch, settings, progress=False))
    return built


def _view_rows(folder: Path) -> list[dict]:
    import datasets

    from videokr.data.local import load_local

    dataset = load_local(folder, "train").cast_column("video", datasets.Video(decode=False))
    return list(dataset)


@pytest.mark.parametrize("arch", ["qwen2_5_vl", "qwen3_vl"])
def test_view_gives_the_full_paths_frames_tokens_and_positions(
    source: Path, views: dict, processors: dict[str, object], arch: str
) -> None:
    folder, _ = views[arch]
    processor = processors[arch]
    loader = VisualLoader(processor, SAMPLING)
    rows = _view_rows(folder)
    assert [row["id"] for row in rows] == ["r0", "r1", "r2"]  # r3's clip does not decode
    for row in rows:
        original = source / "train" / "videos" / dict(_ROWS)[row["id"]]
        view, full = loader.load(row["video"]), _full_path(loader, original)
        assert view.frame_indices == full.frame_indices
        assert view.frames.shape == full.frames.shape
        assert _psnr(view.frames.numpy(), full.frames.numpy()) >= MIN_PSNR, row["id"]
        ours, reference = _model_inputs(processor, view), _model_inputs(processor, full)
        for key in ("input_ids", "mm_token_type_ids", "video_grid_thw", "second_per_grid_ts"):
            if key in reference:
                assert torch.equal(ours[key], reference[key]), (row["id"], key)


def test_view_clips_are_rgb_and_every_backend_reads_the_same_pixels(views: dict) -> None:
    """A view is coded as RGB, so reading it is a copy of its planes: the loader's frames are exactly
    what each backend's own RGB conversion gives (no colour matrix for two decoders to disagree on)."""
    import av

    folder, _ = views["qwen2_5_vl"]
    loader = VisualLoader(build_tiny_processor("qwen2_5_vl"), SAMPLING)
    for row in _view_rows(folder):
        path = row["video"]["path"]
        with av.open(path) as container:
            assert container.streams.video[0].format.name == "gbrp", path
        shown = loader.load(path).frames.numpy()
        every = range(shown.shape[0])
        for backend in video.available_backends():
            decoded = video.sample_frames(path, indices=every, backend=backend).frames
            assert np.array_equal(shown, decoded.transpose(0, 3, 1, 2)), (path, backend)


def test_a_view_clip_of_another_encoding_is_encoded_again(source: Path, views: dict, tmp_path: Path) -> None:
    """A re-run over a view an earlier version wrote (its manifest names another encoding) re-encodes every
    clip, so one view never mixes encodings, and ends with the bytes of a fresh build."""
    import json
    import shutil

    reference, _ = views["qwen2_5_vl"]
    out = tmp_path / "view"
    shutil.copytree(reference, out)
    manifest = out / ".videokr" / "training_view_clips.jsonl"
    entries = [json.loads(line) for line in manifest.read_text().splitlines()]
    older = [json.dumps({**entry, "encoding": "libx264/yuv444p/qp18"}) + "\n" for entry in entries]
    manifest.write_text("".join(older))

    report = build_training_view(source, out, ViewSettings.of(SAMPLING, 28), progress=False)
    assert (report.clips_reused, report.clips_encoded) == (0, 2)
    for clip in (reference / "train" / "videos").rglob("*.mp4"):
        assert (out / clip.relative_to(reference)).read_bytes() == clip.read_bytes()


def test_view_records_its_settings_and_what_it_kept_out(source: Path, views: dict) -> None:
    import json

    import yaml

    folder, report = views["qwen2_5_vl"]
    card = yaml.safe_load((folder / "README.md").read_text().split("---\n")[1])
    assert card["videokr_training_view"]["factor"] == 28
    assert card["videokr_training_view"]["max_pixels"] == SAMPLING.max_pixels
    state = json.loads((folder / ".videokr" / "training_view.json").read_text())
    made_for = {key: value for key, value in card["videokr_training_view"].items() if key != "format"}
    assert state["complete"] and state["settings"] == made_for
    assert [(row["id"], row["clip"]) for row in report.kept_out] == [("r3", "train/videos/002/broken.mp4")]
    assert report.kept == {"train": 3} and report.rows == {"train": 4}
    assert (folder / "ATTRIBUTION.md").read_text() == (source / "ATTRIBUTION.md").read_text()
    tag = read_view_clip(folder / "train" / "videos" / "000" / "textured.mp4")
    assert tag is not None and tag.source_width == 640 and tag.indices == (2, 7, 12, 17, 22, 27)


def test_a_view_made_for_other_settings_is_refused_naming_both(
    views: dict, processors: dict[str, object]
) -> None:
    from videokr.training.collator import VideoSFTCollator

    folder, _ = views["qwen2_5_vl"]
    row = _view_rows(folder)[0]
    other = FrameSampling(max_frames=8, max_pixels=50_176)
    with pytest.raises(
        TrainingViewMismatch, match=r"made for .*max_pixels=100352.* asks for .*max_pixels=50176"
    ):
        VisualLoader(processors["qwen2_5_vl"], other).load(row["video"])
    # A Qwen3-VL run (grid 32) on the Qwen2.5-VL view (grid 28): refused, not dropped as a bad clip.
    collator = VideoSFTCollator(processors["qwen3_vl"], SAMPLING)
    with pytest.raises(TrainingViewMismatch, match=r"factor=28.*factor=32"):
        collator([{**row, "prompt": "What happens?", "completion": "<answer>A</answer>"}])
    assert collator.failures == []


def test_view_feeds_the_collator_and_rollout_prompts_as_the_originals_do(
    source: Path, views: dict, processors: dict[str, object]
) -> None:
    from videokr.training.collator import VideoSFTCollator
    from videokr.vision import encode_prompts

    processor = processors["qwen2_5_vl"]
    folder, _ = views["qwen2_5_vl"]
    view_rows = _view_rows(folder)
    original_rows = [
        {**row, "video": str(source / "train" / "videos" / dict(_ROWS)[row["id"]])} for row in view_rows
    ]
    sft = [{"prompt": "What happens?", "completion": "<answer>A</answer>"}] * len(view_rows)
    collator = VideoSFTCollator(processor, SAMPLING)
    on_view = collator([{**row, **extra} for row, extra in zip(view_rows, sft, strict=True)])
    on_originals = collator([{**row, **extra} for row, extra in zip(original_rows, sft, strict=True)])
    for key in ("input_ids", "labels", "mm_token_type_ids", "video_grid_thw", "second_per_grid_ts"):
        assert torch.equal(on_view[key], on_originals[key]), key
    grpo = [{**row, "prompt": chat_messages("What happens?")} for row in view_rows]
    loader = VisualLoader(processor, SAMPLING)
    prompts = encode_prompts(processor, loader, grpo)
    reference = encode_prompts(
        processor, loader, [{**row, "prompt": chat_messages("What happens?")} for row in original_rows]
    )
    assert prompts.prompt_ids == reference.prompt_ids
    assert torch.equal(prompts.video.grid_thw, reference.video.grid_thw)
    assert torch.equal(prompts.video.second_per_grid_ts, reference.video.second_per_grid_ts)


def test_resuming_into_a_view_of_other_settings_is_refused(source: Path, views: dict) -> None:
    folder, _ = views["qwen2_5_vl"]
    before = sorted(p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file())
    with pytest.raises(TrainingViewMismatch, match=r"made for .*fps=2.0.* asks for .*fps=1.0"):
        build_training_view(source, folder, ViewSettings(fps=1.0, max_frames=8), progress=False)
    assert sorted(p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()) == before


@pytest.mark.parametrize("layout", ["loose", "shards"])
def test_a_killed_view_build_resumes_to_the_same_bytes(
    source: Path, views: dict, tmp_path: Path, layout: str
) -> None:
    """SIGKILL a build once its first clip is recorded, re-run it, and compare every file's bytes with the
    uninterrupted build (the fixture's, at the same settings, or one in shards)."""
    import multiprocessing
    import os
    import signal
    import time

    settings = ViewSettings.of(SAMPLING, 28)
    if layout == "loose":
        reference, _ = views["qwen2_5_vl"]
    else:
        reference = tmp_path / "reference"
        build_training_view(source, reference, settings, progress=False, layout=layout)
    out = tmp_path / "view"
    manifest = out / ".videokr" / "training_view_clips.jsonl"
    # A forked child has the libraries loaded already; the kill is real (no cleanup runs in it).
    child = multiprocessing.get_context("fork").Process(
        target=build_training_view, args=(source, out, settings), kwargs={"progress": False, "layout": layout}
    )
    child.start()
    while child.is_alive() and not (manifest.is_file() and manifest.read_text().count("\n") >= 1):
        time.sleep(0.002)
    os.kill(child.pid, signal.SIGKILL)
    child.join()
    assert child.exitcode == -signal.SIGKILL, "the build finished before it could be interrupted"
    assert not (out / "train" / "metadata.parquet").exists()

    report = build_training_view(source, out, settings, progress=False, layout=layout)
    assert report.clips_reused >= 1 and report.clips_reused + report.clips_encoded == 2

    def files(folder: Path) -> dict[str, bytes]:
        return {
            str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*"))
            if p.is_file() and ".videokr" not in p.parts
        }

    assert files(out) == files(reference)


@pytest.fixture(scope="module")
def sharded_source(sample_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    import videokr_sft
    from videokr.data.hub import build_repo

    built = tmp_path_factory.mktemp("sharded") / "sft"
    build_repo(
        videokr_sft.SPEC, sample_corpus, built, workers=1, progress=False, check=False, layout="shards"
    )
    assert list((built / "train").glob("*.zip"))
    return built


def test_view_of_a_sharded_build_reads_clips_from_its_zip_shards(
    sharded_source: Path, tmp_path: Path
) -> None:
    settings = ViewSettings.of(FrameSampling(max_frames=4), 28)
    report = build_training_view(sharded_source, tmp_path / "view", settings, progress=False)
    assert report.layout == "loose"  # auto: a few clips
    assert report.kept_out == [] and report.kept == report.rows
    rows = _view_rows(tmp_path / "view")
    assert len(rows) == report.rows["train"]
    tag = read_view_clip(rows[0]["video"]["path"])
    assert tag is not None and tag.source.startswith("shard-") and len(tag.indices) == 4
    again = build_training_view(sharded_source, tmp_path / "view", settings, progress=False)
    assert (again.clips_encoded, again.clips_reused) == (0, report.clips_encoded)


def test_a_sharded_view_holds_the_loose_views_clips_and_rewrites_only_changed_shards(
    sharded_source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A view in shards (what a view of the full release is, by file count): the same rows and clip bytes
    as the loose view, loaded and streamed through the training path, only shards and the card planned
    for upload, and a re-run that writes nothing when nothing changed."""
    from videokr.data import shards
    from videokr.data.publish import plan_upload
    from videokr.training.data import load_video_dataset, readable_clips

    monkeypatch.setattr(shards, "MAX_SHARD_CLIPS", 10)
    settings = ViewSettings.of(FrameSampling(max_frames=4), 28)
    loose = build_training_view(sharded_source, tmp_path / "loose", settings, progress=False)
    view = tmp_path / "view"
    report = build_training_view(sharded_source, view, settings, progress=False, layout="shards")
    assert report.layout == "shards" and report.kept == loose.kept

    archives = sorted((view / "train").glob("shard-*.zip"))
    assert len(archives) >= 2
    assert sorted(p.name for p in (view / "train").iterdir()) == [a.name for a in archives]  # no loose clip
    planned = {f.path for f in plan_upload(view).files}
    assert planned == {"README.md", "ATTRIBUTION.md", *(f"train/{a.name}" for a in archives)}

    loaded = readable_clips(load_video_dataset(str(view)))
    by_id = {row["id"]: row["video"]["path"] for row in _view_rows(tmp_path / "loose")}
    assert sorted(row["id"] for row in loaded) == sorted(by_id)
    for row in loaded:
        assert row["video"]["bytes"] == Path(by_id[row["id"]]).read_bytes(), row["id"]
    streamed = next(iter(readable_clips(load_video_dataset(str(view), streaming=True))))
    loader = VisualLoader(build_tiny_processor("qwen2_5_vl"), FrameSampling(max_frames=4))
    assert loader.load(streamed["video"]).frames.shape[0] == 4

    before = {a.name: a.stat().st_mtime_ns for a in archives}
    again = build_training_view(sharded_source, view, settings, progress=False)  # auto: keeps shards
    assert (again.layout, again.clips_encoded) == ("shards", 0)
    assert {a.name: a.stat().st_mtime_ns for a in (view / "train").glob("shard-*.zip")} == before
    with pytest.raises(ValueError, match="shards layout, not loose"):
        build_training_view(sharded_source, view, settings, progress=False, layout="loose")
