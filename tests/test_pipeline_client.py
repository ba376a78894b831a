"""The pipeline's model client: real HTTP to a loopback server, an in-process tiny model, the cache,
retries, bounded concurrency and structured replies."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pipeline_fixtures import ChatServer, image_count, message_text

from videokr.pipeline.client import (
    CallableBackend,
    ModelClient,
    OpenAIBackend,
    RequestError,
    StructuredOutputError,
    TransformersBackend,
    TransientError,
    frame_parts,
    parse_json_reply,
    text_part,
)


@pytest.fixture(scope="module")
def tiny_backend() -> TransformersBackend:
    from videokr.models.tiny import build_tiny_model

    model, processor = build_tiny_model("qwen2_5_vl")
    return TransformersBackend(model.eval(), processor, name="tiny-qwen2_5_vl", max_new_tokens=8)


def frames(n: int = 2) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (56, 56, 3), dtype=np.uint8) for _ in range(n)]


def question(text: str = "What moves?") -> list[dict[str, Any]]:
    return [{"role": "user", "content": [*frame_parts(frames(), [0.0, 5.0]), text_part(text)]}]


def test_real_model_served_over_http_and_cached_on_disk(
    tiny_backend: TransformersBackend, tmp_path: Path
) -> None:
    with ChatServer(tiny_backend) as server:
        backend = OpenAIBackend(server.base_url, "tiny-qwen2_5_vl", api_key="secret")
        client = ModelClient(backend, cache_dir=tmp_path / "cache")
        reply = client.chat(question(), max_tokens=8)
        again = ModelClient(backend, cache_dir=tmp_path / "cache").chat(question(), max_tokens=8)

    assert len(server.requests) == 1, "the second client must answer from the disk cache"
    sent = server.requests[0]
    assert image_count(sent) == 2 and "[5.0s]" in message_text(sent)
    assert sent["messages"][0]["content"][1]["image_url"]["url"].startswith("data:image/jpeg;base64,")
    assert server.auth_headers == ["Bearer secret"]
    assert reply.prompt_tokens > 20 and 0 < reply.completion_tokens <= 8  # the model really ran
    assert (again.text, again.cached, reply.cached) == (reply.text, True, False)
    assert client.counters.calls == 1 and client.counters.prompt_tokens == reply.prompt_tokens
    # The in-process backend answers the same canonical payload with the same text (greedy decoding).
    local = ModelClient(tiny_backend).chat(question(), max_tokens=8)
    assert local.text == reply.text


def test_different_requests_get_different_cache_entries(tmp_path: Path) -> None:
    client = ModelClient(CallableBackend(lambda p: message_text(p), "echo"), cache_dir=tmp_path)
    assert client.chat(question("one")).text.endswith("one")
    assert client.chat(question("two")).text.endswith("two")
    assert client.chat(question("one"), temperature=0.7, seed=1).cached is False
    assert client.chat(question("one")).cached is True
    assert (client.counters.calls, client.counters.cached) == (3, 1)


def test_transient_http_failures_are_retried_with_backoff() -> None:
    sleeps: list[float] = []
    with ChatServer(lambda p: "ok") as server:
        client = ModelClient(
            OpenAIBackend(server.base_url, "m"), retries=3, backoff_s=0.5, sleep=sleeps.append
        )
        server.fail_next(2, status=503)
        assert client.chat(question()).text == "ok"
        server.fail_next(1, status=400)
        with pytest.raises(RequestError, match="HTTP 400"):
            client.chat(question("other"))
        server.fail_next(5, status=429)
        with pytest.raises(TransientError, match="HTTP 429"):
            client.chat(question("third"))
    assert sleeps == [0.5, 1.0, 0.5, 1.0, 2.0]
    assert client.counters.calls == 1 and client.counters.retries == 5


def test_unreachable_endpoint_is_a_transient_error() -> None:
    client = ModelClient(
        OpenAIBackend("http://127.0.0.1:9/v1", "m", timeout=2), retries=1, sleep=lambda s: None
    )
    with pytest.raises(TransientError):
        client.chat(question())
    assert client.counters.failures == 2


def test_concurrency_is_bounded() -> None:
    active, peak, lock = [0], [0], threading.Lock()

    def slow(payload: Mapping[str, Any]) -> str:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.05)
        with lock:
            active[0] -= 1
        return "x"

    client = ModelClient(CallableBackend(slow, "slow"), max_concurrency=2)
    threads = [threading.Thread(target=client.chat, args=(question(str(i)),)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert peak[0] == 2 and client.counters.calls == 8


def test_json_reply_gets_one_repair_turn_then_a_clear_error(tmp_path: Path) -> None:
    def scripted(payload: Mapping[str, Any]) -> str:
        last = message_text(payload)
        if "could not be used" in last:
            return '```json\n{"answer": "B"}\n```' if "fixable" in message_text(payload, 0) else "still prose"
        return "Sure! The answer is B."

    client = ModelClient(CallableBackend(scripted, "s"), cache_dir=tmp_path)
    assert client.chat_json([{"role": "user", "content": "fixable"}]) == {"answer": "B"}
    assert client.counters.repairs == 1
    with pytest.raises(StructuredOutputError, match="invalid JSON after one repair") as info:
        client.chat_json([{"role": "user", "content": "hopeless"}])
    assert info.value.reply == "still prose"

    def needs_key(value: Any) -> None:
        if "answer" not in value:
            raise ValueError("missing key 'answer'")

    shape = ModelClient(CallableBackend(lambda p: '{"other": 1}', "t"))
    with pytest.raises(StructuredOutputError, match="missing key 'answer'"):
        shape.chat_json([{"role": "user", "content": "x"}], check=needs_key)


def test_parse_json_reply_finds_json_inside_prose() -> None:
    assert parse_json_reply('Here you go: {"a": [1, 2]} hope it helps') == {"a": [1, 2]}
    assert parse_json_reply("[1, 2]") == [1, 2]
    with pytest.raises(ValueError, match="no valid JSON"):
        parse_json_reply("{not json}")
