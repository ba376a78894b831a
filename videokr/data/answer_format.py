r"""The answer format the official prompts ask for, read exactly as the official code reads it.

The prompts (`videokr.data.prompts`) ask for ``<think>…</think><answer>…</answer>``; the release wraps its
ground truths in the same tags. The official code reads that format with two rules, re-implemented here
from their specification because both the GRPO reward (`videokr.training.rewards`) and the evaluation's
official score (`videokr.evaluation.answers`) are defined by them:

* the answer is the *first* ``<answer>…</answer>`` block (exact, lower-case tags), stripped;
* the format is right when the *whole* output matches ``<think>.*?</think>\s*<answer>.*?</answer>``;
* an open-ended answer is compared by the mean of ROUGE-1/2/L F1 with the stemmer on.

Kept in the data layer, beside the prompts that define the format, so training and evaluation share one
reading of it and neither imports the other.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

from rouge_score import rouge_scorer

from videokr.data.records import MULTIPLE_CHOICE, normalize_problem_type

__all__ = [
    "has_valid_format",
    "is_multiple_choice",
    "official_answer",
    "official_answer_blocks",
    "reference_text",
    "rouge_mean",
]

# The official rules are the regexes r"<answer>\s*(.*?)\s*</answer>" (first match, then stripped) and a full
# match of r"<think>.*?</think>\s*<answer>.*?</answer>" (DOTALL). They are implemented below as linear
# scans with the same results: the regexes backtrack quadratically or worse on degenerate generations
# (an unclosed "<answer>" followed by a long run of whitespace takes minutes), which RL produces.
_OPEN, _CLOSE, _THINK = "<answer>", "</answer>", "<think>"
_THINK_THEN_ANSWER = re.compile(r"</think>\s*<answer>")


def official_answer_blocks(text: str) -> list[str]:
    """Every match of the official pattern, in order: from an exact opening tag to the first closing tag
    after it, stripped."""
    text = str(text or "")
    blocks: list[str] = []
    position = 0
    while (start := text.find(_OPEN, position)) >= 0:
        end = text.find(_CLOSE, start + len(_OPEN))
        if end < 0:
            break
        blocks.append(text[start + len(_OPEN) : end].strip())
        position = end + len(_CLOSE)
    return blocks


def official_answer(text: str) -> str | None:
    """The first official ``<answer>`` block, stripped; None without one (``""`` for an empty block)."""
    blocks = official_answer_blocks(text)
    return blocks[0] if blocks else None


def has_valid_format(text: str) -> bool:
    """The paper's format rule: the whole output is ``<think>…</think>`` then ``<answer>…</answer>``.

    Exactly the official full match, on the raw text: leading or trailing whitespace fails it, as it did
    in training.
    """
    text = str(text or "")
    if not (text.startswith(_THINK) and text.endswith(_CLOSE)):
        return False
    # Between the leading <think> and the trailing </answer>, the regex needs "</think>\s*<answer>" once.
    return _THINK_THEN_ANSWER.search(text, len(_THINK), len(text) - len(_CLOSE)) is not None


@functools.cache
def _scorer() -> rouge_scorer.RougeScorer:
    # The stemmer is NLTK's Porter stemmer bundled with rouge_score: it needs no download.
    return rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)


def rouge_mean(reference: str, prediction: str) -> float:
    """Mean of ROUGE-1, ROUGE-2 and ROUGE-L F1 with the stemmer, clamped to [0, 1] as the official reward.

    rouge_score keeps only lower-cased ASCII letters and digits as tokens, so a one-token answer scores
    2/3 even when identical (it has no bigram), and "9.8" is the tokens "9" and "8"; both are the
    official behaviour and are kept.
    """
    scores = _scorer().score(str(reference), str(prediction))
    mean = (scores["rouge1"].fmeasure + scores["rouge2"].fmeasure + scores["rougeL"].fmeasure) / 3.0
    return max(0.0, min(1.0, mean))


def is_multiple_choice(problem_type: str, options: Sequence[str]) -> bool:
    """Whether an item is multiple choice (its type, or options when the type is missing)."""
    return normalize_problem_type(problem_type, has_options=bool(options)) == MULTIPLE_CHOICE


def reference_text(answer: str) -> str:
    """The ground truth without the ``<answer>`` tags the official files wrap it in."""
    answer = str(answer or "")
    inner = official_answer(answer)
    return inner if inner is not None else answer.strip()
