"""The official VideoKR-Eval scorer, re-implemented from its specification: the number the paper reports.

The official evaluation (an lmms-eval task) reads a model's output in two steps, and scores in one of two
modes. Re-implemented here rule by rule, so that a VideoKR-Eval number from this project can be put beside
the paper's table (`acc_official`); our robust reading (`videokr.evaluation.answers`) stays the `acc`
column, and the differences between the two are listed in the README.

1. **What is scored** (`official_prediction`): the content of the *first* ``<answer>…</answer>`` (tags in
   any case, across lines), stripped, when it is not empty; otherwise the whole output, stripped.
2. **Rule mode** (no judge):

   * multiple choice: a letter is read from (1) with three patterns, the first that matches wins
     (`official_letter`): a letter at the very start followed by ``)``, ``]``, ``.``, ``:`` or a space,
     optionally after ``(`` / ``[``; else a letter after ``answer``, ``option`` or ``choice`` (optionally
     ``is`` or ``:``); else the first standalone letter of ``A``–``J`` anywhere, *in either case*. So
     ``I think B`` reads as ``I`` and ``a cell`` as ``A``: that is the official behaviour, kept. The
     ground truth goes through the same reading; correct when both letters exist and are equal.
   * open-ended: **skipped** — not scored and not counted, so the rule-mode overall accuracy is the
     accuracy over the multiple-choice items only.

3. **Judge mode** (a judge configured): *every* item, multiple choice included, is judged with the paper's
   judge prompt for its type, the prediction being (1), at temperature 1 with at most 256 tokens; the
   verdict is correct when the reply, stripped and lower-cased, *contains* ``1`` anywhere (so ``10`` or
   ``score: 1`` count); a failed call counts as wrong.

Everything is linear in the output length: model outputs under evaluation can be tens of thousands of
characters of degenerate text.
"""

from __future__ import annotations

import re

__all__ = [
    "OFFICIAL_CHOICES",
    "OFFICIAL_JUDGE_MAX_TOKENS",
    "OFFICIAL_JUDGE_TEMPERATURE",
    "official_judge_verdict",
    "official_letter",
    "official_mc_correct",
    "official_prediction",
]

#: The letters the official scorer accepts for multiple choice.
OFFICIAL_CHOICES = "ABCDEFGHIJ"
#: The official judge's sampling settings.
OFFICIAL_JUDGE_TEMPERATURE = 1.0
OFFICIAL_JUDGE_MAX_TOKENS = 256

_OPEN, _CLOSE = "<answer>", "</answer>"
_CLASS = re.escape(OFFICIAL_CHOICES)
_AT_START = re.compile(rf"^\s*[\(\[]?([{_CLASS}])[\)\]\.:\s]", re.IGNORECASE)
_AFTER_WORD = re.compile(
    rf"\b(?:answer|option|choice)\s*(?:is|:)?\s*[\(\[]?([{_CLASS}])[\)\]]?\b", re.IGNORECASE
)
_ANYWHERE = re.compile(rf"\b([{_CLASS}])\b", re.IGNORECASE)


def official_prediction(output: str) -> str:
    """What the official scorer scores and shows the judge: the first ``<answer>`` block's content
    (case-insensitive tags), stripped, if not empty; else the whole output, stripped.

    The official pattern is a non-greedy search from the first opening tag to the first closing tag after
    it; as a linear scan: if the first opening tag has no closing tag after it, no later one has either.
    """
    output = str(output or "").strip()
    lowered = output.lower()  # ASCII tags: lower-casing keeps every index of the original
    start = lowered.find(_OPEN)
    if start >= 0:
        end = lowered.find(_CLOSE, start + len(_OPEN))
        if end >= 0:
            content = output[start + len(_OPEN) : end].strip()
            if content:
                return content
    return output


def official_letter(text: str) -> str:
    """The official scorer's letter for `text` (``""`` when none): see the module docstring, rule mode."""
    text = official_prediction(text)
    if not text:
        return ""
    for pattern in (_AT_START, _AFTER_WORD, _ANYWHERE):
        match = pattern.search(text)
        if match:
            return match.group(1).upper()
    return ""


def official_mc_correct(output: str, answer: str) -> bool:
    """Rule-mode correctness of one multiple-choice output against its ground truth (a letter, possibly
    in ``<answer>`` tags)."""
    predicted = official_letter(output)
    expected = official_letter(answer)
    if not expected and len(str(answer).strip()) == 1 and str(answer).strip().upper() in OFFICIAL_CHOICES:
        expected = str(answer).strip().upper()
    return bool(predicted and expected and predicted == expected)


def official_judge_verdict(reply: str | None) -> bool:
    """The official reading of a judge's reply: correct when it contains ``1``; a failed call (None) is
    wrong."""
    return reply is not None and "1" in str(reply).strip().lower()
