"""Answers are read the way the paper's reward reads them in training and robustly in evaluation.

The extraction corpus below is written in the ways real models state (or fail to state) an answer; the
reward cases pin the four corners of 0.9 × accuracy + 0.1 × format; the ROUGE values are computed by hand.
"""

from __future__ import annotations

import random
import re
import time
from pathlib import Path
from typing import Any

import pytest
from trl.trainer.utils import get_callable_name

from videokr.data.answer_format import has_valid_format, rouge_mean
from videokr.evaluation.answers import (
    Extraction,
    ScoredPrediction,
    extract_answer,
    extract_choice,
    extract_open_answer,
    score_prediction,
)
from videokr.evaluation.judge import judge_input, parse_judge_verdict
from videokr.training.rewards import (
    REWARD_WEIGHTS,
    accuracy_reward,
    accuracy_score,
    completion_text,
    format_reward,
    reward_functions,
    reward_score,
    videokr_reward,
)

OPTIONS = ["Mitochondria", "Nucleus", "Ribosome", "Golgi apparatus"]
LONG_THINK = (
    "<think>Option A is the powerhouse of the cell, but the video zooms in on a membrane-bound "
    "organelle with pores. Option B fits; C and D do not.</think>"
)

# (model output, expected letter, expected method); options are OPTIONS (four, A–D).
CHOICE_CASES = [
    # Answer tags, as instructed.
    (f"{LONG_THINK}\n<answer>B</answer>", "B", "answer_tag"),
    ("<think>pores</think>\n<answer> b </answer>", "B", "answer_tag"),
    ("<answer>\n  (B)\n</answer>", "B", "answer_tag"),
    ("<ANSWER>B</ANSWER>", "B", "answer_tag"),
    ("<answer>Option C</answer>", "C", "answer_tag"),
    ("<answer>C. Ribosome</answer>", "C", "answer_tag"),
    ("<answer>C Ribosome</answer>", "C", "answer_tag"),
    ("<answer>The correct answer is D.</answer>", "D", "answer_tag"),
    ("<answer>I think B</answer>", "B", "answer_tag"),
    ("<answer>**B**</answer>", "B", "answer_tag"),
    ("<answer>\\boxed{B}</answer>", "B", "answer_tag"),
    ("<answer>nucleus</answer>", "B", "answer_tag"),  # the option text instead of the letter
    ("<answer>It is the golgi apparatus.</answer>", "D", "answer_tag"),
    # Several tags: the last one that names a choice wins (self-correction, echoed instructions).
    ("<answer>A</answer> Wait, the pores point to the nucleus. <answer>B</answer>", "B", "answer_tag"),
    (
        "<think>I must put one letter in <answer>...</answer> tags.</think>\n<answer>C</answer>",
        "C",
        "answer_tag",
    ),
    ("<think>The answer is A.</think>\n<answer>D</answer>", "D", "answer_tag"),
    # Truncated: the closing tag never came.
    ("<think>pores</think>\n<answer>B", "B", "answer_tag"),
    # Plain statements.
    ("The answer is (C).", "C", "statement"),
    ("Answer: c", "C", "statement"),
    ("Final answer: B. Nucleus", "B", "statement"),
    ("After checking each organelle, the correct option is D", "D", "statement"),
    ("**Answer:** (D) Golgi apparatus", "D", "statement"),
    ("The answer is A because the organelle is large.", "A", "statement"),
    ("So B is the correct answer.", "B", "statement"),
    ("After review, option (b) is correct.", "B", "statement"),
    ("I choose B.", "B", "statement"),
    ("The answer is nucleus.", "B", "statement"),
    ("Answer: The Golgi apparatus", "D", "statement"),
    ("Therefore the final answer is $\\boxed{C}$.", "C", "statement"),
    # Reasoning that names other letters, then the final statement.
    (
        "Option A is wrong because there are no cristae. Option B shows pores, but so could D. "
        "Looking again at C, it is too small. Therefore, the answer is B.",
        "B",
        "statement",
    ),
    ("At first I thought the answer is A. After the zoom, the answer is D.", "D", "statement"),
    # Emphasis and bare outputs.
    ("The organelle with pores is shown at 0:42.\n\n**B**", "B", "emphasis"),
    ("Reasoning done.\nB", "B", "emphasis"),
    ("B. Nucleus", "B", "output"),
    ("Nucleus", "B", "output"),
    ("<think>pores and a nucleolus</think>\nnucleus", "B", "output"),
    # No answer at all: None, and never a letter out of an ordinary word.
    ("", None, "none"),
    ("I think a cell divides here, and I see a membrane.", None, "none"),
    ("<think>Looking at A, B and D, the membrane is", None, "none"),  # cut off mid-reasoning
    ("The answer could be A or B.", None, "none"),
    ("Vitamin A is the answer to a different question.", None, "none"),
    ("The answer is not A.", None, "none"),
    ("<answer></answer>", None, "none"),
    ("<answer>A cell</answer>", None, "none"),
    # Letters beyond the four options are not answers.
    ("<answer>E</answer>", None, "out_of_range"),
    ("The answer is (F).", None, "out_of_range"),
    ("<answer>B and E</answer>", "B", "answer_tag"),
]


@pytest.mark.parametrize(("output", "letter", "method"), CHOICE_CASES)
def test_choice_extraction_corpus(output: str, letter: str | None, method: str) -> None:
    assert extract_choice(output, OPTIONS) == Extraction(letter, method)  # type: ignore[arg-type]


def test_corpus_is_large_enough_to_mean_something() -> None:
    assert len(CHOICE_CASES) >= 30


def test_pronoun_i_is_not_choice_i_even_with_ten_options() -> None:
    assert extract_choice("The answer is I think unclear", num_options=10) == Extraction(None, "none")
    assert extract_choice("The answer is I.", num_options=10) == Extraction("I", "statement")
    assert extract_choice("<answer>J</answer>", num_options=10) == Extraction("J", "answer_tag")


def test_option_texts_that_start_like_letters_stay_texts() -> None:
    options = ["A nucleus", "A cell membrane", "A ribosome"]
    assert extract_choice("Answer: A cell membrane", options) == Extraction("B", "statement")
    assert extract_choice("<answer>a ribosome</answer>", options) == Extraction("C", "answer_tag")


# --------------------------------------------------------------------------------------------- answer tags


@pytest.mark.parametrize(
    ("output", "strict", "last", "expected"),
    [
        ("<think>x</think>\n<answer>B</answer>", True, False, "B"),
        ("<answer>\n  B  \n</answer>", True, False, "B"),
        ("<answer>A</answer><answer>B</answer>", True, False, "A"),  # the official reward takes the first
        ("<answer>A</answer><answer>B</answer>", False, True, "B"),
        ("<Answer>B</Answer>", True, False, None),  # official tags are exact
        ("<Answer>B</Answer>", False, False, "B"),
        ("< answer >B</ answer >", False, False, "B"),
        ("<answer>B", True, False, None),  # unclosed: no answer for the reward
        ("<answer>B", False, False, "B"),
        ("<answer><answer>B</answer></answer>", False, False, "B"),
        ("<answer></answer>", True, False, ""),
        ("no tags at all", False, False, None),
    ],
)
def test_extract_answer(output: str, strict: bool, last: bool, expected: str | None) -> None:
    assert extract_answer(output, strict=strict, last=last) == expected


@pytest.mark.parametrize(
    ("output", "valid"),
    [
        ("<think>a</think>\n<answer>B</answer>", True),
        ("<think>multi\nline</think><answer>B</answer>", True),
        ("<think>a</think>  \n\n <answer>B</answer>", True),
        ("<answer>B</answer>", False),
        ("<think>a</think>\n<answer>B", False),
        ("Sure! <think>a</think><answer>B</answer>", False),
        ("<think>a</think><answer>B</answer>\n", False),  # full match, as the paper: nothing after
        ("<think>a</think><answer>B</answer> done", False),
        ("<THINK>a</THINK><ANSWER>B</ANSWER>", False),
        ("", False),
    ],
)
def test_format_is_a_full_match(output: str, valid: bool) -> None:
    assert has_valid_format(output) is valid


# --------------------------------------------------------------------------------------------- ROUGE


@pytest.mark.parametrize(
    ("reference", "prediction", "expected"),
    [
        ("the heart pumps blood", "the heart pumps blood", 1.0),
        ("photosynthesis", "cellular respiration", 0.0),
        ("anything", "", 0.0),
        # R1: 2 of 3 unigrams each way, F=2/3; R2: 1 of 2 bigrams, F=1/2; RL: LCS 2, F=2/3 -> 11/18.
        ("red blood cells", "white blood cells", 11 / 18),
        # R1: P=2/3, R=1, F=0.8; R2: P=1/2, R=1, F=2/3; RL: as R1 -> (0.8 + 2/3 + 0.8) / 3 = 34/45.
        ("blood cells", "red blood cells", 34 / 45),
        # The stemmer makes "cells divide" and "cell divides" the same tokens.
        ("cells divide", "cell divides", 1.0),
        # One token has no bigram: identical single-token answers score 2/3 (the official behaviour).
        ("42", "42", 2 / 3),
    ],
)
def test_rouge_mean_against_hand_computed_values(reference: str, prediction: str, expected: float) -> None:
    assert rouge_mean(reference, prediction) == pytest.approx(expected)


# --------------------------------------------------------------------------------------------- rewards

GOOD_MC = "<think>The organelle has pores.</think>\n<answer>B</answer>"


@pytest.mark.parametrize(
    ("completion", "answer", "problem_type", "expected"),
    [
        (GOOD_MC, "B", "multiple choice", 1.0),  # 0.9 + 0.1
        ("<answer>B</answer>", "B", "multiple choice", 0.9),  # right, but no <think>
        ("<think>pores</think><answer>C</answer>", "B", "multiple choice", 0.1),  # wrong, well formed
        ("The answer is B.", "B", "multiple choice", 0.0),  # strict: no tag, no credit
        ("<think>p</think>\n<answer>b</answer>", "B", "multiple choice", 0.1),  # strict: exact match only
        ("<think>p</think>\n<answer>B. Nucleus</answer>", "B", "multiple choice", 0.1),
        (GOOD_MC, "<answer>B</answer>", "multiple choice", 1.0),  # release-style tagged ground truth
        ("<think>p</think>\n<answer>red blood cells</answer>", "red blood cells", "open-ended", 1.0),
        (
            "<think>p</think>\n<answer>white blood cells</answer>",
            "red blood cells",
            "open-ended",
            0.9 * 11 / 18 + 0.1,
        ),
        ("<answer>white blood cells</answer>", "red blood cells", "open-ended", 0.9 * 11 / 18),
        ("<think>p</think>\n<answer>osmosis</answer>", "red blood cells", "open-ended", 0.1),
        ("red blood cells", "red blood cells", "open-ended", 0.0),
    ],
)
def test_paper_reward_on_known_completions(
    completion: str, answer: str, problem_type: str, expected: float
) -> None:
    assert reward_score(completion, answer, problem_type, OPTIONS) == pytest.approx(expected)


def test_reward_reads_the_first_block_where_evaluation_reads_the_last() -> None:
    two_blocks = "<answer>A</answer><answer>B</answer>"
    assert accuracy_score(two_blocks, "B", "multiple choice", OPTIONS) == 0.0
    assert score_prediction(two_blocks, "B", "multiple choice", OPTIONS).correct


def trl_kwargs(completions: list[Any], **columns: list[Any]) -> dict[str, Any]:
    """Exactly the keyword arguments GRPOTrainer passes a reward function (TRL 1.16)."""
    return {
        "prompts": [[{"role": "user", "content": "Q"}] for _ in completions],
        "completions": completions,
        "completion_ids": [[1, 2, 3] for _ in completions],
        **columns,
        "trainer_state": object(),
        "log_extra": lambda *args, **kwargs: None,
        "log_metric": lambda *args, **kwargs: None,
    }


def as_messages(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


def test_reward_functions_take_trls_conversational_batch() -> None:
    texts = [GOOD_MC, "<answer>B</answer>", "<think>p</think><answer>C</answer>", "", GOOD_MC]
    kwargs = trl_kwargs(
        [as_messages(text) for text in texts],
        answer=["B", "B", "B", "B", "red blood cells"],
        problem_type=["multiple choice"] * 4 + ["open-ended"],
        options=[OPTIONS] * 4 + [[]],
    )
    accuracy = accuracy_reward(**kwargs)
    fmt = format_reward(**kwargs)
    assert accuracy == [1.0, 1.0, 0.0, 0.0, 0.0]
    assert fmt == [1.0, 0.0, 1.0, 0.0, 1.0]
    weighted = [REWARD_WEIGHTS[0] * a + REWARD_WEIGHTS[1] * f for a, f in zip(accuracy, fmt, strict=True)]
    assert videokr_reward(**kwargs) == pytest.approx(weighted)
    assert videokr_reward(**kwargs) == pytest.approx([1.0, 0.9, 0.1, 0.0, 0.1])


def test_reward_functions_take_plain_string_completions_and_missing_options() -> None:
    kwargs = trl_kwargs([GOOD_MC], answer=["B"], problem_type=["multiple choice"])
    assert videokr_reward(**kwargs) == [1.0]


def test_reward_names_are_what_trl_logs() -> None:
    assert get_callable_name(accuracy_reward) == "accuracy_reward"
    assert get_callable_name(format_reward) == "format_reward"
    assert reward_functions() == [accuracy_reward, format_reward]
    assert reward_functions(["videokr"]) == [videokr_reward]
    with pytest.raises(ValueError, match="choose from"):
        reward_functions(["accuracy", "acuracy"])
    assert list(REWARD_WEIGHTS) == [0.9, 0.1]


def test_misaligned_columns_are_a_wiring_error() -> None:
    with pytest.raises(ValueError):
        accuracy_reward(**trl_kwargs([GOOD_MC, GOOD_MC], answer=["B"], problem_type=["multiple choice"]))


def test_completion_text_handles_parts_and_parsed_reasoning() -> None:
    assert completion_text(GOOD_MC) == GOOD_MC
    parts = [
        {
            "role": "assistant",
            "content": [{"type": "text", "text": "<think>a</think>"}, {"text": "<answer>B"}],
        }
    ]
    assert completion_text(parts) == "<think>a</think><answer>B"
    # A response parser may move the rationale out of the content; the format term must still see it.
    parsed = [{"role": "assistant", "content": "<answer>B</answer>", "reasoning_content": "pores"}]
    assert has_valid_format(completion_text(parsed))
    assert completion_text([]) == ""


def test_rewards_inside_a_real_grpo_step(tmp_path: Path) -> None:
    """GRPOTrainer calls the functions with its own arguments and logs them under their names."""
    from datasets import Dataset
    from transformers import Qwen2Config, Qwen2ForCausalLM
    from trl import GRPOConfig, GRPOTrainer

    from videokr.models.tiny import build_tiny_tokenizer, chat_template

    tokenizer = build_tiny_tokenizer("qwen2_5_vl")
    tokenizer.chat_template = chat_template("qwen2_5_vl")
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    calls: list[dict[str, Any]] = []

    def spy(**kwargs: Any) -> list[float]:
        calls.append(kwargs)
        return [0.0] * len(kwargs["completions"])

    rows = [
        {"prompt": [{"role": "user", "content": "Q1?"}], "answer": "B", "problem_type": "multiple choice"},
        {
            "prompt": [{"role": "user", "content": "Q2?"}],
            "answer": "red blood cells",
            "problem_type": "open-ended",
        },
    ]
    rows[0]["options"], rows[1]["options"] = ["x", "y"], []
    args = GRPOConfig(
        output_dir=str(tmp_path),
        per_device_train_batch_size=4,
        num_generations=2,
        max_completion_length=8,
        max_steps=1,
        report_to=[],
        logging_steps=1,
        save_strategy="no",
        use_cpu=True,
        bf16=False,
        reward_weights=[*REWARD_WEIGHTS, 0.0],
    )
    trainer = GRPOTrainer(
        model=Qwen2ForCausalLM(config),
        processing_class=tokenizer,
        reward_funcs=[*reward_functions(), spy],
        args=args,
        train_dataset=Dataset.from_list(rows),
    )
    trainer.train()

    (seen,) = calls
    assert {"completions", "answer", "problem_type", "options"} <= set(seen)
    assert all(c[0]["role"] == "assistant" for c in seen["completions"])  # conversational completions
    expected = videokr_reward(**seen)
    assert all(0.0 <= value <= 1.0 for value in expected)
    logged = trainer.state.log_history[0]
    assert "rewards/accuracy_reward/mean" in logged and "rewards/format_reward/mean" in logged
    assert logged["reward"] == pytest.approx(sum(expected) / len(expected))


# --------------------------------------------------------------------------------------------- scoring


def test_score_multiple_choice() -> None:
    assert score_prediction(GOOD_MC, "B", "multiple choice", OPTIONS) == ScoredPrediction(
        True, 1.0, "B", "answer_tag"
    )
    assert score_prediction("The answer is (C).", "B", "multiple choice", OPTIONS) == ScoredPrediction(
        False, 0.0, "C", "statement"
    )
    assert score_prediction("", "B", "multiple choice", OPTIONS) == ScoredPrediction(False, 0.0, None, "none")
    # Release-style ground truths: tagged, or the option text.
    assert score_prediction(GOOD_MC, "<answer>B</answer>", "multiple choice", OPTIONS).correct
    assert score_prediction(GOOD_MC, "Nucleus", "multiple choice", OPTIONS).correct
    with pytest.raises(ValueError):
        score_prediction(GOOD_MC, "E", "multiple choice", OPTIONS)  # a broken item is not scored as wrong


@pytest.mark.parametrize(
    ("prediction", "answer", "correct", "extracted", "method"),
    [
        ("<think>g</think>\n<answer>9.81 m/s²</answer>", "9.8 m/s^2", True, "9.81 m/s²", "answer_tag"),
        ("<think>g</think>\n<answer>9.2 m/s²</answer>", "9.8 m/s^2", False, "9.2 m/s²", "answer_tag"),
        ("<answer>1500 years</answer>", "1,500", True, "1500 years", "answer_tag"),
        ("<answer>-3</answer>", "-3", True, "-3", "answer_tag"),
        ("<answer>Red Blood Cells.</answer>", "red blood cells", True, "Red Blood Cells.", "answer_tag"),
        (
            "<think>the cells</think>\nwhite blood cells",
            "red blood cells",
            False,
            "white blood cells",
            "output",
        ),
        ("<think>still reasoning about the cells", "red blood cells", False, None, "none"),
        ("<answer> </answer>", "red blood cells", False, None, "none"),
    ],
)
def test_score_open_ended(
    prediction: str, answer: str, correct: bool, extracted: str | None, method: str
) -> None:
    result = score_prediction(prediction, answer, "open-ended", [])
    assert (result.correct, result.extracted, result.method) == (correct, extracted, method)
    assert result.score == pytest.approx(rouge_mean(answer, extracted) if extracted else 0.0)


def test_open_ended_scores_carry_the_rouge_mean() -> None:
    result = score_prediction("<answer>white blood cells</answer>", "red blood cells", "open-ended")
    assert result.score == pytest.approx(11 / 18) and not result.correct
    assert extract_open_answer("<answer>first</answer> then <answer>second</answer>").answer == "second"


def test_judge_helpers() -> None:
    assert judge_input(GOOD_MC) == "B"
    assert judge_input("The answer is B.") == "The answer is B."
    assert (parse_judge_verdict(" 1\n"), parse_judge_verdict("0"), parse_judge_verdict("Yes")) == (
        True,
        False,
        None,
    )


# --------------------------------------------------------------------------------------------- paper rules

PAPER_ANSWER = re.compile(r"<answer>\s*(.*?)\s*</answer>", re.DOTALL)
PAPER_FORMAT = re.compile(r"<think>.*?</think>\s*<answer>.*?</answer>", re.DOTALL)


def test_strict_reading_equals_the_paper_regexes_on_random_outputs() -> None:
    """The linear scans give what the paper's regexes give (first match stripped; full format match)."""
    pieces = ["<think>", "</think>", "<answer>", "</answer>", "<Answer>", " ", "\n", "\t", "B", "x"]
    rng = random.Random(0)
    for _ in range(20_000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 9)))
        match = PAPER_ANSWER.search(text)
        assert extract_answer(text, strict=True) == (match.group(1).strip() if match else None), text
        assert has_valid_format(text) is (PAPER_FORMAT.fullmatch(text) is not None), text


def test_degenerate_generations_are_scored_in_linear_time() -> None:
    # The paper's regex needs minutes on the first of these; a reward must not stall a training step.
    outputs = [
        "<answer>" + " " * 50_000,
        "<answer>" * 10_000,
        "<think>" + "</think> <answer>" * 5_000,
        "<" + " " * 50_000,
    ]
    started = time.perf_counter()
    for text in outputs:
        reward_score(text, "B", "multiple choice", OPTIONS)
        score_prediction(text, "B", "multiple choice", OPTIONS)
    assert time.perf_counter() - started < 5.0
