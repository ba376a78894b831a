"""Tiny, real Qwen2.5-VL and Qwen3-VL models built offline, in-process, for tests, the demo and benchmarks.

Tests must exercise the code paths a 7B run takes (processor, chat template, video placeholder expansion,
M-RoPE with video, the vision tower) without downloading anything. So nothing here is a mock: each model
is the real transformers architecture with a shrunken config, and each processor is the real processor
class with a byte-level BPE tokenizer trained in-process on a small built-in corpus, the Qwen special
tokens in Qwen's order, and the real chat template shipped inside the TRL wheel.

What is kept from the released checkpoints, because the video token arithmetic depends on it: patch size
(14 for Qwen2.5-VL, 16 for Qwen3-VL), temporal patch 2, spatial merge 2, the processors' pixel budgets and
normalisation, the M-RoPE layout (`mrope_section` summing to head_dim / 2, interleaved for Qwen3-VL),
window attention with full-attention blocks (Qwen2.5-VL), a square learned position grid and DeepStack
(Qwen3-VL). What is shrunk: widths, depths and the vocabulary (a few hundred tokens, so the model's
`vocab_size` equals `len(tokenizer)` exactly and generation can only emit ids the tokenizer knows).
"""

from __future__ import annotations

import importlib.resources
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from videokr.data import prompts

if TYPE_CHECKING:
    from transformers import PreTrainedModel, ProcessorMixin
    from transformers.models.qwen2.tokenization_qwen2 import Qwen2Tokenizer

ARCHES: tuple[str, ...] = ("qwen2_5_vl", "qwen3_vl")

# Special tokens, in the order (and so with the relative ids) of the Qwen2.5 vocabulary. The processors
# look up <|image_pad|>, <|video_pad|>, <|vision_start|> and <|vision_end|>; the chat templates write
# <|im_start|> / <|im_end|>; generation stops on <|im_end|> and pads with <|endoftext|>.
ENDOFTEXT = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
VISION_START = "<|vision_start|>"
VISION_END = "<|vision_end|>"
IMAGE_PAD = "<|image_pad|>"
VIDEO_PAD = "<|video_pad|>"
QWEN_SPECIAL_TOKENS: tuple[str, ...] = (
    ENDOFTEXT,
    IM_START,
    IM_END,
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    VISION_START,
    VISION_END,
    "<|vision_pad|>",
    IMAGE_PAD,
    VIDEO_PAD,
)
# Added but not special: they survive `skip_special_tokens=True`, as in the released tokenizers.
QWEN2_5_PLAIN_TOKENS: tuple[str, ...] = (
    "<tool_call>",
    "</tool_call>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
)
# Qwen3 adds the tool-response and reasoning tags as single tokens; Qwen2.5 spells <think> in BPE pieces.
QWEN3_PLAIN_TOKENS: tuple[str, ...] = (
    *QWEN2_5_PLAIN_TOKENS,
    "<tool_response>",
    "</tool_response>",
    "<think>",
    "</think>",
)

BPE_VOCAB_SIZE = 640  # target of the BPE trainer (256 byte symbols + merges); the corpus may stop short

# The official VideoKR prompt suffixes are in the corpus, so the tokenizer has merges for them.
MC_SUFFIX = prompts.MC_SUFFIX
OPEN_SUFFIX = prompts.OPEN_ENDED_SUFFIX
_CORPUS_SENTENCES: tuple[str, ...] = (
    MC_SUFFIX,
    OPEN_SUFFIX,
    "You are a helpful assistant.",
    "system\nuser\nassistant\n",
    "Which statement best explains what happens in the video?",
    "What is the value shown at the end of the experiment?",
    "How many times does the pendulum swing before it stops?",
    "According to the lecture, why does the reaction release heat?",
    "Options:\nA. The mass increases\nB. The energy is conserved\nC. The speed doubles\nD. None of the above",
    "E. friction\nF. gravity\nG. pressure\nH. voltage\nI. current\nJ. momentum",
    "<think>The video shows a ball rolling down a ramp. At 2.5 seconds it reaches the bottom, so the "
    "potential energy became kinetic energy.</think>\n<answer>B</answer>",
    "<think>First the teacher writes the equation, then the graph rises. The answer is C.</think>\n"
    "<answer>C</answer>",
    "<think>Counting the frames, the light turns on 3 times.</think>\n<answer>3</answer>",
    "<answer>A</answer> <answer>D</answer> <answer>E</answer> <answer>J</answer>",
    "<0.5 seconds><1.5 seconds><2.5 seconds><3.5 seconds><10.0 seconds><12.5 seconds>",
    "0 1 2 3 4 5 6 7 8 9 10 12 25 100 0.5 1.5 3.14 9.81",
    "A B C D E F G H I J",
    "physics chemistry biology medicine engineering history economics mathematics geography",
    "The cell divides into two daughter cells during mitosis.",
    "The circuit has a resistor of 10 ohms and a battery of 9 volts.",
    "Video reasoning, knowledge-enhanced video perception, knowledge-intensive video reasoning.",
)


@dataclass(frozen=True)
class TinySpec:
    """Everything that differs between the two architectures, in one place."""

    arch: str
    model_class: str
    processor_class: str
    template: str
    plain_tokens: tuple[str, ...]


SPECS: dict[str, TinySpec] = {
    "qwen2_5_vl": TinySpec(
        arch="qwen2_5_vl",
        model_class="Qwen2_5_VLForConditionalGeneration",
        processor_class="Qwen2_5_VLProcessor",
        template="qwen2_5_vl.jinja",
        plain_tokens=QWEN2_5_PLAIN_TOKENS,
    ),
    "qwen3_vl": TinySpec(
        arch="qwen3_vl",
        model_class="Qwen3VLForConditionalGeneration",
        processor_class="Qwen3VLProcessor",
        template="qwen3_vl.jinja",
        plain_tokens=QWEN3_PLAIN_TOKENS,
    ),
}


def spec_for(arch: str) -> TinySpec:
    """The spec of `arch`, or a ValueError naming the supported ones (a CLI typo should say what to type)."""
    try:
        return SPECS[arch]
    except KeyError:
        raise ValueError(f"unknown arch {arch!r}; choose one of {', '.join(ARCHES)}") from None


def corpus() -> Iterator[str]:
    """The built-in BPE training corpus: prompts, <think>/<answer> text, option letters A–J and digits."""
    yield from _CORPUS_SENTENCES
    for index, letter in enumerate("ABCDEFGHIJ"):
        yield f"{letter}. option {index}\n<answer>{letter}</answer>"


def chat_template(arch: str) -> str:
    """The real chat template of `arch`, read from the installed TRL wheel (never downloaded).

    TRL keeps byte-exact copies of the released templates to recognise models; using them means the
    tiny processor renders prompts exactly as the released checkpoint's processor does.
    """
    name = spec_for(arch).template
    return (importlib.resources.files("trl") / "chat_templates" / name).read_text(encoding="utf-8")


def build_tiny_tokenizer(arch: str) -> Qwen2Tokenizer:
    """A byte-level BPE Qwen2 tokenizer trained on `corpus()`, with the Qwen added tokens after the BPE ids.

    Uses the Qwen2 pre-tokenizer regex and byte-level alphabet, so any text (and any option letter or
    digit) tokenizes, and the training is deterministic: same arch, same ids.
    """
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers, trainers
    from tokenizers.models import BPE
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX, Qwen2Tokenizer

    spec = spec_for(arch)
    backend = Tokenizer(BPE(continuing_subword_prefix="", end_of_word_suffix="", byte_fallback=False))
    backend.normalizer = normalizers.NFC()
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=BPE_VOCAB_SIZE,
        min_frequency=2,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(list(corpus()), trainer)
    model = json.loads(backend.to_str())["model"]
    vocab: dict[str, int] = model["vocab"]
    merges = [tuple(pair) for pair in model["merges"]]

    added = [(token, True) for token in QWEN_SPECIAL_TOKENS] + [(token, False) for token in spec.plain_tokens]
    added_tokens_decoder = {
        len(vocab) + offset: AddedToken(token, special=special, normalized=False)
        for offset, (token, special) in enumerate(added)
    }
    return Qwen2Tokenizer(
        vocab=vocab,
        merges=merges,
        unk_token=None,
        bos_token=None,
        eos_token=IM_END,
        pad_token=ENDOFTEXT,
        added_tokens_decoder=added_tokens_decoder,
        extra_special_tokens=[token for token in QWEN_SPECIAL_TOKENS if token != ENDOFTEXT],
        model_max_length=32768,
    )


def build_tiny_processor(arch: str) -> ProcessorMixin:
    """The real processor class of `arch` with the tiny tokenizer and the released checkpoints' settings.

    Pixel budgets and normalisation are those of the released `preprocessor_config.json` /
    `video_preprocessor_config.json` (Qwen2.5-VL-7B-Instruct, Qwen3-VL-8B-Instruct), so a clip gets the
    same grid, and the same number of video tokens, as it would with the real model. The per-frame pixel
    cap is switched on explicitly: it is what the reference frame sampler (qwen-vl-utils) does and the
    announced transformers default; leaving it unset only adds a warning to every run.
    """
    from transformers import (
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
        Qwen3VLProcessor,
        Qwen3VLVideoProcessor,
    )

    tokenizer = build_tiny_tokenizer(arch)
    template = chat_template(arch)
    if arch == "qwen2_5_vl":
        budget = {"min_pixels": 3136, "max_pixels": 12_845_056}
        return Qwen2_5_VLProcessor(
            image_processor=Qwen2VLImageProcessor(**budget),
            tokenizer=tokenizer,
            video_processor=Qwen2VLVideoProcessor(**budget, cap_pixels_per_frame=True),
            chat_template=template,
        )
    half = {"image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}
    return Qwen3VLProcessor(
        image_processor=Qwen2VLImageProcessor(
            patch_size=16, size={"shortest_edge": 65_536, "longest_edge": 16_777_216}, **half
        ),
        tokenizer=tokenizer,
        video_processor=Qwen3VLVideoProcessor(
            size={"shortest_edge": 4096, "longest_edge": 25_165_824}, cap_pixels_per_frame=True, **half
        ),
        chat_template=template,
    )


_ID_NAMES = {
    "endoftext": ENDOFTEXT,
    "im_end": IM_END,
    "image_token_id": IMAGE_PAD,
    "video_token_id": VIDEO_PAD,
    "vision_start_token_id": VISION_START,
    "vision_end_token_id": VISION_END,
}


def _token_ids(tokenizer: Qwen2Tokenizer) -> dict[str, int]:
    """The ids the model config and generation config must share with the tokenizer."""
    ids = {name: tokenizer.convert_tokens_to_ids(token) for name, token in _ID_NAMES.items()}
    missing = [name for name, value in ids.items() if value is None or value == tokenizer.unk_token_id]
    if missing:
        raise RuntimeError(f"tiny tokenizer lacks {missing}")
    return ids


def tiny_config(arch: str, tokenizer: Qwen2Tokenizer, *, init_std: float | None = None) -> Any:
    """A shrunken config of the real architecture whose token ids are the tokenizer's.

    Text: 2 layers, width 64, 4 query / 2 key-value heads of dim 16 (grouped-query attention as in the
    released models). Vision: 2 blocks, width 32, output width 64 (the text width, as the merger requires).
    ``init_std`` replaces the released configs' ``initializer_range`` (0.02) everywhere; see
    `LEARNER_INIT_STD`.
    """
    from transformers import Qwen2_5_VLConfig, Qwen3VLConfig

    ids = _token_ids(tokenizer)
    text = {
        "vocab_size": len(tokenizer),
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 32768,
        "bos_token_id": ids["endoftext"],
        "eos_token_id": ids["im_end"],
        "pad_token_id": ids["endoftext"],
    }
    vision = {
        "depth": 2,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_heads": 2,
        "out_hidden_size": text["hidden_size"],
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
    }
    token_ids = {name: ids[name] for name in _ID_NAMES if name.endswith("_token_id")}
    if init_std is not None:
        text["initializer_range"] = vision["initializer_range"] = init_std
        token_ids["initializer_range"] = init_std  # the top-level config's own field
    if arch == "qwen2_5_vl":
        return Qwen2_5_VLConfig(
            # head_dim 16 -> 8 rotary frequencies, split t/h/w like the released [16, 24, 24] of 64.
            text_config={
                **text,
                "rope_parameters": {"rope_type": "default", "rope_theta": 1e6, "mrope_section": [2, 3, 3]},
            },
            # Released: tokens_per_second 2, window 112 px, full attention on the last block of each stage.
            vision_config={
                **vision,
                "patch_size": 14,
                "tokens_per_second": 2,
                "window_size": 112,
                "fullatt_block_indexes": [1],
            },
            tie_word_embeddings=False,
            **token_ids,
        )
    return Qwen3VLConfig(
        # Released: [24, 20, 20] of 64, interleaved t/h/w; here [4, 2, 2] of 8.
        text_config={
            **text,
            "head_dim": 16,
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 5e6,
                "mrope_section": [4, 2, 2],
                "mrope_interleaved": True,
            },
        },
        # num_position_embeddings must be a perfect square (an 8 × 8 learned grid, resampled per frame);
        # one DeepStack tap per vision block, each feeding one of the two text layers.
        vision_config={
            **vision,
            "patch_size": 16,
            "hidden_act": "gelu_pytorch_tanh",
            "num_position_embeddings": 64,
            "deepstack_visual_indexes": [0, 1],
        },
        tie_word_embeddings=False,
        **token_ids,
    )


def tiny_generation_config(tokenizer: Qwen2Tokenizer) -> Any:
    """Greedy decoding that stops at <|im_end|> (or <|endoftext|>) and pads with <|endoftext|>.

    Stop and pad ids are those of the released generation configs; greedy (unlike the released sampling
    defaults) so a test that generates twice gets the same tokens.
    """
    from transformers import GenerationConfig

    ids = _token_ids(tokenizer)
    return GenerationConfig(
        bos_token_id=ids["endoftext"],
        eos_token_id=[ids["im_end"], ids["endoftext"]],
        pad_token_id=ids["endoftext"],
        do_sample=False,
        max_new_tokens=32,
    )


#: Weight init for a tiny model that is to *learn* from scratch (the demo). At the released 0.02 a model
#: this narrow starts with near-uniform attention over the ~200 tokens of an official prompt, and on the
#: learning corpus it stayed at chance on every family, even copying a name stated in the question,
#: for 1,750 steps (batch 16, AdamW at 1e-2 or 3e-3); at 0.1 it copies the name after 250 steps.
LEARNER_INIT_STD = 0.1


def build_tiny_model(
    arch: str, *, seed: int = 0, init_std: float | None = None
) -> tuple[PreTrainedModel, ProcessorMixin]:
    """A tiny real `arch` model (float32, eval mode) and its processor; the same seed gives the same weights.

    The caller's global torch RNG is left untouched, so building a model inside a test does not change
    what later random draws in that test return.
    """
    import torch
    import transformers

    spec = spec_for(arch)
    processor = build_tiny_processor(arch)
    config = tiny_config(arch, processor.tokenizer, init_std=init_std)
    model_class = getattr(transformers, spec.model_class)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_class(config).to(torch.float32)
    model.generation_config = tiny_generation_config(processor.tokenizer)
    model.eval()
    return model, processor


def save_tiny_model(arch: str, out_dir: str | Path, *, seed: int = 0, init_std: float | None = None) -> Path:
    """Build the tiny `arch` model and write model, generation config and processor to `out_dir`.

    The folder then loads offline with `AutoModelForImageTextToText.from_pretrained(out_dir)` and
    `AutoProcessor.from_pretrained(out_dir)`, like a Hub checkpoint, so scripts that take a model path
    (training, evaluation, serving) can be pointed at it.
    """
    model, processor = build_tiny_model(arch, seed=seed, init_std=init_std)
    return _write(model, processor, out_dir)


def _write(model: PreTrainedModel, processor: ProcessorMixin, out_dir: str | Path) -> Path:
    """`save_pretrained` both halves into one folder, the layout Auto classes and Hub checkpoints use."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def count_parameters(model: PreTrainedModel) -> dict[str, int]:
    """Parameters in total, in the vision tower (with its merger) and in the language model with its head."""
    total = sum(p.numel() for p in model.parameters())
    vision = sum(p.numel() for p in model.model.visual.parameters())
    return {"total": total, "vision": vision, "language": total - vision}


def tiny_model_command(arch: str, out: Path) -> Path:
    """`videokr tiny-model --arch ARCH OUT`: write the tiny model and print what was written where."""
    model, processor = build_tiny_model(arch)
    path = _write(model, processor, out)
    params = count_parameters(model)
    print(
        f"tiny {arch}: {params['total']:,} parameters "
        f"(vision {params['vision']:,}, language {params['language']:,}), "
        f"vocab {model.config.text_config.vocab_size}, written to {path}"
    )
    return path
