"""The training scripts' options in TRL's own idiom: TRL's dataclasses, extended.

`VideoScriptArguments` (a ``trl.ScriptArguments``) says where the data comes from and how clips become
frames; `VideoGRPOConfig` (a ``trl.GRPOConfig``) adds the rollout engine and the reward functions by name.
The scripts parse ``TrlParser((VideoScriptArguments, SFTConfig | VideoGRPOConfig, ModelConfig))``, so one
recipe YAML holds all three groups and any field can be overridden on the command line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from trl import GRPOConfig, ScriptArguments

from videokr.data.prompts import PromptStyle
from videokr.generation import RolloutOptions
from videokr.training.rewards import PAPER_REWARD_FUNCS, REWARD_FUNCS
from videokr.vision import PAPER_FPS, PAPER_MAX_FRAMES, PAPER_MAX_PIXELS, PAPER_MIN_PIXELS, FrameSampling

__all__ = ["VideoGRPOConfig", "VideoScriptArguments"]


@dataclass
class VideoScriptArguments(ScriptArguments):
    """Where the data comes from and how clips become frames.

    From TRL's `ScriptArguments` the scripts read ``dataset_name`` and ``dataset_train_split``; they load
    one VideoKR split themselves (`load_video_dataset`) and do not evaluate during training, so
    ``dataset_test_split`` is unused, and ``dataset_config`` and ``ignore_bias_buffers`` are refused
    rather than ignored. TRL's ``dataset_streaming`` is honoured (also spelled ``--streaming``): rows and
    clips are read as training goes (`videokr.training.data.stream_video_dataset`).
    """

    dataset_name: str | None = field(
        default=None,
        metadata={"help": "Hub dataset id (e.g. <org>/VideoKR-SFT-201K) or a local built dataset folder."},
    )
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
    video_device: str = field(
        default="cpu",
        metadata={
            "help": "Decode the original clips on this device: cpu (default) or cuda (NVDEC through "
            "torchcodec; with dataloader_num_workers 0, as CUDA does not start in forked workers)."
        },
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
    prompt_style: PromptStyle | None = field(
        default=None,
        metadata={
            "help": "Official prompt layout to train on (default: the stage's own, sft for SFT and rl for "
            "GRPO). The official SFT, RL and evaluation prompts lay out the options differently; eval "
            "trains on the layout the benchmark asks in."
        },
    )
    skills: list[str] | None = field(
        default=None, metadata={"help": "Keep only these skills (VidR, KnowVid, KnowVidR) for ablations."}
    )
    max_samples: int | None = field(default=None, metadata={"help": "Train on the first N rows only."})
    dataset_streaming: bool = field(
        default=False,
        metadata={
            "help": "Stream rows and clips from the Hub id, folder or fsspec URL (hf://, https://, s3://) "
            "as training goes, each process and dataloader worker reading its own shards; needs max_steps.",
            "aliases": ["--streaming"],
        },
    )
    max_decode_failures: int | None = field(
        default=None,
        metadata={"help": "Stop when more clips than this fail to decode (SFT; default: never)."},
    )

    def __post_init__(self) -> None:
        unsupported = {
            "dataset_config": self.dataset_config is not None,
            "ignore_bias_buffers": self.ignore_bias_buffers,
        }
        refused = [name for name, set_ in unsupported.items() if set_]
        if refused:
            raise ValueError(f"the videokr training scripts do not support {', '.join(refused)}")

    def sampling(self) -> FrameSampling:
        """The frame sampling these arguments describe."""
        return FrameSampling(
            fps=self.fps,
            max_frames=self.max_frames,
            num_frames=self.num_frames,
            max_pixels=self.max_pixels,
            min_pixels=self.min_pixels,
            backend=self.video_backend,
            device=self.video_device,
        )


@dataclass
class VideoGRPOConfig(GRPOConfig):
    """TRL's `GRPOConfig` plus the rollout engine's options and the reward functions by name.

    `VideoGRPOTrainer` reads the ``rollout_*`` fields from its ``args``; the GRPO script turns
    ``reward_funcs`` into functions with `videokr.training.rewards.reward_functions`. Unknown reward names,
    a ``reward_weights`` of another length and contradictory rollout options fail here, before any model
    is loaded.
    """

    reward_funcs: list[str] = field(
        default_factory=lambda: list(PAPER_REWARD_FUNCS),
        metadata={
            "help": f"Reward functions by name, from {', '.join(REWARD_FUNCS)} (videokr.training.rewards). "
            "Default: accuracy and format, the paper's, weighted [0.9, 0.1] unless reward_weights is set."
        },
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

    def __post_init__(self) -> None:
        super().__post_init__()
        unknown = [name for name in self.reward_funcs if name not in REWARD_FUNCS]
        if unknown:
            raise ValueError(f"unknown reward function(s) {unknown}; choose from {', '.join(REWARD_FUNCS)}")
        if not self.reward_funcs:
            raise ValueError(f"reward_funcs is empty; choose from {', '.join(REWARD_FUNCS)}")
        if self.reward_weights is not None and len(self.reward_weights) != len(self.reward_funcs):
            raise ValueError(
                f"{len(self.reward_weights)} reward_weights for {len(self.reward_funcs)} reward_funcs "
                f"{self.reward_funcs}"
            )
        if self.rollout_engine not in ("videokr", "generate"):
            raise ValueError(f"rollout_engine must be 'videokr' or 'generate', not {self.rollout_engine!r}")
        self.rollout()  # RolloutOptions checks its own values

    def rollout(self) -> RolloutOptions:
        """The rollout engine options this config describes."""
        return RolloutOptions(
            cache=self.rollout_cache,
            compile=self.rollout_compile,
            max_batch=self.rollout_max_batch,
            prefill_batch=self.rollout_prefill_batch,
        )
