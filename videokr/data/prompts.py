"""The official VideoKR prompts, the chat messages Qwen2.5-VL / Qwen3-VL are trained and evaluated on, and
the judge prompts.

The reference implementation writes the user prompt three slightly different ways, one per framework,
and a model is sensitive to which one it saw in training, so each is reproduced byte for byte:

``"sft"``  (LLaMA-Factory SFT data)::

    <video>{question}\\n\\nOptions:\\nA. …\\nB. …\\n{suffix}          (open-ended: no options; suffix + "\\n")

``"rl"``   (verl GRPO data)::

    <video>\\n{question}\\nOptions:\\nA. …\\nB. …\\n{suffix}

``"eval"`` (lmms-eval task)::

    {question}\\nA. …\\nB. …\\n{suffix}                       (the video is passed beside the text)

`build_prompt` returns the text that follows the video in each case, so ``VIDEO_PLACEHOLDER + text`` is
the official user string for ``"sft"`` and ``"rl"`` (for ``"rl"`` the text therefore starts with the
newline that verl leaves after splitting the prompt at ``<video>``), and the text alone is the official
string for ``"eval"``. In chat messages the video part always comes first, where ``<video>`` stands.

The default style is ``"eval"``: the benchmark numbers are the ones a mismatched prompt would silently
move, while the training entry points name their style explicitly in their recipes.

Options are option *texts* (letters A, B, … are implied by order, as in the canonical record); the
official data carries ``"A. text"`` lines, which is exactly what is rendered here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from videokr.data.records import LETTERS, MULTIPLE_CHOICE, normalize_problem_type, unwrap_tag

__all__ = [
    "DEFAULT_PROMPT_STYLE",
    "INSTRUCTION",
    "MC_SUFFIX",
    "OPEN_ENDED_SUFFIX",
    "PROMPT_STYLES",
    "VIDEO_PLACEHOLDER",
    "PromptStyle",
    "assistant_target",
    "build_messages",
    "build_prompt",
    "format_options",
    "has_embedded_options",
    "suffix_for",
    "video_part",
]

PromptStyle = Literal["sft", "rl", "eval"]
PROMPT_STYLES: tuple[PromptStyle, ...] = ("sft", "rl", "eval")
DEFAULT_PROMPT_STYLE: PromptStyle = "eval"

#: Where the official SFT and RL strings put the video; chat messages put a video part there instead.
VIDEO_PLACEHOLDER = "<video>"

#: The two sentences every official prompt shares.
INSTRUCTION = (
    "Please answer this question based on the visual content.\n"
    "Provide your thinking process between the <think> and </think> tags, "
    "and then give your final answer between the <answer> and </answer> tags.\n"
)
#: Instruction suffix for multiple-choice questions (training and evaluation).
MC_SUFFIX = (
    INSTRUCTION + "Please provide only the single option letter (e.g., A, B, C, D, etc.) "
    "within the <answer>...</answer> tags."
)
#: Instruction suffix for open-ended questions (training and evaluation).
OPEN_ENDED_SUFFIX = (
    INSTRUCTION + "Please provide only your final answer within the <answer>...</answer> tags."
)

# --------------------------------------------------------------------------------------------- user prompt


def suffix_for(problem_type: str) -> str:
    """The official instruction suffix for a problem type (any official spelling is accepted)."""
    return MC_SUFFIX if _canonical_type(problem_type) == MULTIPLE_CHOICE else OPEN_ENDED_SUFFIX


def format_options(options: Sequence[str]) -> list[str]:
    """``["A. text", "B. text", …]``: the option lines exactly as the official data spells them.

    Lines are stripped as the official loaders strip them, so an option with stray whitespace renders
    the same way it did in training.
    """
    if len(options) > len(LETTERS):
        raise ValueError(f"{len(options)} options; at most {len(LETTERS)} (A–J) are supported")
    return [f"{LETTERS[i]}. {text}".strip() for i, text in enumerate(options)]


def has_embedded_options(question: str) -> bool:
    """Whether the question text already lists its options, so they must not be appended again.

    This is the official RL loader's rule (an ``Options:`` header, or a line starting ``A.`` / ``A:``),
    extended to ``(A)`` lines, the other common way release-style questions embed choices. It is
    applied in every style: a prompt with the options twice is never what anyone trained on.
    """
    return any(marker in question for marker in ("Options:", "\nA.", "\nA:", "\n(A)"))


def build_prompt(
    question: str,
    options: Sequence[str] = (),
    problem_type: str = MULTIPLE_CHOICE,
    *,
    style: PromptStyle = DEFAULT_PROMPT_STYLE,
) -> str:
    """The user prompt text that follows the video, byte for byte as the official ``style`` writes it.

    ``options`` are option texts in letter order (empty for open-ended). A question that already embeds
    its options (see `has_embedded_options`) is used as is.
    """
    question = _strip_video_placeholder(question)
    lines = [] if has_embedded_options(question) else format_options(options)
    if style == "sft":
        return _sft_prompt(question, lines, problem_type)
    if style == "rl":
        return _rl_prompt(question, lines, problem_type)
    if style == "eval":
        return _eval_prompt(question, lines, problem_type)
    raise ValueError(f"unknown prompt style {style!r}; expected one of {PROMPT_STYLES}")


def _sft_prompt(question: str, lines: list[str], problem_type: str) -> str:
    # LLaMA-Factory data: a blank line before "Options:"; the MC suffix whenever options are listed;
    # the open-ended suffix ends with a newline (kept: it is what the SFT model saw).
    text = question.strip()
    if lines:
        text += "\n\nOptions:\n" + "\n".join(lines)
    if lines or _canonical_type(problem_type) == MULTIPLE_CHOICE:
        return text + "\n" + MC_SUFFIX
    return text + "\n" + OPEN_ENDED_SUFFIX + "\n"


def _rl_prompt(question: str, lines: list[str], problem_type: str) -> str:
    # verl data is "<video>\n" + body, with options only for multiple choice; verl splits the string at
    # "<video>", so the text part the model sees starts with that newline.
    is_mc = _canonical_type(problem_type) == MULTIPLE_CHOICE
    text = question.strip()
    if is_mc and lines:
        text = text + "\nOptions:\n" + "\n".join(lines)
    body = (text + "\n" + (MC_SUFFIX if is_mc else OPEN_ENDED_SUFFIX)).strip()
    return "\n" + body


def _eval_prompt(question: str, lines: list[str], problem_type: str) -> str:
    # lmms-eval: no "Options:" header, the question is not stripped, the suffix follows the problem type.
    suffix = suffix_for(problem_type)
    if lines:
        return f"{question}\n" + "\n".join(lines) + f"\n{suffix}"
    return f"{question}\n{suffix}"


def _strip_video_placeholder(question: str) -> str:
    """Drop a leading ``<video>`` a raw question may carry: the video has its own slot in the messages."""
    stripped = question.lstrip()
    if stripped.lower().startswith(VIDEO_PLACEHOLDER):
        return stripped[len(VIDEO_PLACEHOLDER) :].lstrip()
    return question


def _canonical_type(problem_type: str) -> str:
    return normalize_problem_type(problem_type, has_options=False)


# --------------------------------------------------------------------------------------------- messages

#: A path or URL, a caller-built content part (mapping), or decoded frames; never inspected here.
VideoRef = Any


def video_part(video: VideoRef) -> dict[str, Any]:
    """A chat content part for one video, with the reference kept opaque.

    transformers' processors (``ProcessorMixin.apply_chat_template``) collect a video from a part whose
    ``type`` is ``"video"`` by reading its ``"video"``, ``"url"`` or ``"path"`` key (every one present is
    collected, so give exactly one); the value may be a path, a URL or already decoded frames. The
    Qwen2.5-VL / Qwen3-VL chat templates render such a part as
    ``<|vision_start|><|video_pad|><|vision_end|>``. A path becomes ``{"type": "video", "video": path}``;
    a mapping is taken as the caller's own part (extra keys such as sampling hints pass through); any
    other object (frames, a decoder) is put under ``"video"``.
    """
    if isinstance(video, Mapping):
        return {**video, "type": "video"}
    if isinstance(video, os.PathLike):
        return {"type": "video", "video": os.fspath(video)}
    return {"type": "video", "video": video}


def assistant_target(answer: str, think: str | None = None, *, direct: bool = False) -> str:
    """The assistant turn the model is trained to produce.

    ``<think>{think}</think>\\n<answer>{answer}</answer>`` as the official SFT data, or, with
    ``direct=True``, ``<answer>{answer}</answer>`` for the chain-of-thought-versus-direct ablation.
    Tags the release left around the values are removed first; an empty rationale or answer is an error
    because the official converter drops such rows rather than train on half a target.
    """
    answer = unwrap_tag(str(answer), "answer")
    if not answer:
        raise ValueError("empty answer: nothing to train on")
    if direct:
        return f"<answer>{answer}</answer>"
    think = unwrap_tag(str(think or ""), "think")
    if not think:
        raise ValueError("empty rationale: use direct=True for answer-only targets")
    return f"<think>{think}</think>\n<answer>{answer}</answer>"


def build_messages(
    prompt: str,
    video: VideoRef | None = None,
    *,
    image: Any | None = None,
    system_prompt: str | None = None,
    target: str | None = None,
) -> list[dict[str, Any]]:
    """Chat messages for Qwen2.5-VL / Qwen3-VL: ``[system?] + user[video, text] + [assistant?]``.

    The visual part comes before the text, where the official ``<video>`` placeholder stands. ``image``
    (one frame, for the single-frame probe) takes the video's place; with neither, the turn is text only
    (the text-only probe). Every content is a list of parts so one code path serves all roles. No system
    prompt by default: the chat template then behaves as in the official runs (Qwen2.5-VL inserts its
    default system turn, Qwen3-VL none).
    """
    if video is not None and image is not None:
        raise ValueError("give a video or a single frame, not both")
    user: list[dict[str, Any]] = []
    if video is not None:
        user.append(video_part(video))
    elif image is not None:
        user.append({"type": "image", "image": image})
    user.append(_text_part(prompt))
    messages: list[dict[str, Any]] = []
    if system_prompt is not None:
        messages.append({"role": "system", "content": [_text_part(system_prompt)]})
    messages.append({"role": "user", "content": user})
    if target is not None:
        messages.append({"role": "assistant", "content": [_text_part(target)]})
    return messages


def _text_part(text: str) -> dict[str, str]:
    return {"type": "text", "text": text}
