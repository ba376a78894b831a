"""Laying out a multiple-choice question as the release files spell it.

The release writes options as ``"A. text"`` strings (training files, most evaluation rows) or as a
letter → text mapping (some evaluation sources), with the answer as a bare letter (evaluation) or wrapped
in ``<answer>…</answer>`` (training). Which distractors make the cut and where the answer lands are
drawn from the clip's generator, so the same seed always gives the same letters.
"""

from __future__ import annotations

import numpy as np

from videokr.data.records import LETTERS
from videokr.sample.scene import Question


def choose_options(question: Question, rng: np.random.Generator, wanted: int) -> tuple[list[str], str]:
    """``wanted`` option texts (fewer when the question has fewer distractors) and the answer's letter.

    The most plausible distractors are kept, then everything is shuffled so answers spread over letters.
    """
    if not question.is_multiple_choice:
        raise ValueError("an open-ended question has no options")
    if not 2 <= wanted <= len(LETTERS):
        raise ValueError(f"between 2 and {len(LETTERS)} options, got {wanted}")
    chosen = [question.answer, *question.distractors[: wanted - 1]]
    options = [chosen[i] for i in rng.permutation(len(chosen))]
    return options, LETTERS[options.index(question.answer)]


def lettered(options: list[str]) -> list[str]:
    """``["A. text", "B. text", …]``, the list form both training loaders read."""
    return [f"{LETTERS[i]}. {text}" for i, text in enumerate(options)]


def letter_map(options: list[str]) -> dict[str, str]:
    """``{"A": text, …}``, the mapping form some evaluation rows use."""
    return {LETTERS[i]: text for i, text in enumerate(options)}
