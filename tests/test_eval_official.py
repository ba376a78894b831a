"""Differential test: the official scorer (`acc_official`) against ours (`acc`), class by class.

Each class is a way models write their answers, generated in many variants (random gold letter, option
count, option texts, reasoning length and case). For every output both verdicts are asserted as the
official rules' specification gives them (`videokr.evaluation.official`'s docstring) and as our reading
intends, so a change to either scorer that moves a verdict fails here with the class named.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from videokr.data.records import LETTERS
from videokr.evaluation.answers import score_prediction
from videokr.evaluation.official import official_letter, official_mc_correct, official_prediction

VARIANTS = 60
# Reasoning words with no standalone letter A–J in either case (the official fallback reads the first).
WORDS = (
    "the",
    "video",
    "shows",
    "frame",
    "motion",
    "cell",
    "membrane",
    "energy",
    "rises",
    "slowly",
    "while",
    "pressure",
    "drops",
    "because",
    "temperature",
    "changes",
    "over",
    "time",
    "near",
    "surface",
    "so",
    "one",
    "can",
    "see",
    "clearly",
    "that",
    "it",
    "moves",
)


@dataclass(frozen=True)
class Item:
    options: list[str]
    gold: str  # letter

    def other(self, rng: random.Random) -> str:
        return rng.choice([x for x in LETTERS[: len(self.options)] if x != self.gold])


def make_item(rng: random.Random) -> Item:
    count = rng.randint(4, 6)
    nouns = ["mitochondria", "nucleus", "ribosome", "golgi body", "lysosome", "vacuole", "cytoplasm"]
    options = [f"{noun.capitalize()} region" for noun in rng.sample(nouns, count)]
    return Item(options, LETTERS[rng.randrange(count)])


def reasoning(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 60))).capitalize() + "."


def think(rng: random.Random) -> str:
    return f"<think>{reasoning(rng)}</think>\n"


#: class → (output builder, official verdict, our verdict)
Builder = Callable[[random.Random, Item], str]
CLASSES: dict[str, tuple[Builder, bool, bool]] = {
    # Agreement: the format the prompt asks for.
    "clean_tags": (lambda r, i: f"{think(r)}<answer>{i.gold}</answer>", True, True),
    "tags_any_case": (lambda r, i: f"{think(r)}<ANSWER> {i.gold.lower()} </Answer>", True, True),
    "letter_then_explanation": (
        lambda r, i: f"{think(r)}<answer>{i.gold}. {reasoning(r)} {reasoning(r)}</answer>",
        True,
        True,
    ),
    "statement_without_tags": (lambda r, i: f"{reasoning(r)} The answer is ({i.gold}).", True, True),
    # Deliberate differences: ours reads what the model answered.
    "corrected_in_a_later_block": (
        lambda r, i: f"<answer>{i.other(r)}</answer> {reasoning(r)} Wait. <answer>{i.gold}</answer>",
        False,
        True,
    ),
    "option_text_in_tags": (
        lambda r, i: f"{think(r)}<answer>{i.options[LETTERS.index(i.gold)]}</answer>",
        False,
        True,
    ),
    "first_person_without_tags": (lambda r, i: f"I choose {i.gold}. {reasoning(r)}", False, True),
    "article_then_final_statement": (
        lambda r, i: f"A {reasoning(r).lower()} Final answer: {i.gold}",
        False,  # the official reading takes the article "A"
        True,
    ),
    # Cut off after the opening tag: the official reading falls back to the whole output and takes the
    # first letter the reasoning names.
    "truncated_unclosed_tag": (
        lambda r, i: f"<think>{reasoning(r)} Option {i.other(r)} seems unlikely.</think>\n<answer>{i.gold}",
        False,
        True,
    ),
    # Deliberate difference the other way: a hedge names two letters; the official reading takes the
    # first, ours takes neither.
    "hedge_two_letters": (lambda r, i: f"{think(r)}<answer>{i.gold} or {i.other(r)}</answer>", True, False),
    # Agreement on wrong answers.
    "wrong_letter": (lambda r, i: f"{think(r)}<answer>{i.other(r)}</answer>", False, False),
    "no_answer": (lambda r, i: reasoning(r), False, False),
}


@pytest.mark.parametrize("name", list(CLASSES))
def test_each_difference_class_gets_its_official_and_robust_verdicts(name: str) -> None:
    build, official, ours = CLASSES[name]
    rng = random.Random(name)
    for _ in range(VARIANTS):
        item = make_item(rng)
        output = build(rng, item)
        if name == "article_then_final_statement" and item.gold == "A":
            continue  # the article happens to name the gold letter: official right by accident
        got_official = official_mc_correct(output, f"<answer>{item.gold}</answer>")
        got_ours = score_prediction(output, item.gold, "multiple choice", item.options).correct
        assert (got_official, got_ours) == (official, ours), f"{name}: {output!r} (gold {item.gold})"


def test_the_official_reading_on_its_own_edge_cases() -> None:
    # First block, tags in any case, stripped; an empty block falls back to the whole output.
    assert official_prediction("x <Answer> B </ANSWER> <answer>C</answer>") == "B"
    assert official_prediction("  <answer> </answer> so D  ") == "<answer> </answer> so D"
    assert official_prediction("<answer>B") == "<answer>B"
    # Letter patterns in order: at the start, after answer/option/choice, then anywhere in either case.
    assert official_letter("C) because") == "C"
    assert official_letter("the option is (d)") == "D"
    assert official_letter("so i think") == "I"
    assert official_letter("Z only") == ""
    # A ground truth in tags or bare, any case.
    assert official_mc_correct("<answer>b</answer>", "<answer>B</answer>")
    assert official_mc_correct("B", "b")
    assert not official_mc_correct("", "B")
