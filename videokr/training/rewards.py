"""The paper's GRPO reward, with its TRL adapters: 0.9 × accuracy + 0.1 × format.

The reward reproduces the official VideoKR rule (`videokr.data.answer_format`): the *first*
``<answer>…</answer>`` (exact, case-sensitive tags), compared *exactly* with the ground truth for multiple
choice and by the mean of ROUGE-1/2/L F1 (stemmer on) for open-ended; plus a format term, a full match of
``<think>.*?</think>\\s*<answer>.*?</answer>``. Strict because it is what the paper trained with and because
any leniency here is a learning signal: crediting ``The answer is B`` without tags, or
``<Answer>b</Answer>``, would pay 0.9 for not following the output contract the prompt asks for.

The TRL reward functions follow GRPOTrainer's calling convention: keyword arguments ``prompts``,
``completions`` (strings, or lists of chat messages for conversational data), ``completion_ids``, every
other dataset column as a list (here ``answer``, ``problem_type``, ``options``), plus trainer extras
(``trainer_state``, ``log_extra``, ``log_metric``) that are ignored; they return one float per completion
and are logged under their ``__name__``. A recipe names them (``reward_funcs: [accuracy, format]``);
`REWARD_FUNCS` maps the names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from videokr.data.answer_format import (
    has_valid_format,
    is_multiple_choice,
    official_answer,
    reference_text,
    rouge_mean,
)

__all__ = [
    "ACCURACY_WEIGHT",
    "FORMAT_WEIGHT",
    "PAPER_REWARD_FUNCS",
    "REWARD_FUNCS",
    "REWARD_WEIGHTS",
    "accuracy_reward",
    "accuracy_score",
    "completion_text",
    "format_reward",
    "format_score",
    "reward_functions",
    "reward_score",
    "videokr_reward",
]

ACCURACY_WEIGHT = 0.9
FORMAT_WEIGHT = 0.1
#: Weights for ``[accuracy_reward, format_reward]``, e.g. ``GRPOConfig(reward_weights=list(REWARD_WEIGHTS))``.
REWARD_WEIGHTS = (ACCURACY_WEIGHT, FORMAT_WEIGHT)


def format_score(completion: str) -> float:
    """1.0 when the completion has the paper's ``<think>…</think><answer>…</answer>`` form, else 0.0."""
    return 1.0 if has_valid_format(completion) else 0.0


def accuracy_score(
    completion: str,
    answer: str,
    problem_type: str,
    options: Sequence[str] | None = (),
) -> float:
    """The accuracy term of the reward, in [0, 1]: the first exact ``<answer>`` block compared exactly
    for multiple choice, its ROUGE mean for open-ended, nothing without the block."""
    options = list(options or [])
    got = official_answer(completion) or ""
    reference = reference_text(answer)
    if is_multiple_choice(problem_type, options):
        return 1.0 if got == reference else 0.0
    return rouge_mean(reference, got)


def reward_score(
    completion: str,
    answer: str,
    problem_type: str,
    options: Sequence[str] | None = (),
) -> float:
    """The paper's reward for one completion: 0.9 × accuracy + 0.1 × format."""
    accuracy = accuracy_score(completion, answer, problem_type, options)
    return ACCURACY_WEIGHT * accuracy + FORMAT_WEIGHT * format_score(completion)


def completion_text(completion: str | Sequence[Mapping[str, Any]] | Mapping[str, Any]) -> str:
    """The generated text of one completion as GRPOTrainer passes it: a string, or chat messages.

    For messages, the last assistant message is used; its content may be a string or a list of text
    parts. When a response parser has moved the rationale into ``reasoning_content`` (TRL does this only
    for tokenizers with a response template, e.g. in tool-calling runs), the ``<think>`` block is put back
    so the format term still sees it.
    """
    if isinstance(completion, str):
        return completion
    messages = [completion] if isinstance(completion, Mapping) else list(completion)
    replies = [m for m in messages if m.get("role", "assistant") == "assistant"]
    if not replies:
        return ""
    message = replies[-1]
    content = _content_text(message.get("content"))
    reasoning = message.get("reasoning_content") or message.get("thinking")
    if reasoning and "<think>" not in content:
        content = f"<think>{reasoning}</think>\n{content}"
    return content


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(str(part.get("text", "")) for part in content if isinstance(part, Mapping))


def accuracy_reward(
    completions: Sequence[Any],
    answer: Sequence[str],
    problem_type: Sequence[str],
    options: Sequence[Sequence[str] | None] | None = None,
    **kwargs: Any,
) -> list[float]:
    """TRL reward function: the accuracy term per completion (see `accuracy_score`)."""
    rows = _rows(completions, answer, problem_type, options)
    return [accuracy_score(text, ans, kind, opts) for text, ans, kind, opts in rows]


def format_reward(completions: Sequence[Any], **kwargs: Any) -> list[float]:
    """TRL reward function: the format term per completion (see `has_valid_format`)."""
    return [format_score(completion_text(completion)) for completion in completions]


def videokr_reward(
    completions: Sequence[Any],
    answer: Sequence[str],
    problem_type: Sequence[str],
    options: Sequence[Sequence[str] | None] | None = None,
    **kwargs: Any,
) -> list[float]:
    """TRL reward function: the combined paper reward, 0.9 × accuracy + 0.1 × format, in one number.

    Use it alone (no ``reward_weights``) when a single logged reward is wanted; use `accuracy_reward` and
    `format_reward` with `REWARD_WEIGHTS` to see both terms in the logs. Both give the same total.
    """
    rows = _rows(completions, answer, problem_type, options)
    return [reward_score(text, ans, kind, opts) for text, ans, kind, opts in rows]


#: Reward functions by the name a recipe gives them (``reward_funcs: [accuracy, format]``).
REWARD_FUNCS: dict[str, Callable[..., list[float]]] = {
    "accuracy": accuracy_reward,
    "format": format_reward,
    "videokr": videokr_reward,
}

#: The paper's choice: both terms logged apart, weighted by `REWARD_WEIGHTS`.
PAPER_REWARD_FUNCS: tuple[str, ...] = ("accuracy", "format")


def reward_functions(names: Sequence[str] = PAPER_REWARD_FUNCS) -> list[Callable[..., list[float]]]:
    """The reward functions `names` stand for, for ``GRPOTrainer(reward_funcs=…)``; an unknown name is
    an error that lists the known ones. The default, ``[accuracy, format]``, pairs with `REWARD_WEIGHTS`."""
    unknown = [name for name in names if name not in REWARD_FUNCS]
    if unknown:
        raise ValueError(f"unknown reward function(s) {unknown}; choose from {sorted(REWARD_FUNCS)}")
    return [REWARD_FUNCS[name] for name in names]


def _rows(
    completions: Sequence[Any],
    answer: Sequence[str],
    problem_type: Sequence[str],
    options: Sequence[Sequence[str] | None] | None,
) -> list[tuple[str, str, str, Sequence[str]]]:
    """Line the batch columns up per completion; a length mismatch is a wiring bug and raises."""
    texts = [completion_text(completion) for completion in completions]
    option_lists = [opts or [] for opts in options] if options is not None else [[] for _ in texts]
    return list(zip(texts, answer, problem_type, option_lists, strict=True))
