"""A real OpenAI-compatible chat-completions server on 127.0.0.1 for the pipeline tests.

The pipeline's HTTP client must be exercised over a real socket, with real JSON bodies, status codes and
headers, not a patched function. `ChatServer` is a small `http.server` app that answers
``POST /v1/chat/completions`` by handing the decoded request to any backend: the in-process tiny model
(`TransformersBackend`) to prove a real model can be served, or a scripted function of the request for
tests whose point is a stage's keep/drop rules.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from videokr.pipeline.client import Backend, CallableBackend


def message_text(payload: Mapping[str, Any], index: int = -1) -> str:
    """All text of one message of a request (by default the last), images left out."""
    content = payload["messages"][index]["content"]
    if isinstance(content, str):
        return content
    return "\n".join(part["text"] for part in content if part["type"] == "text")


def image_count(payload: Mapping[str, Any]) -> int:
    return sum(
        1
        for message in payload["messages"]
        if not isinstance(message["content"], str)
        for part in message["content"]
        if part["type"] == "image_url"
    )


class ChatServer:
    """``with ChatServer(backend) as server: OpenAIBackend(server.base_url, ...)``.

    `fail_next(n, status)` makes the next `n` requests fail with `status` (retry tests). Every request
    body and its ``Authorization`` header are recorded in `requests` / `auth_headers`.
    """

    def __init__(self, backend: Backend | Callable[[Mapping[str, Any]], str]) -> None:
        self.backend: Backend = (
            backend if hasattr(backend, "complete") else CallableBackend(backend, "scripted")
        )  # type: ignore[arg-type]
        self.requests: list[dict[str, Any]] = []
        self.auth_headers: list[str | None] = []
        self._failures: list[int] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}/v1"

    def fail_next(self, count: int, status: int = 503) -> None:
        with self._lock:
            self._failures.extend([status] * count)

    def __enter__(self) -> ChatServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

            def _send(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                if self.path.rstrip("/") != "/v1/chat/completions":
                    self._send(404, {"error": {"message": f"no route {self.path}"}})
                    return
                payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server._lock:
                    server.requests.append(payload)
                    server.auth_headers.append(self.headers.get("Authorization"))
                    failure = server._failures.pop(0) if server._failures else None
                if failure is not None:
                    self._send(failure, {"error": {"message": "injected failure"}})
                    return
                if not isinstance(payload.get("messages"), list) or not payload["messages"]:
                    self._send(400, {"error": {"message": "messages must be a non-empty list"}})
                    return
                completion = server.backend.complete(payload)
                self._send(
                    200,
                    {
                        "id": f"chatcmpl-{len(server.requests)}",
                        "object": "chat.completion",
                        "created": 0,
                        "model": payload.get("model"),
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": completion.text},
                                "finish_reason": "stop",
                            }
                        ],
                        "usage": {
                            "prompt_tokens": completion.prompt_tokens,
                            "completion_tokens": completion.completion_tokens,
                            "total_tokens": completion.prompt_tokens + completion.completion_tokens,
                        },
                    },
                )

        return Handler
