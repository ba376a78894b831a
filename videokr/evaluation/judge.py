"""An optional judge behind any OpenAI-compatible endpoint, with the paper's judge prompts.

Without a judge, open-ended answers are scored by ROUGE and reported on their own line (the official
scorer skips them); with one, each open-ended answer gets the official open-ended judge prompt and a
0/1 verdict, and multiple-choice answers can be judged too (``judge_mc``) though by default they are read
by the deterministic letter extraction, which implements the MC judge prompt's own rules. The
``official`` protocol (``protocol="official"``, ``--judge-protocol official``) instead reproduces the
paper's judged runs exactly (see `videokr.evaluation.official`); its verdicts make ``acc_official``.

Why the judge is configured here and not on the metric object: lighteval hashes each task's config,
metric included, to key its prediction cache. Judge settings on the metric would change that hash and
throw away every cached generation just because the scoring changed. The judge is therefore process
state (`configure_judge`, or the ``VIDEOKR_JUDGE_*`` environment variables for the plain lighteval CLI).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from videokr.data.answer_format import is_multiple_choice
from videokr.data.prompts import format_options, has_embedded_options
from videokr.errors import VideoKRError
from videokr.evaluation.answers import answer_blocks
from videokr.evaluation.official import (
    OFFICIAL_JUDGE_MAX_TOKENS,
    OFFICIAL_JUDGE_TEMPERATURE,
    official_judge_verdict,
    official_prediction,
)

__all__ = [
    "JUDGE_ENV",
    "JUDGE_PROMPT_MC",
    "JUDGE_PROMPT_OPEN_ENDED",
    "JUDGE_PROTOCOLS",
    "Judge",
    "JudgeItem",
    "JudgeProtocol",
    "JudgeSettings",
    "active_judge",
    "configure_judge",
    "judge_input",
    "judge_prompt",
    "parse_judge_verdict",
]

logger = logging.getLogger(__name__)

#: Environment variables read when no judge was configured in-process.
JUDGE_ENV = {
    "base_url": "VIDEOKR_JUDGE_URL",
    "model": "VIDEOKR_JUDGE_MODEL",
    "api_key": "VIDEOKR_JUDGE_API_KEY",
    "judge_mc": "VIDEOKR_JUDGE_MC",
    "protocol": "VIDEOKR_JUDGE_PROTOCOL",
}

#: ``videokr``: open-ended items judged (multiple choice too with ``judge_mc``), greedy, a verdict is a
#: reply of exactly ``0`` or ``1``. ``official``: the paper's protocol (`videokr.evaluation.official`):
#: every item judged, temperature 1, 256 tokens, the first answer block shown, a reply containing ``1``
#: counts as correct.
JudgeProtocol = Literal["videokr", "official"]
JUDGE_PROTOCOLS: tuple[JudgeProtocol, ...] = ("videokr", "official")


@dataclass(frozen=True)
class JudgeSettings:
    """Where the judge is and what it judges. The API key is never logged or written to results."""

    base_url: str
    model: str | None = None
    api_key: str | None = None
    judge_mc: bool = False
    max_workers: int = 8
    timeout_s: float = 120.0
    protocol: JudgeProtocol = "videokr"

    def __post_init__(self) -> None:
        if self.protocol not in JUDGE_PROTOCOLS:
            raise ValueError(
                f"judge protocol must be one of {', '.join(JUDGE_PROTOCOLS)}, not {self.protocol!r}"
            )

    @property
    def judges_mc(self) -> bool:
        """Whether multiple-choice items are judged (always under the official protocol)."""
        return self.judge_mc or self.protocol == "official"

    def describe(self) -> str:
        return f"{self.model or 'default model'} at {self.base_url} ({self.protocol} protocol)"


@dataclass(frozen=True)
class JudgeItem:
    """One prediction to judge, with what the official prompt shows the judge."""

    question: str
    options: Sequence[str]
    answer: str
    prediction: str
    problem_type: str


class ChatClient(Protocol):
    def chat_completion(self, messages: list[dict[str, Any]], **kwargs: Any) -> Any: ...


class Judge:
    """Asks the endpoint for a 0/1 verdict per item (threads, since each call waits on the network).

    A reply that is not ``0`` or ``1``, or a failed call, is a verdict of None: it counts as wrong, as in
    the official scorer, and is also counted (``judge_failures``) so a broken endpoint cannot hide.
    """

    def __init__(self, settings: JudgeSettings, client: ChatClient | None = None) -> None:
        self.settings = settings
        self.client = client or _inference_client(settings)

    def verdicts(self, items: Sequence[JudgeItem]) -> list[bool | None]:
        if not items:
            return []
        with ThreadPoolExecutor(max_workers=max(1, self.settings.max_workers)) as pool:
            return list(pool.map(self._one, items))

    def _one(self, item: JudgeItem) -> bool | None:
        official = self.settings.protocol == "official"
        shown = official_prediction(item.prediction) if official else judge_input(item.prediction)
        prompt = judge_prompt(item.question, item.options, item.answer, shown, item.problem_type)
        try:
            reply = self.client.chat_completion(
                messages=[{"role": "user", "content": prompt}],
                model=self.settings.model,
                temperature=OFFICIAL_JUDGE_TEMPERATURE if official else 0.0,
                max_tokens=OFFICIAL_JUDGE_MAX_TOKENS if official else 8,
            )
            text = reply.choices[0].message.content
        except Exception as error:  # one bad call must not lose the whole run's scores
            logger.warning("judge call failed: %s", error)
            return None
        return official_judge_verdict(text) if official else parse_judge_verdict(text)


def _inference_client(settings: JudgeSettings) -> ChatClient:
    """``huggingface_hub.InferenceClient`` on the endpoint. Its HTTP session refuses *every* request
    in Hub offline mode, a local endpoint included, so that case fails here, once, by name, rather
    than as one failed verdict per item."""
    from huggingface_hub import InferenceClient, constants

    if constants.is_offline_mode():
        raise VideoKRError(
            f"the judge at {settings.base_url} is called through huggingface_hub, which refuses every "
            "request while HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set; unset it for a judged run "
            "(local datasets and models still load from disk)"
        )
    return InferenceClient(base_url=settings.base_url, api_key=settings.api_key, timeout=settings.timeout_s)


_ACTIVE: Judge | None = None
_CONFIGURED = False


def configure_judge(settings: JudgeSettings | None, client: ChatClient | None = None) -> Judge | None:
    """Set (or, with None, clear) the judge the VideoKR metric uses in this process."""
    global _ACTIVE, _CONFIGURED
    _ACTIVE = Judge(settings, client) if settings is not None else None
    _CONFIGURED = True
    return _ACTIVE


def active_judge() -> Judge | None:
    """The configured judge, else one from ``VIDEOKR_JUDGE_URL`` (and friends), else None."""
    if _CONFIGURED:
        return _ACTIVE
    url = os.environ.get(JUDGE_ENV["base_url"])
    if not url:
        return None
    settings = JudgeSettings(
        base_url=url,
        model=os.environ.get(JUDGE_ENV["model"]) or None,
        api_key=os.environ.get(JUDGE_ENV["api_key"]) or None,
        judge_mc=os.environ.get(JUDGE_ENV["judge_mc"], "").strip().lower() in {"1", "true", "yes"},
        protocol=os.environ.get(JUDGE_ENV["protocol"], "").strip().lower() or "videokr",  # type: ignore[arg-type]
    )
    return configure_judge(settings)


# ---------------------------------------------------------------------------------- prompts and verdicts

#: The official judge prompt for multiple choice (fields: question, answer, prediction).
JUDGE_PROMPT_MC = """You are a strict evaluator assessing answer correctness. You must output 1 for fully correct answers and 0 for any other case.
Question:
{question}
Ground Truth Answer:
{answer}
Model Prediction:
{prediction}
# Evaluation Rules for Multiple Choice Questions
- The model prediction may contain reasoning, but focus on the final answer.
- Score 1 if the predicted answer matches the ground truth answer.
- The answer can be given as just the letter (A, B, C, ...) or include the full option text.
- Ignore minor differences in formatting, capitalization, or spacing.
- Score 0 for any incorrect answer, even if the reasoning process seems correct.

Return only "1" or "0" with no additional text or formatting."""  # noqa: E501

#: The official judge prompt for open-ended questions (fields: question, answer, prediction).
JUDGE_PROMPT_OPEN_ENDED = """You are a fair evaluator assessing answer correctness.
Question:
{question}
Ground Truth Answer:
{answer}
Model Prediction:
{prediction}
# Scoring Rules
- Score 1: The prediction is correct - it captures the key information from the ground truth answer. Minor wording differences, extra non-contradictory details, or more verbose phrasing are acceptable.
- Score 0: The prediction is clearly wrong - it contradicts the ground truth, is completely irrelevant, or misses all key information.

# Additional Guidelines
- Focus on the final answer in the prediction, ignoring any reasoning process.
- Ignore differences in formatting, capitalization, or spacing.
- Treat numerical answers as correct if they match within reasonable precision.
- If the ground truth is very short (e.g., a single word or symbol), score 1 if the prediction contains that information in a reasonable context.
- A more detailed answer that includes the ground truth information plus reasonable elaboration should score 1, not be penalized.
- Synonyms, abbreviations, and equivalent expressions (e.g., "DHT" for "Dihydrotestosterone", "O(n log n)" for "n log n", "High blood pressure" for "Hypertension") should score 1.

Return only "1" or "0" with no additional text or formatting."""  # noqa: E501


def judge_prompt(
    question: str, options: Sequence[str], answer: str, prediction: str, problem_type: str
) -> str:
    """The official judge prompt for one item.

    The question is shown with its option lines (``question\\nA. …``), as the official scorer does. The
    official scorer passes as ``prediction`` the model's ``<answer>`` content when there is one, else its
    whole output; `judge_input` computes that.
    """
    lines = [] if has_embedded_options(question) else format_options(options)
    full_question = f"{question}\n" + "\n".join(lines) if lines else question
    template = JUDGE_PROMPT_MC if is_multiple_choice(problem_type, options) else JUDGE_PROMPT_OPEN_ENDED
    return template.format(question=full_question, answer=answer, prediction=prediction)


def judge_input(prediction: str) -> str:
    """What the judge is shown as the model's prediction: the answer-tag content when there is one,
    else the whole output, as the official scorer; the last non-empty tag rather than the first, for the
    reasons `extract_choice` gives."""
    for span in reversed(answer_blocks(prediction)):
        if span:
            return span
    return str(prediction or "")


def parse_judge_verdict(reply: str) -> bool | None:
    """The judge's reply as a verdict: ``"1"`` → True, ``"0"`` → False, anything else → None (the
    official scorer counts that as wrong; None lets a caller also count the failures)."""
    reply = str(reply or "").strip()
    return {"1": True, "0": False}.get(reply)


# --------------------------------------------------------------------------------------------- rewards
