"""`VideoArguments`: the data and video options both training scripts take, next to TRL's own configs.

Parsed with ``TrlParser((VideoArguments, SFTConfig | GRPOConfig, ModelConfig))``, so one recipe YAML
holds all three groups and any field can be overridden on the command line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from videokr.training.rollout import RolloutOptions
from videokr.vision import PAPER_FPS, PAPER_MAX_FRAMES, PAPER_MAX_PIXELS, PAPER_MIN_PIXELS, FrameSampling


@dataclass
class VideoArguments:
    """Where the data comes from and how clips become frames."""

    dataset: str = field(
        default="",
        metadata={"help": "Hub dataset id (e.g. <org>/VideoKR-SFT-201K) or a local built dataset folder."},
    )
    dataset_split: str = field(default="train", metadata={"help": "Split to train on."})
    fps: float = field(default=PAPER_FPS, metadata={"help": "Frames sampled per second of video (paper: 2)."})
    max_frames: int = field(
        default=PAPER_MAX_FRAMES, metadata={"help": "At most this many frames per clip (paper: 128)."}
    )
    num_frames: int | None = field(
        default=None, metadata={"help": "Sample exactly this many frames instead of fps/max_frames."}
    )
    max_pixels: int = field(
        default=PAPER_MAX_PIXELS, metadata={"help": "Pixel budget per frame (paper: 100,352)."}
    )
    min_pixels: int = field(
        default=PAPER_MIN_PIXELS, metadata={"help": "Smallest frame area after resizing."}
    )
    video_backend: str | None = field(
        default=None, metadata={"help": "torchcodec, pyav or decord (default: automatic)."}
    )
    freeze_vision_tower: bool = field(
        default=True, metadata={"help": "Freeze the vision encoder (paper: frozen in SFT)."}
    )
    freeze_projector: bool = field(
        default=True, metadata={"help": "Freeze the vision-language merger(s) (paper: frozen in SFT)."}
    )
    target: Literal["cot", "direct"] = field(
        default="cot",
        metadata={"help": "SFT target: <think>…</think><answer>…</answer> (cot) or <answer> only (direct)."},
    )
    skills: list[str] | None = field(
        default=None, metadata={"help": "Keep only these skills (VidR, KnowVid, KnowVidR) for ablations."}
    )
    max_samples: int | None = field(default=None, metadata={"help": "Train on the first N rows only."})
    max_decode_failures: int | None = field(
        default=None,
        metadata={"help": "Stop when more clips than this fail to decode (SFT; default: never)."},
    )

    rollout_engine: Literal["videokr", "generate"] = field(
        default="videokr",
        metadata={
            "help": "GRPO rollouts: videokr (each prompt prefilled once, static KV cache, compiled decoding) "
            "or generate (transformers' model.generate, as TRL runs it)."
        },
    )
    rollout_cache: Literal["static", "dynamic"] = field(
        default="static", metadata={"help": "KV cache of the videokr rollout engine."}
    )
    rollout_compile: bool | None = field(
        default=None,
        metadata={
            "help": "Compile the decode step (torch.compile, CUDA graphs). Default: on for CUDA unless the "
            "weights are sharded (DeepSpeed ZeRO-3, FSDP)."
        },
    )
    rollout_max_batch: int | None = field(
        default=None,
        metadata={"help": "At most this many sequences decoded together (KV-cache memory). Default: all."},
    )
    rollout_prefill_batch: int = field(
        default=4, metadata={"help": "Distinct prompts per prefill forward (vision-tower memory)."}
    )

    def rollout(self) -> RolloutOptions:
        """The rollout engine options these arguments describe."""
        return RolloutOptions(
            cache=self.rollout_cache,
            compile=self.rollout_compile,
            max_batch=self.rollout_max_batch,
            prefill_batch=self.rollout_prefill_batch,
        )

    def sampling(self) -> FrameSampling:
        """The frame sampling these arguments describe."""
        return FrameSampling(
            fps=self.fps,
            max_frames=self.max_frames,
            num_frames=self.num_frames,
            max_pixels=self.max_pixels,
            min_pixels=self.min_pixels,
            backend=self.video_backend,
        )
