"""Batched generation for Qwen-VL prompts (a video, one image, or text only): `VideoRolloutEngine`.

GRPO rollouts (`videokr.training`) and evaluation (`videokr.evaluation`) both decode through it, so it
sits below both: it reads the prompts `videokr.vision` encodes and imports nothing of either. How it
works and why: `videokr.generation.engine`.
"""

from videokr.generation.engine import Rollout, RolloutOptions, SamplingSettings, VideoRolloutEngine

__all__ = ["Rollout", "RolloutOptions", "SamplingSettings", "VideoRolloutEngine"]
