"""Prompts equal the official strings byte for byte, and the messages render through the real Qwen templates.

A model is sensitive to the exact prompt it was trained on, so every expected string below is written
out in full rather than rebuilt from the constants under test.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from transformers.video_utils import VideoMetadata

from videokr.data.prompts import (
    DEFAULT_PROMPT_STYLE,
    MC_SUFFIX,
    OPEN_ENDED_SUFFIX,
    VIDEO_PLACEHOLDER,
    assistant_target,
    build_messages,
    build_prompt,
    format_options,
    has_embedded_options,
    suffix_for,
    video_part,
)
from videokr.evaluation.judge import JUDGE_PROMPT_MC, JUDGE_PROMPT_OPEN_ENDED, judge_prompt
from videokr.models.tiny import (
    ARCHES,
    IM_END,
    IM_START,
    VIDEO_PAD,
    VISION_END,
    VISION_START,
    build_tiny_processor,
)

OFFICIAL_MC_SUFFIX = (
    "Please answer this question based on the visual content.\n"
    "Provide your thinking process between the <think> and </think> tags, "
    "and then give your final answer "
    "between the <answer> and </answer> tags.\n"
    "Please provide only the single option letter (e.g., A, B, C, D, etc.) "
    "within the <answer>...</answer> tags."
)
OFFICIAL_OE_SUFFIX = (
    "Please answer this question based on the visual content.\n"
    "Provide your thinking process between the <think> and </think> tags, "
    "and then give your final answer "
    "between the <answer> and </answer> tags.\n"
    "Please provide only your final answer within the <answer>...</answer> tags."
)
QUESTION = "Which ball starts moving first?"
OPTIONS = ["The red ball", "The blue ball", "Both at once", "Neither"]
OE_QUESTION = "What quantity does the student measure with the stopwatch?"


def test_suffixes_are_the_official_sentences() -> None:
    assert MC_SUFFIX == OFFICIAL_MC_SUFFIX
    assert OPEN_ENDED_SUFFIX == OFFICIAL_OE_SUFFIX
    assert suffix_for("multiple choice") == suffix_for("multiple-choice") == OFFICIAL_MC_SUFFIX
    assert suffix_for("open-ended") == suffix_for("free-form") == OFFICIAL_OE_SUFFIX


def test_sft_multiple_choice_is_the_llamafactory_string() -> None:
    expected = (
        "<video>Which ball starts moving first?\n\nOptions:\n"
        "A. The red ball\nB. The blue ball\nC. Both at once\nD. Neither\n"
        "Please answer this question based on the visual content.\n"
        "Provide your thinking process between the <think> and </think> tags, "
        "and then give your final answer "
        "between the <answer> and </answer> tags.\n"
        "Please provide only the single option letter (e.g., A, B, C, D, etc.) "
        "within the <answer>...</answer> tags."
    )
    assert VIDEO_PLACEHOLDER + build_prompt(QUESTION, OPTIONS, "multiple choice", style="sft") == expected


def test_sft_open_ended_keeps_the_official_trailing_newline() -> None:
    expected = (
        "<video>What quantity does the student measure with the stopwatch?\n"
        "Please answer this question based on the visual content.\n"
        "Provide your thinking process between the <think> and </think> tags, "
        "and then give your final answer "
        "between the <answer> and </answer> tags.\n"
        "Please provide only your final answer within the <answer>...</answer> tags.\n"
    )
    assert VIDEO_PLACEHOLDER + build_prompt(f"  {OE_QUESTION} \n", [], "open-ended", style="sft") == expected


def test_rl_multiple_choice_is_the_verl_string_and_its_text_part_starts_with_a_newline() -> None:
    expected = (
        "<video>\nWhich ball starts moving first?\nOptions:\n"
        "A. The red ball\nB. The blue ball\nC. Both at once\nD. Neither\n"
        "Please answer this question based on the visual content.\n"
        "Provide your thinking process between the <think> and </think> tags, "
        "and then give your final answer "
        "between the <answer> and </answer> tags.\n"
        "Please provide only the single option letter (e.g., A, B, C, D, etc.) "
        "within the <answer>...</answer> tags."
    )
    text = build_prompt(QUESTION, OPTIONS, "multiple choice", style="rl")
    assert VIDEO_PLACEHOLDER + text == expected
    assert text.startswith("\nWhich ball")  # what verl's split at "<video>" leaves for the text part


def test_rl_open_ended_is_the_verl_string() -> None:
    expected = (
        "<video>\nWhat quantity does the student measure with the stopwatch?\n"
        "Please answer this question based on the visual content.\n"
        "Provide your thinking process between the <think> and </think> tags, "
        "and then give your final answer "
        "between the <answer> and </answer> tags.\n"
        "Please provide only your final answer within the <answer>...</answer> tags."
    )
    assert VIDEO_PLACEHOLDER + build_prompt(OE_QUESTION, [], "open-ended", style="rl") == expected


def test_eval_multiple_choice_is_the_lmms_eval_string_without_options_header() -> None:
    expected = (
        "Which ball starts moving first?\n"
        "A. The red ball\nB. The blue ball\nC. Both at once\nD. Neither\n"
        "Please answer this question based on the visual content.\n"
        "Provide your thinking process between the <think> and </think> tags, "
        "and then give your final answer "
        "between the <answer> and </answer> tags.\n"
        "Please provide only the single option letter (e.g., A, B, C, D, etc.) "
        "within the <answer>...</answer> tags."
    )
    assert build_prompt(QUESTION, OPTIONS, "multiple choice", style="eval") == expected


def test_eval_open_ended_is_the_lmms_eval_string() -> None:
    expected = (
        "What quantity does the student measure with the stopwatch?\n"
        "Please answer this question based on the visual content.\n"
        "Provide your thinking process between the <think> and </think> tags, "
        "and then give your final answer "
        "between the <answer> and </answer> tags.\n"
        "Please provide only your final answer within the <answer>...</answer> tags."
    )
    assert build_prompt(OE_QUESTION, [], "open-ended", style="eval") == expected


def test_default_style_is_eval() -> None:
    assert DEFAULT_PROMPT_STYLE == "eval"
    assert build_prompt(QUESTION, OPTIONS) == build_prompt(QUESTION, OPTIONS, "multiple choice", style="eval")


@pytest.mark.parametrize("style", ["sft", "rl", "eval"])
@pytest.mark.parametrize(
    "question",
    [
        "Which ball starts moving first?\nOptions:\nA. The red ball\nB. The blue ball",
        "Which ball starts moving first?\nA. The red ball\nB. The blue ball",
        "Which ball starts moving first?\n(A) The red ball\n(B) The blue ball",
    ],
)
def test_questions_that_embed_their_options_do_not_get_them_twice(style: str, question: str) -> None:
    prompt = build_prompt(question, ["The red ball", "The blue ball"], "multiple choice", style=style)
    assert prompt.count("The red ball") == 1
    assert prompt.count("The blue ball") == 1
    assert prompt.endswith(OFFICIAL_MC_SUFFIX)


def test_embedded_option_detection_follows_the_rl_rule() -> None:
    assert has_embedded_options("Q?\nOptions:\nx")
    assert has_embedded_options("Q?\nA: one\nB: two")
    assert not has_embedded_options("A car accelerates. Why?")  # "A" starting the question is not an option


@pytest.mark.parametrize("style", ["sft", "rl", "eval"])
def test_a_leading_video_placeholder_in_the_question_is_not_repeated(style: str) -> None:
    prompt = build_prompt("<video>\n" + QUESTION, OPTIONS, "multiple choice", style=style)
    assert VIDEO_PLACEHOLDER not in prompt
    assert prompt.lstrip("\n").startswith(QUESTION)


def test_ten_options_run_a_to_j_and_an_eleventh_is_refused() -> None:
    lines = format_options([f"choice {i}" for i in range(10)])
    assert lines[0] == "A. choice 0" and lines[-1] == "J. choice 9"
    with pytest.raises(ValueError, match="A–J"):
        build_prompt("Q?", [f"choice {i}" for i in range(11)])


def test_unknown_style_or_problem_type_is_an_error_not_a_guess() -> None:
    with pytest.raises(ValueError, match="style"):
        build_prompt(QUESTION, OPTIONS, style="chat")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="problem_type"):
        build_prompt(QUESTION, OPTIONS, "true/false")


# --------------------------------------------------------------------------------------------- messages


def test_assistant_targets_for_cot_and_direct_answers() -> None:
    assert assistant_target("B", "The blue ball moves at 0.5 s.") == (
        "<think>The blue ball moves at 0.5 s.</think>\n<answer>B</answer>"
    )
    # Release values arrive wrapped in their tags; they are not wrapped twice.
    assert assistant_target("<answer>B</answer>", "<think>Because.</think>") == (
        "<think>Because.</think>\n<answer>B</answer>"
    )
    assert assistant_target("B", direct=True) == "<answer>B</answer>"
    with pytest.raises(ValueError, match="rationale"):
        assistant_target("B", "  ")
    with pytest.raises(ValueError, match="answer"):
        assistant_target("", "why")


def test_messages_put_the_video_before_the_text_with_optional_system_and_target() -> None:
    messages = build_messages(
        "Q?", "videos_0007/clip.mp4", system_prompt="Be brief.", target="<answer>B</answer>"
    )
    assert messages == [
        {"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
        {
            "role": "user",
            "content": [{"type": "video", "video": "videos_0007/clip.mp4"}, {"type": "text", "text": "Q?"}],
        },
        {"role": "assistant", "content": [{"type": "text", "text": "<answer>B</answer>"}]},
    ]
    assert build_messages("Q?", "clip.mp4")[0]["role"] == "user"  # no system turn unless asked


def test_video_references_stay_opaque() -> None:
    assert video_part(Path("clips") / "a.mp4") == {"type": "video", "video": str(Path("clips") / "a.mp4")}
    frames = np.zeros((2, 8, 8, 3), dtype=np.uint8)
    assert video_part(frames)["video"] is frames
    # A caller-built part keeps its keys (sampling hints included) and is typed as a video.
    assert video_part({"path": "a.mp4", "fps": 2.0}) == {"path": "a.mp4", "fps": 2.0, "type": "video"}


def test_probe_messages_carry_one_frame_or_no_visual() -> None:
    frame = np.zeros((8, 8, 3), dtype=np.uint8)
    single = build_messages("Q?", image=frame)[0]["content"]
    assert single[0]["type"] == "image" and single[1] == {"type": "text", "text": "Q?"}
    assert build_messages("Q?")[0]["content"] == [{"type": "text", "text": "Q?"}]
    with pytest.raises(ValueError, match="not both"):
        build_messages("Q?", "a.mp4", image=frame)


@pytest.fixture(scope="module", params=ARCHES)
def processor(request: pytest.FixtureRequest) -> Any:
    return build_tiny_processor(request.param)


def test_messages_render_through_the_real_chat_templates(processor: Any) -> None:
    prompt = build_prompt(QUESTION, OPTIONS, "multiple choice", style="eval")
    target = assistant_target("B", "The blue ball moves first.")
    rendered = processor.apply_chat_template(build_messages(prompt, "clip.mp4", target=target))
    assert f"{IM_START}user\n{VISION_START}{VIDEO_PAD}{VISION_END}{prompt}{IM_END}\n" in rendered
    assert rendered.endswith(f"{IM_START}assistant\n{target}{IM_END}\n")


def test_decoded_frames_in_the_video_part_reach_the_processor(processor: Any) -> None:
    frames = np.random.default_rng(0).integers(0, 255, (4, 64, 64, 3), dtype=np.uint8)
    metadata = VideoMetadata(total_num_frames=4, fps=2.0, width=64, height=64, frames_indices=[0, 1, 2, 3])
    inputs = processor.apply_chat_template(
        build_messages("Q?", frames),
        add_generation_prompt=True,
        tokenize=True,
        return_dict=True,
        return_tensors="pt",
        processor_kwargs={"video_metadata": [metadata], "do_sample_frames": False},
    )
    t, h, w = inputs["video_grid_thw"][0].tolist()
    assert inputs["pixel_values_videos"].shape[0] == t * h * w
    video_token = processor.tokenizer.convert_tokens_to_ids(VIDEO_PAD)
    merge = processor.video_processor.merge_size
    assert int((inputs["input_ids"] == video_token).sum()) == t * h * w // merge**2


# --------------------------------------------------------------------------------------------- judge


def test_judge_prompts_are_the_official_templates() -> None:
    assert JUDGE_PROMPT_MC.startswith(
        "You are a strict evaluator assessing answer correctness. "
        "You must output 1 for fully correct answers and 0 for any other case.\n"
        "Question:\n{question}\nGround Truth Answer:\n{answer}\nModel Prediction:\n"
        "{prediction}\n# Evaluation Rules for Multiple Choice Questions\n"
        "- The model prediction may contain reasoning, but focus on the final answer.\n"
    )
    assert JUDGE_PROMPT_MC.endswith(
        "- Score 0 for any incorrect answer, even if the reasoning process seems correct.\n\n"
        'Return only "1" or "0" with no additional text or formatting.'
    )
    assert JUDGE_PROMPT_OPEN_ENDED.startswith(
        "You are a fair evaluator assessing answer correctness.\n"
        "Question:\n{question}\nGround Truth Answer:\n{answer}\nModel Prediction:\n{prediction}\n"
        "# Scoring Rules\n"
    )
    assert (
        "- Treat numerical answers as correct if they match within reasonable precision.\n"
        in JUDGE_PROMPT_OPEN_ENDED
    )
    assert JUDGE_PROMPT_OPEN_ENDED.endswith('Return only "1" or "0" with no additional text or formatting.')


def test_judge_prompt_shows_the_question_with_its_option_lines() -> None:
    text = judge_prompt(QUESTION, OPTIONS[:2], "B", "B", "multiple choice")
    assert text.startswith("You are a strict evaluator")
    assert (
        "Question:\nWhich ball starts moving first?\nA. The red ball\nB. The blue ball\n"
        "Ground Truth Answer:\nB\nModel Prediction:\nB\n# Evaluation Rules"
    ) in text
    open_text = judge_prompt(OE_QUESTION, [], "Time", "the time taken", "open-ended")
    assert open_text.startswith("You are a fair evaluator")
    assert (
        f"Question:\n{OE_QUESTION}\nGround Truth Answer:\nTime\nModel Prediction:\nthe time taken\n"
        in open_text
    )
