"""One way for every pipeline stage to call a model, whichever model serves it.

The construction pipeline makes hundreds of thousands of calls (six generations, a re-derivation, two
video-dependency answers and a rationale check per video), usually against an OpenAI-compatible server
(vLLM, TGI, ``transformers serve``, a hosted API) and, in tests and small runs, against a model loaded in
this process. Stages must not care which, and a run that dies at call 90,000 must not pay for the first
89,999 again. So:

- A request is canonicalised once into the OpenAI chat-completions JSON (images become base64 JPEG data
  URLs), and that exact payload is what the HTTP backend sends, what the in-process backend decodes and
  what the cache key hashes. Same request, same key, whatever the backend.
- `ModelClient` wraps a backend with a disk cache (one file per request, written atomically, so a crash
  loses at most the calls in flight), a semaphore that bounds concurrent calls, retries with exponential
  backoff on transient failures (connection errors, 429, 5xx) and counters (calls, cache hits, tokens)
  that stage reports print.
- `chat_json` parses a structured reply and, when the reply is not valid JSON (or fails the caller's
  check), asks the model once to repair it before raising `StructuredOutputError` with the raw reply.

The HTTP backend uses the standard library: huggingface_hub's `InferenceClient` refuses every URL, even
a loopback one, when ``HF_HUB_OFFLINE=1`` is set, which is exactly how offline runs and tests are set up.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from videokr.errors import VideoKRError

__all__ = [
    "Backend",
    "CallableBackend",
    "Completion",
    "Counters",
    "ModelClient",
    "OpenAIBackend",
    "RequestError",
    "StructuredOutputError",
    "TransformersBackend",
    "TransientError",
    "client_from_env",
    "frame_parts",
    "image_part",
    "parse_json_reply",
    "request_key",
    "text_part",
]

ENV_BASE_URL = ("VIDEOKR_API_BASE", "OPENAI_BASE_URL")
ENV_API_KEY = ("VIDEOKR_API_KEY", "OPENAI_API_KEY")
ENV_MODEL = ("VIDEOKR_MODEL",)
JPEG_QUALITY = 90
CACHE_VERSION = 1


class TransientError(VideoKRError):
    """A failure worth retrying: the server is down, overloaded (429) or failed (5xx)."""


class RequestError(VideoKRError):
    """A failure retrying cannot fix: the server rejected the request (4xx other than 429)."""


class StructuredOutputError(VideoKRError):
    """The model's reply is not the JSON asked for, even after one repair attempt."""

    def __init__(self, message: str, reply: str) -> None:
        self.reply = reply
        super().__init__(f"{message}; reply was: {reply[:300]!r}")


@dataclass(frozen=True)
class Completion:
    """One reply: its text, the tokens it cost, and whether it came from the cache."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached: bool = False


@dataclass
class Counters:
    """What a client has done; stage reports subtract a snapshot taken at the start of the stage."""

    calls: int = 0
    cached: int = 0
    retries: int = 0
    failures: int = 0
    repairs: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def snapshot(self) -> Counters:
        return Counters(**asdict(self))

    def since(self, start: Counters) -> Counters:
        return Counters(**{k: v - getattr(start, k) for k, v in asdict(self).items()})

    def add(self, other: Counters) -> None:
        for key, value in asdict(other).items():
            setattr(self, key, getattr(self, key) + value)


# --------------------------------------------------------------------------------------------- content


def text_part(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def image_part(image: Any) -> dict[str, Any]:
    """An OpenAI ``image_url`` part holding `image` (H×W×3 uint8 array, PIL image, or JPEG/PNG bytes).

    JPEG keeps payloads small for real endpoints; the encoding is deterministic, so the cache key of a
    request is stable across runs.
    """
    if isinstance(image, bytes):
        data, mime = image, "image/png" if image.startswith(b"\x89PNG") else "image/jpeg"
    else:
        from PIL import Image

        pil = Image.fromarray(np.asarray(image, dtype=np.uint8)) if isinstance(image, np.ndarray) else image
        buffer = io.BytesIO()
        pil.convert("RGB").save(buffer, format="JPEG", quality=JPEG_QUALITY)
        data, mime = buffer.getvalue(), "image/jpeg"
    url = f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
    return {"type": "image_url", "image_url": {"url": url}}


def frame_parts(frames: Iterable[Any], timestamps: Iterable[float] | None = None) -> list[dict[str, Any]]:
    """Frames as content parts, each preceded by its time in the clip when `timestamps` are given.

    Frame images carry no time; the generation prompt asks for timestamped questions, so the model must
    be told when each frame was taken.
    """
    parts: list[dict[str, Any]] = []
    stamps = list(timestamps) if timestamps is not None else None
    for i, frame in enumerate(frames):
        if stamps is not None:
            parts.append(text_part(f"[{stamps[i]:.1f}s]"))
        parts.append(image_part(frame))
    return parts


def _canonical_messages(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for message in messages:
        content = message["content"]
        if isinstance(content, str):
            out.append({"role": message["role"], "content": content})
            continue
        parts = []
        for part in content:
            if part.get("type") == "image":
                parts.append(image_part(part["image"]))
            elif part.get("type") in ("text", "image_url"):
                parts.append(dict(part))
            else:
                raise ValueError(f"unsupported content part type {part.get('type')!r}")
        out.append({"role": message["role"], "content": parts})
    return out


def request_key(payload: Mapping[str, Any]) -> str:
    """The cache key: a hash of the whole request (model, messages with image bytes, sampling)."""
    text = json.dumps({"v": CACHE_VERSION, **payload}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------------------------- backends


class Backend(Protocol):
    """Something that answers one chat-completions payload. `model` is part of every cache key."""

    model: str

    def complete(self, payload: Mapping[str, Any]) -> Completion: ...


class OpenAIBackend:
    """Chat completions over HTTP against any OpenAI-compatible server (``{base_url}/chat/completions``)."""

    def __init__(
        self, base_url: str, model: str, api_key: str | None = None, *, timeout: float = 300
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key = api_key
        self.timeout = timeout

    def complete(self, payload: Mapping[str, Any]) -> Completion:
        body = json.dumps(payload).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(
            f"{self.base_url}/chat/completions", data=body, headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                reply = json.loads(response.read().decode("utf-8"))
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")[:500]
            message = f"{self.base_url}: HTTP {exc.code}: {detail}"
            if exc.code == 429 or exc.code >= 500:
                raise TransientError(message) from None
            raise RequestError(message) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            raise TransientError(f"{self.base_url}: {exc}") from None
        except json.JSONDecodeError as exc:
            raise TransientError(f"{self.base_url}: reply is not JSON ({exc})") from None
        try:
            text = reply["choices"][0]["message"]["content"] or ""
        except (KeyError, IndexError, TypeError):
            raise RequestError(f"{self.base_url}: unexpected reply shape {str(reply)[:300]}") from None
        usage = reply.get("usage") or {}
        return Completion(
            text, int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
        )


class CallableBackend:
    """A backend that is a Python function of the payload: rule-based stand-ins and scripted tests."""

    def __init__(self, fn: Callable[[Mapping[str, Any]], str], model: str) -> None:
        self.fn = fn
        self.model = model

    def complete(self, payload: Mapping[str, Any]) -> Completion:
        text = self.fn(payload)
        return Completion(text, 0, len(text.split()))


def decode_data_url(url: str) -> Any:
    """A PIL image from a ``data:image/...;base64,`` URL (the only image form requests carry)."""
    from PIL import Image

    match = re.match(r"data:image/[\w.+-]+;base64,(.*)$", url, re.DOTALL)
    if not match:
        raise RequestError(f"only base64 data URLs are supported in-process, got {url[:40]!r}")
    return Image.open(io.BytesIO(base64.b64decode(match.group(1)))).convert("RGB")


class TransformersBackend:
    """A vision-language model loaded in this process (tests use the tiny Qwen models; also small runs).

    The payload is turned back into transformers chat messages (data URLs → PIL images) and rendered by
    the processor's own chat template, so the model sees what a server running it would have shown it.
    Generation is serialised with a lock: one model, one forward at a time.
    """

    def __init__(self, model: Any, processor: Any, *, name: str, max_new_tokens: int = 256) -> None:
        self.hf_model = model
        self.processor = processor
        self.model = name
        self.max_new_tokens = max_new_tokens
        self._lock = threading.Lock()

    @classmethod
    def from_pretrained(cls, path: str | Path, **kwargs: Any) -> TransformersBackend:
        from transformers import AutoModelForImageTextToText, AutoProcessor

        model = AutoModelForImageTextToText.from_pretrained(path).eval()
        return cls(model, AutoProcessor.from_pretrained(path), name=str(kwargs.pop("name", path)), **kwargs)

    def _messages(self, payload: Mapping[str, Any]) -> list[dict[str, Any]]:
        messages = []
        for message in payload["messages"]:
            content = message["content"]
            if isinstance(content, str):
                content = [text_part(content)]
            parts = []
            for part in content:
                if part["type"] == "image_url":
                    parts.append({"type": "image", "image": decode_data_url(part["image_url"]["url"])})
                else:
                    parts.append({"type": "text", "text": part["text"]})
            messages.append({"role": message["role"], "content": parts})
        return messages

    def complete(self, payload: Mapping[str, Any]) -> Completion:
        import torch

        inputs = self.processor.apply_chat_template(
            self._messages(payload),
            add_generation_prompt=True,
            tokenize=True,
            return_dict=True,
            return_tensors="pt",
        )
        temperature = float(payload.get("temperature") or 0.0)
        max_new = min(int(payload.get("max_tokens") or self.max_new_tokens), self.max_new_tokens)
        sampling: dict[str, Any] = {"do_sample": temperature > 0}
        if temperature > 0:
            sampling["temperature"] = temperature
        with self._lock, torch.no_grad():
            if payload.get("seed") is not None:
                torch.manual_seed(int(payload["seed"]))
            output = self.hf_model.generate(**inputs, max_new_tokens=max_new, **sampling)
        prompt_len = inputs["input_ids"].shape[1]
        new = output[0, prompt_len:]
        text = self.processor.tokenizer.decode(new, skip_special_tokens=True)
        return Completion(text, int(prompt_len), int(new.shape[0]))


# --------------------------------------------------------------------------------------------- client


class ModelClient:
    """A backend plus disk cache, bounded concurrency, retries with backoff, counters and JSON replies.

    Thread-safe: stages call `chat` from a thread pool; at most `max_concurrency` calls reach the backend
    at once. With `cache_dir=None` nothing is cached (use only for throwaway calls).
    """

    def __init__(
        self,
        backend: Backend,
        *,
        cache_dir: str | Path | None = None,
        max_concurrency: int = 4,
        retries: int = 4,
        backoff_s: float = 1.0,
        max_backoff_s: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.backend = backend
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.max_concurrency = max_concurrency
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.counters = Counters()
        self._sleep = sleep
        self._slots = threading.Semaphore(max_concurrency)
        self._lock = threading.Lock()

    @property
    def model(self) -> str:
        return self.backend.model

    def payload(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        temperature: float = 0.0,
        max_tokens: int = 1024,
        seed: int | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """The canonical request: exactly what is sent, decoded in-process and hashed for the cache."""
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": _canonical_messages(messages),
            "temperature": temperature,
            "max_tokens": max_tokens,
        }
        if seed is not None:
            payload["seed"] = seed
        payload.update(extra)
        return payload

    def chat(self, messages: Sequence[Mapping[str, Any]], **params: Any) -> Completion:
        """One completion, from the cache when this exact request was answered before."""
        payload = self.payload(messages, **params)
        key = request_key(payload)
        cached = self._read_cache(key)
        if cached is not None:
            with self._lock:
                self.counters.cached += 1
            return cached
        completion = self._call(payload)
        self._write_cache(key, completion)
        return completion

    def chat_json(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        check: Callable[[Any], None] | None = None,
        **params: Any,
    ) -> Any:
        """A parsed JSON reply. `check` may raise `ValueError` to reject a well-formed but wrong shape.

        A bad reply gets one repair turn (the reply and the error are shown back to the model); if that
        also fails, `StructuredOutputError` carries the last raw reply so the caller can log and drop it.
        """
        first = self.chat(messages, **params)
        try:
            return _checked(parse_json_reply(first.text), check)
        except ValueError as exc:
            error = str(exc)
        with self._lock:
            self.counters.repairs += 1
        repair = [
            *messages,
            {"role": "assistant", "content": first.text},
            {
                "role": "user",
                "content": f"Your reply could not be used: {error}. Reply again with only the corrected "
                "JSON.",
            },
        ]
        second = self.chat(repair, **params)
        try:
            return _checked(parse_json_reply(second.text), check)
        except ValueError as exc:
            raise StructuredOutputError(
                f"{self.model}: invalid JSON after one repair ({exc})", second.text
            ) from None

    def _call(self, payload: Mapping[str, Any]) -> Completion:
        delay = self.backoff_s
        for attempt in range(self.retries + 1):
            try:
                with self._slots:
                    completion = self.backend.complete(payload)
            except TransientError:
                with self._lock:
                    self.counters.failures += 1
                if attempt == self.retries:
                    raise
                with self._lock:
                    self.counters.retries += 1
                self._sleep(delay)
                delay = min(delay * 2, self.max_backoff_s)
                continue
            with self._lock:
                self.counters.calls += 1
                self.counters.prompt_tokens += completion.prompt_tokens
                self.counters.completion_tokens += completion.completion_tokens
            return completion
        raise AssertionError("unreachable")

    def _cache_path(self, key: str) -> Path | None:
        return None if self.cache_dir is None else self.cache_dir / key[:2] / f"{key}.json"

    def _read_cache(self, key: str) -> Completion | None:
        path = self._cache_path(key)
        if path is None or not path.exists():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return None  # a torn entry cannot exist (atomic writes), but a damaged disk should not stop a run
        return Completion(data["text"], data["prompt_tokens"], data["completion_tokens"], cached=True)

    def _write_cache(self, key: str, completion: Completion) -> None:
        path = self._cache_path(key)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        record = {
            "model": self.model,
            "text": completion.text,
            "prompt_tokens": completion.prompt_tokens,
            "completion_tokens": completion.completion_tokens,
        }
        tmp.write_text(json.dumps(record, ensure_ascii=False), encoding="utf-8")
        tmp.replace(path)


def _checked(value: Any, check: Callable[[Any], None] | None) -> Any:
    if check is not None:
        check(value)
    return value


_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL | re.IGNORECASE)


def parse_json_reply(text: str) -> Any:
    """The JSON value in a reply: the whole text, a fenced block, or the outermost ``{…}``/``[…]`` span.

    Models wrap JSON in prose or Markdown fences; anything else is a `ValueError` saying what was found.
    """
    candidates = [text.strip()]
    candidates += [m.strip() for m in _FENCE.findall(text)]
    for open_, close in (("{", "}"), ("[", "]")):
        start, end = text.find(open_), text.rfind(close)
        if 0 <= start < end:
            candidates.append(text[start : end + 1])
    for candidate in candidates:
        try:
            return json.loads(candidate)
        except json.JSONDecodeError:
            continue
    raise ValueError("the reply contains no valid JSON object or array")


def _env(names: Sequence[str]) -> str | None:
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return None


def client_from_env(
    model: str | None = None,
    *,
    local_path: str | None = None,
    cache_dir: str | Path | None = None,
    max_concurrency: int = 4,
) -> ModelClient:
    """A client for `model` on the endpoint the environment names, or for a local model folder.

    Environment: ``VIDEOKR_API_BASE`` (or ``OPENAI_BASE_URL``), ``VIDEOKR_API_KEY`` (or
    ``OPENAI_API_KEY``), ``VIDEOKR_MODEL`` (the default model name). `local_path` loads a transformers
    checkpoint in-process instead.
    """
    if local_path is not None:
        backend: Backend = TransformersBackend.from_pretrained(local_path, name=model or str(local_path))
        return ModelClient(backend, cache_dir=cache_dir, max_concurrency=1)
    base_url = _env(ENV_BASE_URL)
    model = model or _env(ENV_MODEL)
    if not base_url or not model:
        raise VideoKRError(
            "no model endpoint: set VIDEOKR_API_BASE (e.g. http://localhost:8000/v1) and VIDEOKR_MODEL "
            "or pass --model, or use --local-model PATH"
        )
    backend = OpenAIBackend(base_url, model, _env(ENV_API_KEY))
    return ModelClient(backend, cache_dir=cache_dir, max_concurrency=max_concurrency)
