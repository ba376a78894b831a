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
