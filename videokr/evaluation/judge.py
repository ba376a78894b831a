"""An optional judge behind any OpenAI-compatible endpoint, with the paper's judge prompts.

Without a judge, open-ended answers are scored by ROUGE and reported on their own line (the official
scorer skips them); with one, each open-ended answer gets the official open-ended judge prompt and a
0/1 verdict, and multiple-choice answers can be judged too (``judge_mc``) though by default they are read
by the deterministic letter extraction, which implements the MC judge prompt's own rules.

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
from typing import Any, Protocol

from videokr.answers import judge_input, parse_judge_verdict
from videokr.errors import VideoKRError
from videokr.prompts import judge_prompt

__all__ = [
    "JUDGE_ENV",
    "Judge",
    "JudgeItem",
    "JudgeSettings",
    "active_judge",
    "configure_judge",
]

logger = logging.getLogger(__name__)

#: Environment variables read when no judge was configured in-process.
JUDGE_ENV = {
    "base_url": "VIDEOKR_JUDGE_URL",
    "model": "VIDEOKR_JUDGE_MODEL",
    "api_key": "VIDEOKR_JUDGE_API_KEY",
    "judge_mc": "VIDEOKR_JUDGE_MC",
}


@dataclass(frozen=True)
class JudgeSettings:
    """Where the judge is and what it judges. The API key is never logged or written to results."""

    base_url: str
    model: str | None = None
    api_key: str | None = None
    judge_mc: bool = False
    max_workers: int = 8
    timeout_s: float = 120.0

    def describe(self) -> str:
        return f"{self.model or 'default model'} at {self.base_url}"


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
        prompt = judge_prompt(
            item.question, item.options, item.answer, judge_input(item.prediction), item.problem_type
        )
        try:
            reply = self.client.chat_completion(
                messages=[{"role": "user", "content": prompt}],
                model=self.settings.model,
                temperature=0.0,
                max_tokens=8,
            )
            text = reply.choices[0].message.content
        except Exception as error:  # one bad call must not lose the whole run's scores
            logger.warning("judge call failed: %s", error)
            return None
        return parse_judge_verdict(text)


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
    )
    return configure_judge(settings)
