"""Reading a model's answer for evaluation: the robust extraction and the per-item score.

A benchmark number should measure what the model answered, not how it typed it: tags in any case, an
unclosed tag at the end of a truncated output, the *last* answer tag that names a choice (models echo the
instruction's ``<answer>...</answer>`` in their reasoning and correct themselves), then final-answer
statements ("The answer is (C).", "Final answer: B. …", "D is correct"), bold or boxed letters, and an
answer given as the option text. It never reads a letter out of an ordinary word ("a cell", "I think"),
never takes a letter beyond the number of options, and prefers the last final statement to letters the
reasoning mentions on the way.

The official reading of the same format (first exact block, exact comparison), which the GRPO reward
uses, is `videokr.data.answer_format`; ``answer_blocks(strict=True)`` and ``extract_answer(strict=True)``
give it here too.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from videokr.data.answer_format import is_multiple_choice, official_answer_blocks, reference_text, rouge_mean
from videokr.data.records import LETTERS, normalize_mc_answer

__all__ = [
    "Extraction",
    "Method",
    "ScoredPrediction",
    "answer_blocks",
    "extract_answer",
    "extract_choice",
    "extract_open_answer",
    "score_prediction",
]

Method = Literal["answer_tag", "statement", "emphasis", "output", "none", "out_of_range"]

# Tolerant tags for evaluation: any case, spaces inside the brackets.
_ANSWER_TAG = re.compile(r"<\s*(?:(/)\s*)?answer\s*>", re.IGNORECASE)
_THINK_OPEN = re.compile(r"<\s*think\s*>", re.IGNORECASE)
_THINK_CLOSE = re.compile(r"<\s*/\s*think\s*>", re.IGNORECASE)

# --------------------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Extraction:
    """What was read from a model output and how: ``answer`` is a letter (MC) or text (open-ended).

    ``method`` says which evidence decided it (``answer_tag``, ``statement``, ``emphasis``, ``output``),
    or why there is no answer (``none``; ``out_of_range``: the answer names a letter the item lacks).
    """

    answer: str | None
    method: Method


@dataclass(frozen=True)
class ScoredPrediction:
    """One evaluated item: ``correct`` for accuracy, ``score`` in [0, 1] (ROUGE mean for open-ended,
    1/0 for multiple choice), and the extraction behind them for breakdowns and error analysis."""

    correct: bool
    score: float
    extracted: str | None
    method: Method


# --------------------------------------------------------------------------------------------- answer tags


def answer_blocks(text: str, *, strict: bool = False) -> list[str]:
    """The contents of every ``<answer>`` block, in order, stripped.

    ``strict`` uses the official reward's pattern (exact lower-case tags, closed). Otherwise tags match in
    any case with spaces inside the brackets, stray nested tags are dropped from a block, and an opening
    tag left unclosed after the last block (a truncated output) yields the text after it when non-empty.
    """
    text = str(text or "")
    return official_answer_blocks(text) if strict else _tolerant_blocks(text)


def _tolerant_blocks(text: str) -> list[str]:
    """Blocks from one pass over the tags: an opener starts a block (openers inside it are dropped), the
    next closer ends it, closers outside a block are ignored, and an unclosed final block runs to the end."""
    blocks: list[str] = []
    start: int | None = None
    for tag in _ANSWER_TAG.finditer(text):
        if not tag.group(1):
            start = tag.end() if start is None else start
        elif start is not None:
            blocks.append(_ANSWER_TAG.sub("", text[start : tag.start()]).strip())
            start = None
    tail = _ANSWER_TAG.sub("", text[start:]).strip() if start is not None else ""
    return [*blocks, tail] if tail else blocks


def extract_answer(text: str, *, strict: bool = False, last: bool = False) -> str | None:
    """The content of the first (or, with ``last``, the last) ``<answer>`` block; None without one.

    First is the default because the official reward takes the first match (``re.search``); ``strict``
    gives exactly the official reading. An empty block gives ``""`` (a tag was there, with nothing in it).
    """
    blocks = answer_blocks(text, strict=strict)
    if not blocks:
        return None
    return blocks[-1] if last else blocks[0]


# --------------------------------------------------------------------------------------------- choices


def extract_choice(text: str, options: Sequence[str] = (), *, num_options: int | None = None) -> Extraction:
    """The option letter a model chose, read robustly for evaluation.

    Evidence in decreasing order of trust, the first that names a choice deciding: the answer tags (last
    first), final-answer statements or a boxed letter (the last one), a bold letter ending its line or a
    line that is only a letter (the last one), and finally the output after the reasoning when it is
    itself an answer ("B. text", the option text). ``options`` (texts) enable answers given as text and
    bound the letters; without them ``num_options`` (default 10, A–J) does.
    """
    text = str(text or "")
    count = len(options) or num_options or len(LETTERS)
    for span in reversed(answer_blocks(text)):
        letter = _choice_in_span(span, options, count, loose=True)
        if letter:
            return _decide(letter, count, "answer_tag")
    for method, finder in (("statement", _last_statement), ("emphasis", _last_emphasis)):
        letter = finder(text, options, count)
        if letter:
            return _decide(letter, count, method)
    segment = _final_segment(text)
    if segment and "\n" not in segment and len(segment) <= 300:
        letter = _choice_in_span(segment, options, count, loose=False)
        if letter:
            return _decide(letter, count, "output")
    return Extraction(None, "none")


def _decide(letter: str, count: int, method: Method) -> Extraction:
    letter = letter.upper()
    if LETTERS.index(letter) >= count:
        return Extraction(None, "out_of_range")
    return Extraction(letter, method)


# A span that is only a letter: "B", "(b)", "B.", "Option B", "answer: (C)".
_ONLY_LETTER = re.compile(
    r"(?:(?i:option|choice|answer)\s*[:：]?\s*)?[\(\[]?\s*([A-Ja-j])\s*[\)\]]?\s*[.:：]?"
)
# A span that starts with a letter and a delimiter: "(B) text", "B. text", "b) text", "C: text"; a space
# must follow a bare letter's delimiter, so "e.g. …" and "i.e. …" name nothing.
_LEADING_LETTER = re.compile(r"(?:[\(\[]\s*([A-Ja-j])\s*[\)\]]\s*|([A-Ja-j])\s*[.):：]\s+)\S")
# "B text" where the text is option B's.
_LETTER_THEN_TEXT = re.compile(r"([A-J])\s+(.+)", re.DOTALL)
# Capital letters standing alone; A and I before a lower-case word are the article and the pronoun.
_LONE_CAPITAL = re.compile(r"(?<![A-Za-z0-9'’])([A-J])(?![A-Za-z0-9'’])")
_ARTICLE_OR_PRONOUN = re.compile(r"\s+[a-z]")
# An answer block that opens with the letter and goes on to explain: "B The nucleus …", "C because …".
# Not when the next word makes the letter the subject of a claim ("C is wrong; …") or joins a second
# letter ("B or C"): those are decided by the statements, or not at all.
_OPENING_LETTER = re.compile(
    r"([A-J])[ \t]+(?!(?i:is|are|was|were|or|and|nor|vs\.?|versus|not|seems|appears)\b)\S"
)


def _choice_in_span(span: str, options: Sequence[str], count: int, *, loose: bool) -> str | None:
    """A letter from a short answer span, or None. ``loose`` also accepts statements, an option's text
    inside the span, and a single capital letter standing alone (used inside answer tags only)."""
    plain = _unmark(span)
    if not plain:
        return None
    match = _ONLY_LETTER.fullmatch(plain)
    if match:
        return match.group(1)
    index = _option_equal(plain, options)
    if index is not None:
        return LETTERS[index]
    match = _LEADING_LETTER.match(plain)
    if match:
        return match.group(1) or match.group(2)
    match = _LETTER_THEN_TEXT.fullmatch(plain)
    if match and _names_its_option(match.group(1), match.group(2), options, count):
        return match.group(1)
    if not loose:
        return None
    letter = _last_statement(plain, options, count)
    if letter:
        return letter
    match = _OPENING_LETTER.match(plain)
    if match and not (match.group(1) in "AI" and _ARTICLE_OR_PRONOUN.match(plain, match.end(1))):
        return match.group(1)
    if len(plain) > 200:
        return None
    index = _option_mentioned(plain, options)
    if index is not None:
        return LETTERS[index]
    return _lone_capital(plain, count)


def _lone_capital(span: str, count: int) -> str | None:
    found = set()
    for match in _LONE_CAPITAL.finditer(span):
        letter = match.group(1)
        if letter in "AI" and _ARTICLE_OR_PRONOUN.match(span, match.end()):
            continue
        if _option_index(letter, count) is not None:
            found.add(letter)
    return found.pop() if len(found) == 1 else None


def _names_its_option(letter: str, text: str, options: Sequence[str], count: int) -> bool:
    index = _option_index(letter, count)
    return index is not None and index < len(options) and _norm(text) == _norm(options[index])


def _option_index(letter: str, count: int) -> int | None:
    index = LETTERS.find(letter.upper())
    return index if 0 <= index < count else None


# Statements that announce an answer, then the choice right after them:
# "The answer is (C)", "Answer: c", "Final answer: B. text", "the correct option is D", "I choose B".
_MARKER = re.compile(
    r"(?i:\b(?:final|correct|right|best|most\s+(?:likely|appropriate|accurate|plausible|reasonable))"
    r"\s+(?:answer|option|choice)\b[\s*_]*(?:(?:is|would\s+be|should\s+be|must\s+be|will\s+be)\b)?"
    r"|\banswer\b[\s*_]*(?:(?:is|would\s+be|should\s+be|must\s+be|will\s+be)\b|[:：=])"
    r"|\b(?:i\s+(?:would\s+|will\s+|shall\s+)?|i'(?:ll|d)\s+|i(?:'m|\s+am)\s+|let's\s+|we\s+)"
    r"(?:choose|select|pick|go(?:ing)?\s+with|opt(?:ing)?\s+for|answer(?:ing)?|say)\b"
    r"|\bmy\s+(?:final\s+)?(?:answer|choice|pick|selection)\b[\s*_]*(?:is\b|[:：=])"
    r"|\bi(?:'m|\s+am)\s+(?:confident|sure|certain)\s+(?:that\s+)?(?:it|the\s+answer)\s+is\b)"
    r"(?i:\s+(?:therefore|thus|clearly|likely|probably|definitely|indeed|still))?[\s*_:：=]*"
)
# How far after a marker the choice is looked for: bounded, so a long run of markers stays linear.
_HEAD_WINDOW = 400
# "option" / "choice" before the letter, after a marker.
_CHOICE_WORD = re.compile(r"(?i:option|choice|letter)\s*[:：]?\s*")
# The letter at the head of what follows a marker. Capitals stand alone; lower case only before
# punctuation or the end, so "the answer is a cell" names nothing.
_HEAD_LETTER = re.compile(
    r"[\(\[]\s*([A-Ja-j])\s*[\)\]]|([A-J])(?![A-Za-z0-9'’])|([a-j])(?=[ \t]*(?:$|[.,;:!?)\]*]))", re.M
)
# Statements with the letter first: "Option B is correct", "(C) is the best answer", "So D is correct".
_LETTER_FIRST = re.compile(
    r"(?:(?:^|[\n.!?:;,])[ \t]*|\b(?i:option|choice|so|thus|therefore|hence|clearly)\s+"
    r"|\b(?i:i\s+(?:believe|think|am\s+(?:confident|sure|certain)))\s+(?i:that\s+)?)(?:\*\*)?"
    r"(?:[\(\[]\s*([A-Ja-j])\s*[\)\]]|([A-J]))(?![A-Za-z0-9'’])[\s*_]*"
    r"(?i:is|seems|appears)\s+(?i:to\s+be\s+)?(?i:the\s+)?(?i:most\s+)?(?i:correct|right|best|answer)\b",
    re.M,
)


def _last_statement(text: str, options: Sequence[str], count: int) -> str | None:
    """The choice named by the last final-answer statement in the text."""
    found: list[tuple[int, str]] = []
    for match in _MARKER.finditer(text):
        letter = _head_choice(text, match.end(), options)
        if letter:
            found.append((match.start(), letter))
    for match in _LETTER_FIRST.finditer(text):
        found.append((match.start(), match.group(1) or match.group(2)))
    # A boxed letter is the LaTeX way of stating the final answer.
    found.extend((match.start(), match.group(1)) for match in _BOXED_LETTER.finditer(text))
    return max(found)[1] if found else None


def _head_choice(text: str, start: int, options: Sequence[str]) -> str | None:
    """The choice at ``text[start:]``: an option's text first (so "A cell membrane" stays a text), then a
    letter in one of the forms `_HEAD_LETTER` accepts; the pronoun "I" before a word is not a letter."""
    line = text[start : start + _HEAD_WINDOW].split("\n", 1)[0]
    word = _CHOICE_WORD.match(line)
    if word:
        line = line[word.end() :]
    index = _option_prefix(line, options)
    if index is not None:
        return LETTERS[index]
    match = _HEAD_LETTER.match(line)
    if not match:
        return None
    letter = match.group(1) or match.group(2) or match.group(3)
    if match.group(2) == "I" and _ARTICLE_OR_PRONOUN.match(line, match.end()):
        return None
    return letter


# Emphasis: a bold letter ending its line, or a line that is only a letter; and LaTeX's boxed letter.
# No two runs of the same whitespace class meet in these patterns: that would make them quadratic.
_BOLD_LETTER = re.compile(
    r"\*\*[ \t]*(?:[\(\[][ \t]*)?([A-Ja-j])(?:[ \t]*[\)\]])?[.:]?[ \t]*\*\*[ \t]*(?:[.!][ \t]*)?$", re.M
)
_BOXED_LETTER = re.compile(
    r"\\boxed\{\s*(?:\\text(?:bf)?\{\s*)?(?:[\(\[]\s*)?([A-Ja-j])(?:\s*[\)\]])?\s*(?:\}\s*)?\}"
)
_LETTER_LINE = re.compile(r"^[ \t>#*_-]*(?:[\(\[][ \t]*)?([A-Ja-j])(?:[ \t]*[\)\]])?[.:]?[ \t*_]*$", re.M)


def _last_emphasis(text: str, options: Sequence[str], count: int) -> str | None:
    del options, count  # emphasis names letters only; the range is checked by the caller
    found = [(m.start(), m.group(1)) for p in (_BOLD_LETTER, _LETTER_LINE) for m in p.finditer(text)]
    return max(found)[1] if found else None


def _final_segment(text: str) -> str:
    """The output after the reasoning: the text after the last ``</think>``; the whole output when there
    is no ``<think>``; nothing when the output was cut off inside its reasoning."""
    parts = _THINK_CLOSE.split(text)
    if len(parts) == 1 and _THINK_OPEN.search(text):
        return ""
    return parts[-1].strip()


# --------------------------------------------------------------------------------------------- option text

_MARKUP = re.compile(r"[*_`\"“”‘’]|\\text(?:bf)?\{|\\boxed\{|[{}$]")


def _unmark(text: str) -> str:
    """Remove markdown, LaTeX boxes and quotes around an answer."""
    return re.sub(r"\s+", " ", _MARKUP.sub("", text)).strip()


def _norm(text: str) -> str:
    """An answer or option text for comparison: lower case, no markup, single spaces, no end punctuation,
    no leading "the" ("a" is kept: "A nucleus" may be letter A)."""
    return re.sub(r"^the\s+", "", _unmark(text).lower()).strip(" .,;:!?")


def _option_equal(text: str, options: Sequence[str]) -> int | None:
    target = _norm(text)
    hits = [i for i, option in enumerate(options) if _norm(option) == target]
    return hits[0] if len(hits) == 1 else None


def _option_prefix(text: str, options: Sequence[str]) -> int | None:
    """The option whose text begins ``text`` (the longest, so "5 m" beats "5"), ending at a word boundary."""
    target = _norm(text)
    hits = [
        (len(norm), i)
        for i, norm in enumerate(_norm(option) for option in options)
        if norm and target.startswith(norm) and not target[len(norm) : len(norm) + 1].isalnum()
    ]
    return max(hits)[1] if hits else None


def _option_mentioned(text: str, options: Sequence[str]) -> int | None:
    """The one option whose text appears in ``text`` as whole words (options inside another hit ignored)."""
    target = _norm(text)
    texts = {i: _norm(option) for i, option in enumerate(options)}
    hits = [
        i
        for i, norm in texts.items()
        if norm and re.search(rf"(?<![a-z0-9]){re.escape(norm)}(?![a-z0-9])", target)
    ]
    hits = [i for i in hits if not any(j != i and texts[i] in texts[j] for j in hits)]
    return hits[0] if len(hits) == 1 else None


# --------------------------------------------------------------------------------------------- open-ended


def extract_open_answer(text: str) -> Extraction:
    """The free-text answer for evaluation: the last non-empty answer tag, else, when there are no answer
    tags, the output after the reasoning (see `_final_segment`), else nothing; empty tags answer nothing.
    Reasoning is never scored as the answer: it would dilute ROUGE and is not what the model answered."""
    blocks = answer_blocks(text)
    for span in reversed(blocks):
        if span:
            return Extraction(span, "answer_tag")
    segment = "" if blocks else _final_segment(str(text or ""))
    return Extraction(segment, "output") if segment else Extraction(None, "none")


_NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?|[-+]?\.\d+")
_QUANTITY = re.compile(r"\s*(?:(?:about|approximately|approx\.?|~|≈|\$)\s*)?(?=[-+.\d])")


def _leading_number(text: str) -> float | None:
    """The number a quantity answer starts with ("9.8 m/s^2", "≈ 1,500", "-3"), else None."""
    prefix = _QUANTITY.match(text)
    match = _NUMBER.match(text, prefix.end()) if prefix else None
    return float(match.group().replace(",", "")) if match else None


def _first_number(text: str) -> float | None:
    match = _NUMBER.search(text)
    return float(match.group().replace(",", "")) if match else None


def _open_ended_correct(reference: str, prediction: str) -> bool:
    """A rule-based stand-in for the official judge: same text, or, for a quantity answer, the same
    number within 1 % (units are not compared). The judge remains the official open-ended metric."""
    if _norm(reference) == _norm(prediction):
        return True
    expected = _leading_number(reference)
    got = _first_number(prediction)
    return (
        expected is not None and got is not None and math.isclose(expected, got, rel_tol=1e-2, abs_tol=1e-9)
    )


# --------------------------------------------------------------------------------------------- scoring


def score_prediction(
    prediction: str, answer: str, problem_type: str, options: Sequence[str] | None = ()
) -> ScoredPrediction:
    """Score one model output against one item for evaluation (robust extraction; no judge)."""
    options = list(options or [])
    if is_multiple_choice(problem_type, options):
        got = extract_choice(prediction, options)
        correct = got.answer is not None and got.answer == _reference_letter(answer, options)
        return ScoredPrediction(correct, float(correct), got.answer, got.method)
    reference = reference_text(answer)
    got = extract_open_answer(prediction)
    if got.answer is None:
        return ScoredPrediction(False, 0.0, None, got.method)
    correct = _open_ended_correct(reference, got.answer)
    return ScoredPrediction(correct, rouge_mean(reference, got.answer), got.answer, got.method)


def _reference_letter(answer: str, options: Sequence[str]) -> str:
    """The ground-truth letter; a reference that is not a valid choice is a data error and raises."""
    text = reference_text(answer)
    if options:
        return normalize_mc_answer(text, list(options))
    match = _ONLY_LETTER.fullmatch(text)
    if not match:
        raise ValueError(f"multiple-choice answer {answer!r} is not a letter")
    return match.group(1).upper()
