"""Fixtures shared by the training tests: the sample SFT / RL datasets built as Hub folders, tiny models
saved to disk, and small frame settings so a step takes a fraction of a second on CPU.

Import the fixtures you use into the test module; each module builds its own copy once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from videokr.vision import FrameSampling

#: 4 frames, each at most 64 × 64 pixels: a few dozen vision patches per clip.
SAMPLING = FrameSampling(num_frames=4, max_pixels=64 * 64, min_pixels=28 * 28)
SAMPLING_ARGS = ["--num_frames", "4", "--max_pixels", "4096", "--min_pixels", "784"]


def length_reward(completions: list[Any], **_: Any) -> list[float]:
    """A GRPO reward that always differs inside a group, so the advantages (and the update) are not zero."""
    return [float(len(completion[0]["content"])) for completion in completions]


@pytest.fixture(scope="module")
def sft_folder(sample_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """VideoKR-SFT built from the sample corpus (rows with `think`, a clip file per row)."""
    import videokr_sft
    from videokr.data.hub import build_repo

    out = tmp_path_factory.mktemp("hub") / "sft"
    build_repo(videokr_sft.SPEC, sample_corpus, out, workers=1, progress=False)
    return out


@pytest.fixture(scope="module")
def rl_folder(sample_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """VideoKR-RL built from the sample corpus."""
    import videokr_rl
    from videokr.data.hub import build_repo

    out = tmp_path_factory.mktemp("hub") / "rl"
    build_repo(videokr_rl.SPEC, sample_corpus, out, workers=1, progress=False)
    return out


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Both tiny architectures saved as checkpoints (what the scripts and GRPO's reference model load)."""
    from videokr.models.tiny import ARCHES, save_tiny_model

    root = tmp_path_factory.mktemp("tiny")
    return {arch: save_tiny_model(arch, root / arch) for arch in ARCHES}


def corrupt_clip(directory: Path) -> Path:
    """An .mp4 whose bytes are not a container: what a truncated download looks like to a decoder."""
    path = directory / "broken.mp4"
    path.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"not a video" * 50)
    return path
