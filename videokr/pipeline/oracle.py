"""An offline oracle for the construction chain: a loopback OpenAI-compatible server that answers every
pipeline request about sample-corpus clips from their procedural ground truth.

The chain can then run end to end with no model and no network, and every filter has a known right
answer to drop: `prepare_sample_run` lays out clips of the sample corpus as collected candidates (with a
knowledge-bank slice, a licence manifest and seed examples) plus candidates that must leave at a given
stage (no licence, an off-topic title, footage of another subject). `OracleServer` recognises the clip
in a request by its frames (nearest ground-truth frame) and the example by its question text, and
answers as a perfect model would, except for a configurable, deterministic share of wrong answers
(`Faults.wrong_share`), replies that are not JSON (`Faults.malformed_share`, repaired on the repair
turn) and questions a blind model can guess (`Faults.guessable_share`). Tests and ``bench.pipeline``
compute the expected drops from the same rules (`OracleServer.expected`) and count what was asked.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import threading
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

from videokr.data.records import MULTIPLE_CHOICE, SKILLS, Record, read_records
from videokr.data.release import ClipStore
from videokr.pipeline.common import stable_id, write_jsonl

MODEL_STAGES = ("relevance", "visual-relevance", "safety", "generate", "verify", "filter-dependency",
                "filter-rationale")  # fmt: skip
SIGNATURE = 16  # frames are compared as 16×16 RGB thumbnails
TRAIN_DIR = "VideoKR-Train"
SFT_FILE = "VideoKR-COT-201K.jsonl"


@dataclass(frozen=True)
class Faults:
    """Shares of requests the oracle answers badly; which ones is a hash of (salt, kind, key)."""

    wrong_share: float = 0.0
    malformed_share: float = 0.0
    guessable_share: float = 0.0
    salt: str = "oracle"

    def draw(self, kind: str, key: str) -> float:
        digest = hashlib.sha256(f"{self.salt}\x1f{kind}\x1f{key}".encode()).digest()
        return int.from_bytes(digest[:8], "little") / 2**64


@dataclass
class ClipTruth:
    """What the oracle knows about one clip: subject and the questions written for it."""

    id: str
    path: str
    subject: str
    discipline: str
    questions: list[Record]
    thumbs: np.ndarray = field(default_factory=lambda: np.zeros((0, SIGNATURE * SIGNATURE * 3)))


@dataclass
class SampleRun:
    """Inputs of a chained run on sample clips, and the ground truth the oracle answers from."""

    folder: Path
    clips: Path
    manifest: Path
    bank: Path
    seeds: Path
    truth: dict[str, ClipTruth]
    expected_collect_drops: dict[str, str]  # candidate id → reason code
    offtopic: list[str]
    mismatched: list[str]

    def config(self, work_dir: Path, release_dir: Path, base_url: str, **extra: Any) -> dict[str, Any]:
        """A `videokr pipeline run` config for these inputs against `base_url` (dependency models a, b)."""
        return {
            "work_dir": str(work_dir),
            "release_dir": str(release_dir),
            "bank": str(self.bank),
            "collect": {"folder": str(self.clips), "manifest": str(self.manifest)},
            "seeds": str(self.seeds),
            "endpoint": {"base_url": base_url, "concurrency": 4},
            "models": {"default": "oracle", "filter-dependency": ["blind-a", "blind-b"]},
            "progress": False,
            **extra,
        }


def _thumb(image: Any) -> np.ndarray:
    from PIL import Image

    pil = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image, dtype=np.uint8))
    small = pil.convert("RGB").resize((SIGNATURE, SIGNATURE), Image.BILINEAR)
    return np.asarray(small, dtype=np.float32).reshape(-1)


def _clip_thumbs(path: str) -> np.ndarray:
    from videokr.vision.decode import sample_frames

    frames = sample_frames(path, fps=1000.0, max_frames=None).frames  # every frame
    return np.stack([_thumb(f) for f in frames])


def prepare_sample_run(sample_root: str | Path, folder: str | Path, *, clips: int = 6) -> SampleRun:
    """Candidates from the sample corpus's training clips (all three skills each) in `folder`.

    Besides `clips` good candidates: one clip with no manifest row and one whose licence forbids use
    (dropped when collected), one with an off-topic title (dropped by the metadata judge) and one filed
    under another subject's knowledge point with a title to match (dropped by the visual judge).
    """
    sample_root, folder = Path(sample_root), Path(folder)
    store = ClipStore(sample_root / TRAIN_DIR)
    by_video: dict[str, list[Record]] = {}
    for record in read_records(sample_root / TRAIN_DIR / SFT_FILE, "sft").records:
        by_video.setdefault(record.video, []).append(record)
    complete = [v for v, rs in by_video.items() if {r.skill for r in rs} == set(SKILLS) and len(rs) == 3]
    chosen = complete[: clips + 4]
    if len(chosen) < clips + 4:
        raise ValueError(f"the sample corpus has {len(complete)} clips with all skills; {clips + 4} needed")
    clip_dir = folder / "clips"
    clip_dir.mkdir(parents=True, exist_ok=True)
    truth: dict[str, ClipTruth] = {}
    bank: list[dict[str, Any]] = []
    manifest: list[dict[str, Any]] = []
    for video in chosen:
        records = sorted(by_video[video], key=lambda r: SKILLS.index(r.skill))
        ref = store.resolve(video)
        assert ref is not None, video
        path = clip_dir / Path(video).name
        ref.copy_to(path)
        first = records[0]
        clip_id = path.stem
        truth[clip_id] = ClipTruth(clip_id, str(path.resolve()), str(first.subject), str(first.discipline),
                                   records, _clip_thumbs(str(path)))  # fmt: skip
        point = next(r.knowledge_point for r in records if r.knowledge_point)
        kp_id = "kp-" + stable_id(first.subject, point)
        if all(row["id"] != kp_id for row in bank):
            bank.append({"id": kp_id, "discipline": first.discipline, "subject": first.subject,
                         "course": f"{first.subject} I", "lecture": "Demonstrations",
                         "knowledge_point": point})  # fmt: skip
        manifest.append({"file": path.name, "id": clip_id, "license": "CC-BY-4.0",
                         "title": f"{first.subject}: a short demonstration", "creator": "sample",
                         "source_url": None, "kp_id": kp_id})  # fmt: skip
    unlisted, unlicensed, offtopic, mismatched = (manifest[clips + i] for i in range(4))
    manifest.remove(unlisted)
    unlicensed["license"] = "All rights reserved"
    offtopic["title"] = "Holiday vlog: our trip to the sea"
    other = next(p for p in bank if p["subject"] != truth[mismatched["id"]].subject)
    mismatched.update(kp_id=other["id"], title=f"{other['subject']}: a short demonstration")
    write_jsonl(folder / "manifest.jsonl", manifest)
    write_jsonl(folder / "bank.jsonl", bank)
    return SampleRun(
        folder=folder,
        clips=clip_dir,
        manifest=folder / "manifest.jsonl",
        bank=folder / "bank.jsonl",
        seeds=sample_root / TRAIN_DIR / SFT_FILE,
        truth=truth,
        expected_collect_drops={unlisted["id"]: "license", unlicensed["id"]: "license"},
        offtopic=[offtopic["id"]],
        mismatched=[mismatched["id"]],
    )


# --------------------------------------------------------------------------------------------- answers


def _texts(payload: Mapping[str, Any]) -> str:
    content = payload["messages"][-1]["content"]
    if isinstance(content, str):
        return content
    return "\n".join(part["text"] for part in content if part["type"] == "text")


def _images(payload: Mapping[str, Any]) -> Iterator[Any]:
    from PIL import Image

    for message in payload["messages"]:
        if isinstance(message["content"], str):
            continue
        for part in message["content"]:
            if part["type"] == "image_url":
                data = part["image_url"]["url"].split(",", 1)[1]
                yield Image.open(io.BytesIO(base64.b64decode(data)))


class Oracle:
    """Answers pipeline requests from `truth`; `blind_models` answer only what `Faults` makes guessable."""

    def __init__(
        self, run: SampleRun, faults: Faults, *, blind_models: tuple[str, ...] = ("blind-a", "blind-b")
    ):
        self.run = run
        self.truth = run.truth
        self.faults = faults
        self.blind_models = blind_models

    # -- the rules (tests compute expected drops from these) --

    def unsafe(self, clip_id: str) -> bool:
        return self.faults.draw("safety", clip_id) < self.faults.wrong_share

    def invalid_generation(self, clip_id: str, skill: str) -> bool:
        return self.faults.draw("generate", f"{clip_id}/{skill}") < self.faults.wrong_share

    def misanswered(self, question: str) -> bool:
        return self.faults.draw("verify", question) < self.faults.wrong_share

    def guessable(self, question: str) -> bool:
        return self.faults.draw("guess", question) < self.faults.guessable_share

    def unsupported(self, question: str) -> bool:
        return self.faults.draw("rationale", question) < self.faults.wrong_share

    def malformed(self, payload: Mapping[str, Any]) -> bool:
        """A JSON request answered in prose (the repair turn, and free-text answers, never are)."""
        if len(payload["messages"]) > 1 or "Reply with JSON only" not in _texts(payload):
            return False
        key = json.dumps(payload, sort_keys=True)
        return self.faults.draw("malformed", key) < self.faults.malformed_share

    def expected(self) -> dict[str, set[str]]:
        """Ids each model stage must drop (candidate ids, then example ids), from the rules above."""
        out: dict[str, set[str]] = {k: set() for k in MODEL_STAGES}
        alive = [cid for cid in self.truth if cid not in self.run.expected_collect_drops]
        out["relevance"] = {cid for cid in alive if cid in self.run.offtopic}
        out["visual-relevance"] = {cid for cid in alive if cid in self.run.mismatched}
        alive = [cid for cid in alive if cid not in out["relevance"] | out["visual-relevance"]]
        out["safety"] = {cid for cid in alive if self.unsafe(cid)}
        alive = [cid for cid in alive if cid not in out["safety"]]
        for cid in alive:
            for record in self.truth[cid].questions:
                eid = f"{cid}-{record.skill}-0"
                if self.invalid_generation(cid, str(record.skill)):
                    out["generate"].add(eid)
                elif self.misanswered(record.question):
                    out["verify"].add(eid)
                elif self.guessable(record.question):
                    out["filter-dependency"].add(eid)
                elif self.unsupported(record.question):
                    out["filter-rationale"].add(eid)
        return out

    # -- answering --

    def clip_of(self, payload: Mapping[str, Any], among: list[str] | None = None) -> ClipTruth:
        """The clip (of `among`, default all) whose frames are nearest to all of the request's frames.

        Clips of one family look alike; every frame shown votes, each by its distance to the nearest
        frame of the clip.
        """
        shown = (
            np.stack([_thumb(image) for image in _images(payload)])
            if any(True for _ in _images(payload))
            else None
        )
        if shown is None:
            raise ValueError("this request shows no frame")
        best, best_distance = None, np.inf
        for cid in among or list(self.truth):
            thumbs = self.truth[cid].thumbs
            distance = np.abs(shown[:, None, :] - thumbs[None, :, :]).mean(axis=2).min(axis=1).mean()
            if distance < best_distance:
                best, best_distance = cid, distance
        assert best is not None
        return self.truth[best]

    def answer(self, payload: Mapping[str, Any]) -> str:
        if self.malformed(payload):
            return "Happy to help! The answer is yes."
        text = _texts(payload)
        if "Your reply could not be used" in text:
            payload = {**payload, "messages": payload["messages"][:1]}
            text = _texts(payload)
        model = str(payload.get("model"))
        if "Video title:" in text:
            subject = re.search(r"Knowledge point: .* \((.+)\)\.\nVideo title:", text)
            title = re.search(r"Video title: (.*)\n", text)
            relevant = bool(subject and title and subject.group(1).lower() in title.group(1).lower())
            return json.dumps({"relevant": relevant, "reason": "title" if relevant else "off-topic title"})
        if "Does the footage itself show" in text:
            subject = re.search(r'for the knowledge point ".*" \((.+)\)\.', text)
            relevant = bool(subject and subject.group(1) == self.clip_of(payload).subject)
            return json.dumps({"relevant": relevant, "reason": "footage of another subject"})
        if "unsafe to publish" in text:
            return json.dumps({"safe": not self.unsafe(self.clip_of(payload).id), "reason": "oracle"})
        skill = re.search(r"Skill to test: (\w+)", text)
        if skill:
            return self._generate(self.clip_of(payload), skill.group(1))
        if "Proposed reasoning:" in text:
            question = re.search(r"Question: (.*?)\n", text)
            bad = question is not None and self.unsupported(question.group(1))
            return json.dumps({"supported": not bad, "unsupported_step": "step 2" if bad else ""})
        among = [cid for cid, c in self.truth.items() if any(r.question in text for r in c.questions)]
        return self._answer_question(self.clip_of(payload, among), text, model)

    def _generate(self, clip: ClipTruth, skill: str) -> str:
        examples = []
        for record in clip.questions:
            if record.skill != skill:
                continue
            example: dict[str, Any] = {"question": record.question, "problem_type": record.problem_type,
                                       "answer": record.answer}  # fmt: skip
            if record.options:
                example["options"] = list(record.options)
            if self.invalid_generation(clip.id, skill):
                example["answer"] = "Z" if record.options else ""
            examples.append(example)
        return json.dumps({"examples": examples})

    def _answer_question(self, clip: ClipTruth, text: str, model: str) -> str:
        # Clips of one family ask the same question with different answers: find the clip first.
        record = next((r for r in clip.questions if r.question in text), None)
        if record is None:
            return "<answer>unknown</answer>"
        right = (
            self.guessable(record.question)
            if model in self.blind_models
            else not self.misanswered(record.question)
        )
        answer = record.answer
        if not right:
            if record.problem_type == MULTIPLE_CHOICE or record.options:
                letters = [chr(ord("A") + i) for i in range(len(record.options))]
                answer = next(letter for letter in letters if letter != record.answer)
            else:
                answer = "something else entirely"
        return f"<think>{record.think or 'From the frames.'}</think><answer>{answer}</answer>"


# --------------------------------------------------------------------------------------------- server


class OracleServer:
    """``with OracleServer(oracle) as server:`` an OpenAI-compatible endpoint at `server.base_url`.

    `answered` counts every answered request by its body's hash. With `hold_after` set, requests after
    that many wait unanswered (`waiting` counts them) until `abandon()` closes them unanswered and
    uncounted: a test kills the run while they hang, and a request nobody received was not made.
    """

    def __init__(self, oracle: Oracle, *, hold_after: int | None = None) -> None:
        self.oracle = oracle
        self.hold_after = hold_after
        self.answered: Counter[str] = Counter()
        self.admitted = 0
        self.waiting = 0
        self.failures: list[int] = []  # statuses the next requests get instead of an answer
        self._lock = threading.Lock()
        self._abandoned = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}/v1"

    def abandon(self) -> None:
        """Close every held request unanswered; later requests are answered again."""
        with self._lock:
            self.hold_after = None
        self._abandoned.set()

    def __enter__(self) -> OracleServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.abandon()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _send(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # readiness probe of the inference runner
                if self.path.rstrip("/") == "/v1/models":
                    self._send(200, {"object": "list", "data": [{"id": "oracle", "object": "model"}]})
                else:
                    self._send(404, {"error": {"message": f"no route {self.path}"}})

            def do_POST(self) -> None:
                if self.path.rstrip("/") != "/v1/chat/completions":
                    self._send(404, {"error": {"message": f"no route {self.path}"}})
                    return
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with server._lock:
                    server.admitted += 1
                    held = server.hold_after is not None and server.admitted > server.hold_after
                    server.waiting += held
                if held:
                    server._abandoned.wait()
                    self.close_connection = True
                    return
                with server._lock:
                    failure = server.failures.pop(0) if server.failures else None
                if failure is not None:
                    self._send(failure, {"error": {"message": "injected failure"}})
                    return
                payload = json.loads(body)
                text = server.oracle.answer(payload)
                prompt_tokens, completion_tokens = len(body) // 4, len(text.split())
                with server._lock:
                    server.answered[hashlib.sha256(body).hexdigest()] += 1
                self._send(200, {
                    "id": "oracle", "object": "chat.completion", "model": payload.get("model"),
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                 "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                              "total_tokens": prompt_tokens + completion_tokens},
                })  # fmt: skip

        return Handler
