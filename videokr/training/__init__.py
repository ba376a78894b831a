"""Video post-training on TRL: the SFT collator, the GRPO trainer that carries video into every
log-probability forward and its rollout engine, dataset → trainer rows, freezing, the model loader and the
scripts' options (`VideoScriptArguments`, `VideoGRPOConfig`).

The scripts themselves are `videokr.training.sft` and `videokr.training.grpo` (``accelerate launch -m
videokr.training.sft --config …``); they are not imported here, so running one with ``-m`` finds it
unimported. The trainer is `videokr.training.grpo_trainer.VideoGRPOTrainer`.
"""

from videokr.generation import RolloutOptions, SamplingSettings, VideoRolloutEngine
from videokr.training.args import VideoGRPOConfig, VideoScriptArguments
from videokr.training.collator import DecodeFailure, VideoSFTCollator
from videokr.training.data import grpo_prompt, load_video_dataset, to_grpo_rows, to_sft_rows
from videokr.training.freeze import freeze_vision, vision_parts
from videokr.training.model import load_model_and_processor

__all__ = [
    "DecodeFailure",
    "RolloutOptions",
    "SamplingSettings",
    "VideoGRPOConfig",
    "VideoRolloutEngine",
    "VideoSFTCollator",
    "VideoScriptArguments",
    "freeze_vision",
    "grpo_prompt",
    "load_model_and_processor",
    "load_video_dataset",
    "to_grpo_rows",
    "to_sft_rows",
    "vision_parts",
]
