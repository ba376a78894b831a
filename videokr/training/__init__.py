"""Video post-training on TRL: the SFT collator, the GRPO trainer that carries video into every
log-probability forward and its rollout engine, dataset → trainer rows, freezing, and the scripts'
`VideoArguments`."""

from videokr.training.args import VideoArguments
from videokr.training.collator import DecodeFailure, VideoSFTCollator
from videokr.training.data import grpo_prompt, load_video_dataset, to_grpo_rows, to_sft_rows
from videokr.training.freeze import freeze_vision, vision_parts
from videokr.training.rollout import RolloutOptions, SamplingSettings, VideoRolloutEngine

__all__ = [
    "DecodeFailure",
    "RolloutOptions",
    "SamplingSettings",
    "VideoArguments",
    "VideoRolloutEngine",
    "VideoSFTCollator",
    "freeze_vision",
    "grpo_prompt",
    "load_video_dataset",
    "to_grpo_rows",
    "to_sft_rows",
    "vision_parts",
]
