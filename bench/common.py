"""What the model benches (`bench.train_step`, `bench.rollout`) share: the released 7B / 8B architectures
built offline, a video prompt and a clip made through `videokr.vision`, the trainers the recipes run set up
around a model built in memory, and timing on the device.

**Architectures** (random weights, built offline from these numbers; token ids are those of the tiny
tokenizer, which changes nothing about cost):

- Qwen2.5-VL-7B: text hidden 3584, 28 layers, 28 heads / 4 KV heads (head dim 128), intermediate 18944,
  vocab 152064, rope θ 1e6, M-RoPE sections [16, 24, 24]; vision depth 32, hidden 1280, intermediate 3420,
  16 heads, patch 14, window 112 px with full attention in blocks [7, 15, 23, 31], out 3584.
- Qwen3-VL-8B: text hidden 4096, 36 layers, 32 heads / 8 KV heads (head dim 128), intermediate 12288,
  vocab 151936, rope θ 5e6, interleaved M-RoPE [24, 20, 20]; vision depth 27, hidden 1152, intermediate
  4304, 16 heads, patch 16, 2304 learned position embeddings, DeepStack taps [8, 16, 24], out 4096.

Both in bf16 with ``attn_implementation="sdpa"``. ``--tiny`` takes the test suite's tiny config instead.

**The video.** `synthetic_visual` makes ``--frames`` random frames of ``--height``×``--width`` (random
pixels cost what real ones do) as a `videokr.vision.Visual` carrying the `VideoMetadata` of a 2 fps clip
whose every frame is shown: the timing a clip sampled at the paper's 2 fps has, so placeholders, grids
and M-RoPE positions are those of a real clip. `video_prompt` renders and processes it with
`videokr.vision.chat_messages`, `render` and `process`, the path training and evaluation take. The
processor is the real processor class with the released checkpoints' settings and the tiny tokenizer
(`videokr.models.tiny.build_tiny_processor`).

The trainers read clips from files, so the same frames are also written to an mp4 (`write_visual`) that
`VideoSFTCollator` and `VideoGRPOTrainer` decode themselves at the paper's frame settings (2 fps,
≤ 128 frames, 100,352 px per frame; raised to ``--frames`` and the frame size when those ask for more).
No fast path is needed at the paper's sizes: 128 frames of 224×448 decode in about 0.1 s on one core. The
SFT batch is collated once, outside the timed step (a DataLoader prepares it ahead in training); GRPO
decodes inside the trainer's scoring phase, as in training.

**The trainers.** SFT: TRL's ``SFTTrainer`` with `VideoSFTCollator` (``skip_prepare_dataset``,
``remove_unused_columns=False``, as the SFT script configures it), one step = its ``training_step`` +
optimizer step. GRPO: `VideoGRPOTrainer` with a plain ``trl.GRPOConfig`` (our rollout engine, its
default options) holding the GRPO recipe's loss and sampling settings (`RECIPE_GRPO_KEYS`), a random
reward (its values change nothing about cost) and eos suppressed, so every completion is exactly
``--new-tokens`` long. `GRPOIteration` runs its phases the way ``Trainer.train`` does. Two things the
training loop would do are done here: it sets ``current_gradient_accumulation_steps`` per step, and it
turns activation checkpointing on (`set_checkpointing`). TRL builds the reference model by loading the
policy's checkpoint path again, which a model built from a config does not have, so the trainer is built
without one and the policy is set as its reference (`share_reference`): under ``no_grad`` that costs the
FLOPs of a separate copy without its memory, so peak memory is a lower bound by one bf16 copy of the
model. Optimizers are the trainer's own (AdamW, fused; states in the weights' bf16).
"""

from __future__ import annotations

import argparse
import contextlib
import random
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from videokr.data import prompts
from videokr.models.tiny import ARCHES, build_tiny_processor, tiny_config
from videokr.training import VideoSFTCollator, freeze_vision
from videokr.vision import (
    PAPER_FPS,
    PAPER_MAX_FRAMES,
    PAPER_MAX_PIXELS,
    FrameSampling,
    VideoBatch,
    Visual,
    chat_messages,
    process,
    render,
)

if TYPE_CHECKING:
    import datasets

ROOT = Path(__file__).resolve().parents[1]

#: The GRPO recipe of each architecture.
RECIPES: dict[str, Path] = {
    "qwen2_5_vl": ROOT / "train" / "recipes" / "qwen2_5_vl_7b" / "grpo.yaml",
    "qwen3_vl": ROOT / "train" / "recipes" / "qwen3_vl_8b" / "grpo.yaml",
}
#: The recipe fields the GRPO trainer takes from it: those that shape the loss and the sampling. The batch
#: shape (group, micro-batch, completion length) comes from the bench's options instead.
RECIPE_GRPO_KEYS: tuple[str, ...] = (
    "beta",
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "loss_type",
    "epsilon",
    "epsilon_high",
    "delta",
    "scale_rewards",
    "importance_sampling_level",
    "mask_truncated_completions",
)

QUESTION = "Which principle explains the motion shown in the video?"
OPTIONS = ("Conservation of momentum", "Bernoulli's principle", "Hooke's law", "Ohm's law")
ANSWER = "A"
_RATIONALE = " The ball rolls down the ramp, so its potential energy becomes kinetic energy."

# --------------------------------------------------------------------------------------------- model


def real_config(arch: str, tokenizer: Any, layers: int | None) -> Any:
    """The released 7B / 8B architecture (numbers in the module docstring) with the tokenizer's ids."""
    from transformers import Qwen2_5_VLConfig, Qwen3VLConfig

    tiny = tiny_config(arch, tokenizer)  # only for the special-token ids, so prompts and config agree
    ids = {k: getattr(tiny, k) for k in ("image_token_id", "video_token_id", "vision_start_token_id")}
    ids["vision_end_token_id"] = tiny.vision_end_token_id
    special = {k: getattr(tiny.text_config, k) for k in ("bos_token_id", "eos_token_id", "pad_token_id")}
    if arch == "qwen2_5_vl":
        depth = layers or 28
        text = {
            "vocab_size": 152064,
            "hidden_size": 3584,
            "intermediate_size": 18944,
            "num_hidden_layers": depth,
            "max_window_layers": depth,
            "num_attention_heads": 28,
            "num_key_value_heads": 4,
            "max_position_embeddings": 128000,
            "rms_norm_eps": 1e-6,
            "rope_parameters": {"rope_type": "default", "rope_theta": 1e6, "mrope_section": [16, 24, 24]},
            **special,
        }
        vision = {
            "depth": 32,
            "hidden_size": 1280,
            "intermediate_size": 3420,
            "num_heads": 16,
            "out_hidden_size": 3584,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "window_size": 112,
            "fullatt_block_indexes": [7, 15, 23, 31],
            "tokens_per_second": 2,
            "hidden_act": "silu",
        }
        return Qwen2_5_VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=False, **ids)
    text = {
        "vocab_size": 151936,
        "hidden_size": 4096,
        "intermediate_size": 12288,
        "num_hidden_layers": layers or 36,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "head_dim": 128,
        "max_position_embeddings": 262144,
        "rms_norm_eps": 1e-6,
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": 5e6,
            "mrope_section": [24, 20, 20],
            "mrope_interleaved": True,
        },
        **special,
    }
    vision = {
        "depth": 27,
        "hidden_size": 1152,
        "intermediate_size": 4304,
        "num_heads": 16,
        "out_hidden_size": 4096,
        "patch_size": 16,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
        "num_position_embeddings": 2304,
        "deepstack_visual_indexes": [8, 16, 24],
        "hidden_act": "gelu_pytorch_tanh",
    }
    return Qwen3VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=False, **ids)


def build_model(config: Any, device: torch.device, dtype: torch.dtype = torch.bfloat16) -> torch.nn.Module:
    """Random weights (bf16 unless asked) allocated directly on `device` (a 7B model never passes through
    host memory)."""
    from transformers import AutoModelForImageTextToText

    with device:
        model = AutoModelForImageTextToText.from_config(config, dtype=dtype, attn_implementation="sdpa")
    return model


@dataclass(frozen=True)
class ParamCounts:
    """The parameter groups the FLOP formulas need."""

    language: int  # embedding + decoder layers + norm + head
    tower: int  # vision tower (patch embedding, blocks, position embedding)
    projector: int  # patch merger (+ Qwen3-VL's DeepStack mergers)


def freeze_for_sft(model: torch.nn.Module) -> ParamCounts:
    """Freeze the vision tower and projector as the SFT recipes do (`freeze_vision`); its counts give the
    parameter groups, the language model being what still trains."""
    model.requires_grad_(True)
    counts = freeze_vision(model)
    return ParamCounts(counts["trainable"], counts["vision_tower"], counts["projector"])


def set_checkpointing(model: torch.nn.Module, on: bool) -> None:
    """Activation checkpointing on or off, as ``Trainer.train`` turns it on (non-reentrant).

    transformers 5.2x renamed the methods; older 5.x only has the old names.
    """
    if on:
        if hasattr(model, "activation_checkpointing_enable"):
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    elif hasattr(model, "activation_checkpointing_disable"):
        model.activation_checkpointing_disable()
    else:
        model.gradient_checkpointing_disable()


def never_sampled(config: Any, tokenizer: Any) -> list[int]:
    """Tokens the benches never sample: end of sequence (every completion then has exactly the requested
    length, so every variant does the same work) and the vision placeholders (a sampled one has no
    features behind it and would break the next forward)."""
    eos = config.text_config.eos_token_id
    eos_ids = eos if isinstance(eos, list) else [eos]
    vision = (
        config.image_token_id,
        config.video_token_id,
        config.vision_start_token_id,
        config.vision_end_token_id,
    )
    return sorted({*eos_ids, tokenizer.eos_token_id, *vision} - {None})


# --------------------------------------------------------------------------------------------- video


def synthetic_visual(frames: int, height: int, width: int, seed: int = 0) -> Visual:
    """`frames` random frames at model resolution, with the metadata of a clip recorded at the paper's
    2 fps whose every frame is shown (what `VisualLoader` returns for such a clip)."""
    from transformers.video_utils import VideoMetadata

    generator = torch.Generator().manual_seed(seed)
    pixels = torch.randint(0, 256, (frames, 3, height, width), dtype=torch.uint8, generator=generator)
    metadata = VideoMetadata(
        total_num_frames=frames,
        fps=PAPER_FPS,
        width=width,
        height=height,
        duration=frames / PAPER_FPS,
        frames_indices=list(range(frames)),
    )
    return Visual("video", pixels, metadata, tuple(range(frames)))


def write_visual(visual: Visual, path: Path) -> Path:
    """The visual's frames as an mp4 at its fps (the project's sample encoder), for the trainers to decode."""
    from videokr.sample.encode import write_clip

    assert visual.frames is not None and visual.metadata is not None
    return write_clip(path, visual.frames.permute(0, 2, 3, 1).contiguous().numpy(), visual.metadata.fps)


def prompt_text(style: prompts.PromptStyle) -> str:
    """The official multiple-choice prompt of `style` for the bench's question."""
    return prompts.build_prompt(QUESTION, list(OPTIONS), "multiple choice", style=style)


@dataclass
class VideoPrompt:
    """One processed video prompt (the processor's output for batch 1)."""

    features: dict[str, torch.Tensor]  # input_ids, attention_mask, mm_token_type_ids, video tensors

    @property
    def input_ids(self) -> torch.Tensor:
        return self.features["input_ids"]

    @property
    def tokens(self) -> int:
        return int(self.input_ids.shape[1])

    @property
    def patches(self) -> int:
        return int(self.features["video_grid_thw"].prod())

    def video(self, n: int, device: torch.device | str = "cpu") -> VideoBatch:
        """The clip's tensors for `n` samples on `device`, one pixel tensor shared by all of them (as
        `encode_prompts` shares it within a group)."""
        seconds = self.features.get("second_per_grid_ts")
        return VideoBatch(
            [self.features["pixel_values_videos"].to(device)] * n,
            self.features["video_grid_thw"].repeat(n, 1).to(device),
            None if seconds is None else seconds.repeat(n).to(device),
        )

    def repeated(self, n: int) -> dict[str, torch.Tensor]:
        """Forward inputs of `n` copies (a GRPO group as ``generate`` takes it: one prompt, n completions)."""
        keys = ("input_ids", "attention_mask", "mm_token_type_ids")
        return {**{k: self.features[k].repeat(n, 1) for k in keys}, **self.video(n).model_inputs()}


def video_prompt(processor: Any, visual: Visual) -> VideoPrompt:
    """The GRPO (``"rl"``) prompt with `visual`, through the chat template and the one processor call."""
    text = render(processor, chat_messages(prompt_text("rl"), "video"), generation_prompt=True)
    features = process(processor, [text], [visual], padding_side="left")
    return VideoPrompt(dict(features.items()))


# --------------------------------------------------------------------------------------------- rows


def rationale(tokenizer: Any, tokens: int) -> str:
    """A rationale whose SFT target (`prompts.assistant_target`) is `tokens` tokens long, or as short as a
    target gets (its tags, a one-word rationale and the answer) when `tokens` is below that."""

    def length(think: str) -> int:
        target = prompts.assistant_target(ANSWER, think)
        return len(tokenizer(target, add_special_tokens=False)["input_ids"])

    think = "So"
    while length(think + _RATIONALE) <= tokens:
        think += _RATIONALE
    while length(think + " A") <= tokens:  # one token each: fewer steps than a sentence has tokens
        think += " A"
    return think


def bench_rows(clips: Sequence[Path], think: str = _RATIONALE) -> datasets.Dataset:
    """One VideoKR-shaped row per clip (the columns `to_sft_rows` and `to_grpo_rows` read)."""
    import datasets

    return datasets.Dataset.from_list(
        [
            {
                "id": f"bench-{i}",
                "video": str(clip),
                "question": QUESTION,
                "options": list(OPTIONS),
                "problem_type": "multiple choice",
                "answer": ANSWER,
                "think": think,
            }
            for i, clip in enumerate(clips)
        ]
    )


def generation_batch(dataset: datasets.Dataset, group: int) -> list[dict[str, Any]]:
    """The rows of one generation, as TRL's sampler hands them over: each prompt `group` times in a row."""
    return [dataset[i] for i in range(len(dataset)) for _ in range(group)]


# --------------------------------------------------------------------------------------------- trainers


def _trainer_args(bench: Bench, name: str) -> dict[str, Any]:
    """What both trainers' configs share: no logging or saving, bf16 autocast where the device has it."""
    if bench.device.type == "cpu":
        precision: dict[str, Any] = {"use_cpu": True, "bf16": False}  # the weights are bf16 already
    else:
        precision = {"bf16": torch.cuda.is_bf16_supported()}
    return {
        "output_dir": str(bench.workdir / name),
        "report_to": "none",
        "save_strategy": "no",
        "remove_unused_columns": False,  # the trainers need the rows' clip and prompt columns
        "seed": 0,
        **precision,
    }


def sft_trainer(bench: Bench, dataset: datasets.Dataset) -> Any:
    """TRL's ``SFTTrainer`` with `VideoSFTCollator`, configured as the SFT script configures it."""
    from trl import SFTConfig, SFTTrainer

    config = SFTConfig(
        per_device_train_batch_size=1,
        learning_rate=1e-5,
        max_length=None,
        dataset_kwargs={"skip_prepare_dataset": True},
        **_trainer_args(bench, "sft"),
    )
    collator = VideoSFTCollator(bench.processor, bench.sampling, on_error="raise")
    trainer = SFTTrainer(
        model=bench.model,
        args=config,
        train_dataset=dataset,
        data_collator=collator,
        processing_class=bench.processor,
    )
    trainer.current_gradient_accumulation_steps = 1  # set by Trainer's loop for each step
    return trainer


def recipe_grpo_settings(arch: str) -> dict[str, Any]:
    """The `RECIPE_GRPO_KEYS` the arch's GRPO recipe sets."""
    import yaml

    recipe = yaml.safe_load(RECIPES[arch].read_text(encoding="utf-8"))
    return {key: recipe[key] for key in RECIPE_GRPO_KEYS if key in recipe}


def random_reward(completions: list[Any], **_: Any) -> list[float]:
    """Random rewards: their values change nothing about cost, and they keep the advantages non-zero."""
    return [random.random() for _ in completions]


def grpo_trainer(
    bench: Bench, dataset: datasets.Dataset, *, group: int, micro_batch: int, new_tokens: int
) -> Any:
    """`VideoGRPOTrainer` on `dataset`'s prompts × `group` completions of exactly `new_tokens` tokens,
    updated in micro-batches of `micro_batch` (steps per generation = accumulation steps, as the recipes
    align them, so no old-policy pass), with the recipe's loss and sampling settings."""
    from trl import GRPOConfig

    from videokr.training.grpo_trainer import VideoGRPOTrainer

    sequences = len(dataset) * group
    if sequences % micro_batch:
        raise SystemExit(f"--micro-batch {micro_batch} must divide the {sequences} sequences of a rollout")
    steps = sequences // micro_batch
    settings = recipe_grpo_settings(bench.arch)
    beta = settings.pop("beta", 0.0)
    config = GRPOConfig(
        per_device_train_batch_size=micro_batch,
        steps_per_generation=steps,
        gradient_accumulation_steps=steps,
        num_generations=group,
        max_completion_length=new_tokens,
        generation_kwargs={"suppress_tokens": never_sampled(bench.config, bench.processor.tokenizer)},
        beta=0.0,  # the reference is set below (see `share_reference`)
        **settings,
        **_trainer_args(bench, "grpo"),
    )
    trainer = VideoGRPOTrainer(
        model=bench.model,
        reward_funcs=[random_reward],
        args=config,
        train_dataset=dataset,
        processing_class=bench.processor,
        sampling=bench.sampling,
    )
    share_reference(trainer, beta)
    trainer.current_gradient_accumulation_steps = steps  # set by Trainer's loop for each step
    return trainer


def share_reference(trainer: Any, beta: float) -> None:
    """Use the policy as the KL reference (see the module docstring for why, and what it costs)."""
    trainer.beta = beta
    trainer.ref_model = trainer.model if beta else None


def make_optimizer(trainer: Any, kind: str) -> torch.optim.Optimizer | None:
    """The trainer's own optimizer over what trains now, or None for ``--optimizer none``."""
    return None if kind == "none" else trainer.create_optimizer()


def sft_step(trainer: Any, batch: Any, optimizer: torch.optim.Optimizer | None) -> None:
    """One SFT step as the training loop runs it: ``training_step`` (inputs to the device, the trainer's
    loss with its fused LM head, backward), then the optimizer."""
    trainer.training_step(trainer.model, batch)
    if optimizer is not None:
        optimizer.step()
    trainer.model.zero_grad(set_to_none=True)


@dataclass
class GRPOIteration:
    """One GRPO generation cycle through `VideoGRPOTrainer`, phase by phase as ``Trainer.train`` runs it.

    `score`: the trainer's ``_prepare_inputs`` at the start of a cycle: `_generate_and_score_completions`
    (clip decode and processor, rollout on our engine, rewards, reference log-probs, advantages), then the
    shuffle and split into the cycle's micro-batches. `update`: for each micro-batch what
    ``training_step`` runs after ``_prepare_inputs`` (the trainer's ``compute_loss`` and backward), then the
    optimizer step. ``training_step`` itself is not called: its ``_prepare_inputs`` would generate again.
    """

    trainer: Any
    rows: list[dict[str, Any]]
    optimizer: torch.optim.Optimizer | None

    def score(self) -> list[dict[str, Any]]:
        self.trainer.model.train()
        self.trainer._prepare_inputs(self.rows)
        return list(self.trainer._buffered_inputs)

    def generation_seconds(self, last: int) -> tuple[float, float] | None:
        """Mean (prefill, decode) seconds of the last `last` rollouts, as the trainer logs its engine's."""
        metrics = self.trainer._metrics["train"]
        prefill, decode = metrics["rollout/prefill_s"][-last:], metrics["rollout/decode_s"][-last:]
        if not prefill:
            return None
        return sum(prefill) / len(prefill), sum(decode) / len(decode)

    def update(self, micro_batches: list[dict[str, Any]]) -> None:
        trainer, model = self.trainer, self.trainer.model
        model.train()
        for inputs in micro_batches:
            with trainer.compute_loss_context_manager():
                loss = trainer.compute_loss(model, inputs)
            trainer.accelerator.backward(loss)
        if self.optimizer is not None:
            self.optimizer.step()
        model.zero_grad(set_to_none=True)


def sequence_tokens(micro_batches: list[dict[str, Any]]) -> int:
    """Prompt + completion tokens over all sequences of a cycle (padding included: it is computed)."""
    return sum(b["prompt_ids"].numel() + b["completion_ids"].numel() for b in micro_batches)


# --------------------------------------------------------------------------------------------- timing


class Clock:
    """Wall time and peak memory of a block on one device (synchronised, so GPU work is included)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    @contextlib.contextmanager
    def measure(self) -> Iterator[dict[str, float]]:
        result: dict[str, float] = {}
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)
        self.sync()
        start = time.perf_counter()
        yield result
        self.sync()
        result["seconds"] = time.perf_counter() - start
        if self.device.type == "cuda":
            result["peak_gb"] = torch.cuda.max_memory_allocated(self.device) / 2**30

    def repeat(self, fn: Callable[[], Any], steps: int, warmup: int) -> dict[str, float]:
        """Mean time over `steps` runs after `warmup` untimed ones; peak memory over the timed runs."""
        for _ in range(warmup):
            fn()
        with self.measure() as result:
            for _ in range(steps):
                fn()
        result["seconds"] /= steps
        return result


def matmul_tflops(device: torch.device, size: int, clock: Clock) -> float:
    """Achieved TFLOP/s of a square bf16 matmul: the practical ceiling for the model's matmuls."""
    a = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    b = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    result = clock.repeat(lambda: a @ b, steps=10, warmup=3)
    return 2 * size**3 / result["seconds"] / 1e12


# --------------------------------------------------------------------------------------------- set-up


def add_model_args(parser: argparse.ArgumentParser) -> None:
    """The options that pick the model and the video (shared by `bench.train_step` and `bench.rollout`)."""
    parser.add_argument("--arch", choices=ARCHES, default="qwen2_5_vl")
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument(
        "--tiny", action="store_true", help="the tiny test config instead of 7B/8B (smoke run)"
    )
    parser.add_argument("--layers", type=int, default=None, help="text layers (default: the real 28 / 36)")
    parser.add_argument("--frames", type=int, default=32, help="frames per clip, even (paper: 32 or 128)")
    parser.add_argument("--height", type=int, default=224, help="frame height on the patch grid")
    parser.add_argument("--width", type=int, default=448, help="frame width (224×448 = 100,352 px)")
    parser.add_argument(
        "--dtype",
        choices=("bfloat16", "float32"),
        default="bfloat16",
        help="weights (float32: what `videokr eval` loads on CPU, where bf16 matmuls without hardware "
        "support are several times slower)",
    )


@dataclass
class Bench:
    """The model, processor and video that `add_model_args`' options describe, built on the device."""

    arch: str
    device: torch.device
    clock: Clock
    processor: Any
    config: Any
    model: torch.nn.Module
    visual: Visual
    prompt: VideoPrompt
    sampling: FrameSampling  # how the trainers sample the clip: all of its frames, at its size
    workdir: Path
    clip: Path  # `visual` as an mp4

    @property
    def device_name(self) -> str:
        return torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "cpu"

    def clips(self, n: int) -> list[Path]:
        """`n` clip files with the same frames: distinct prompts to the trainer, which shares the decoded
        frames and the prefill of prompts whose clip path and text are equal."""
        copies = [self.clip]
        for k in range(1, n):
            copies.append(shutil.copyfile(self.clip, self.workdir / f"clip-{k}.mp4"))
        return copies


def quiet_libraries() -> None:
    """Keep the figures readable: no progress bars for the one-row datasets, no deprecation notices."""
    import datasets

    datasets.disable_progress_bars()
    warnings.filterwarnings("ignore", category=FutureWarning)


@contextlib.contextmanager
def open_bench(args: argparse.Namespace) -> Iterator[Bench]:
    """Build the `Bench` the options describe; its clip files live as long as the block."""
    quiet_libraries()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: use --device cpu --tiny for a smoke run")
    if args.frames < 2 or args.frames % 2:
        raise SystemExit("--frames must be even: the processors pair frames (temporal patch 2)")
    processor = build_tiny_processor(args.arch)
    factor = processor.video_processor.patch_size * processor.video_processor.merge_size
    if args.height % factor or args.width % factor:
        raise SystemExit(f"--height/--width must be multiples of {factor} for {args.arch}")
    torch.manual_seed(0)
    random.seed(0)
    tokenizer = processor.tokenizer
    config = (
        tiny_config(args.arch, tokenizer) if args.tiny else real_config(args.arch, tokenizer, args.layers)
    )
    model = build_model(config, device, getattr(torch, args.dtype))
    visual = synthetic_visual(args.frames, args.height, args.width)
    sampling = FrameSampling(
        max_frames=max(PAPER_MAX_FRAMES, args.frames),
        max_pixels=max(PAPER_MAX_PIXELS, args.height * args.width),
    )
    prompt = video_prompt(processor, visual)
    with tempfile.TemporaryDirectory(prefix="videokr-bench-") as tmp:
        clip = write_visual(visual, Path(tmp) / "clip.mp4")
        yield Bench(
            arch=args.arch,
            device=device,
            clock=Clock(device),
            processor=processor,
            config=config,
            model=model,
            visual=visual,
            prompt=prompt,
            sampling=sampling,
            workdir=Path(tmp),
            clip=clip,
        )
