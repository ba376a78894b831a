"""Write the sample corpus in the official release layout, file names and field spellings.

The dataset builders must not be able to tell this corpus from the real release, so it reproduces what
the official loaders read: SFT rows with ``video_path``, ``"A. text"`` options and tagged ``solution`` /
``think``; RL rows with ``problem_id`` and a ``videos`` list; evaluation rows from three source benchmarks
with options as a list or as a letter → text mapping under ``options`` or ``option`` and bare-letter
answers; training clips inside tars (one split into ``.part.aa``/``.part.ab``) and evaluation clips as
loose files. Everything derives from the seed, so the same seed gives byte-identical files.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from videokr.atomic import write_bytes_atomic
from videokr.data.records import MULTIPLE_CHOICE, OPEN_ENDED
from videokr.sample.archive import VIDEOS_DIR, write_release
from videokr.sample.encode import write_clip
from videokr.sample.families import FAMILIES
from videokr.sample.options import choose_options, letter_map, lettered
from videokr.sample.real import REAL_QUESTIONS, RealClip, real_clips
from videokr.sample.scene import SKILLS, Question, Scene

TRAIN_DIR = "VideoKR-Train"
EVAL_DIR = "VideoKR-Eval"
KINDS = ("sft", "rl", "eval")
PROCEDURAL_CLIPS = {"sft": 24, "rl": 18, "eval": 13}
CLIPS_PER_ARCHIVE = 15
SPLIT_PARTS = 2  # the last training archive is published as .part.aa + .part.ab
REAL_SUBJECT = ("Film Studies", "Humanities & Social Sciences")
PROCEDURAL_PROVENANCE = {
    "source_url": None,
    "creator": "videokr sample generator",
    "license": "CC0-1.0",
    "attribution": "Procedurally rendered by the videokr sample generator; dedicated to the public domain "
    "(CC0 1.0), no attribution required.",
}
# Evaluation sources and how their rows spell options and answers (the official evaluation loader reads
# `option` before `options`, either as a list or a mapping, and `solution` before `answer`).
EVAL_STYLES = {
    "MMVU": {"options_key": "options", "mapping": False, "answer_key": "solution", "n_options": 5},
    "VideoMMMU": {"options_key": "option", "mapping": True, "answer_key": "answer", "n_options": 10},
    "SciVideoBench": {"options_key": "options", "mapping": True, "answer_key": "solution", "n_options": 10},
}
EVAL_PROBLEM_TYPES = {MULTIPLE_CHOICE: "multiple-choice", OPEN_ENDED: "open-ended"}


@dataclass
class PlannedClip:
    """One clip of the corpus: where it goes, what it shows and which questions it carries."""

    kind: str
    index: int
    name: str
    subject: str
    discipline: str
    duration: float
    questions: tuple[Question, ...]
    rng: np.random.Generator
    scene: Scene | None = None
    real: RealClip | None = None
    path: str = ""  # as rows name it: a tar member for training clips, a file under EVAL_DIR for evaluation
    dataset: str | None = None
    origin: str | None = None


@dataclass(frozen=True)
class SampleCorpus:
    """Where a generated corpus lies and what it holds, by release file (keys ``sft``, ``rl``, ``eval``)."""

    root: Path
    train_root: Path
    eval_root: Path
    seed: int
    files: dict[str, Path]
    rows: dict[str, int]
    clips: dict[str, int]
    problem_types: dict[str, dict[str, int]]
    archives: tuple[Path, ...]

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.root.rglob("*") if p.is_file())

    def summary(self) -> str:
        """A short table a person can check at a glance."""
        lines = [f"VideoKR sample corpus, seed {self.seed}, in {self.root}"]
        header = f"  {'file':<40} {'rows':>5} {'clips':>6} {'MC':>4} {'open':>5}"
        lines += [header, "  " + "-" * (len(header) - 2)]
        for kind in KINDS:
            name = self.files[kind].relative_to(self.root).as_posix()
            types = self.problem_types[kind]
            lines.append(
                f"  {name:<40} {self.rows[kind]:>5} {self.clips[kind]:>6} "
                f"{types.get(MULTIPLE_CHOICE, 0):>4} {types.get(OPEN_ENDED, 0):>5}"
            )
        parts = ", ".join(p.name for p in self.archives)
        lines.append(f"  training clips in {TRAIN_DIR}/{VIDEOS_DIR}: {parts}")
        lines.append(f"  {self.size_bytes() / 1e6:.1f} MB on disk")
        return "\n".join(lines)


def clip_name(seed: int, kind: str, index: int) -> str:
    """An 11-character id in the style of the release's video ids, stable for (seed, kind, index)."""
    digest = hashlib.sha256(f"videokr-sample:{seed}:{kind}:{index}".encode()).digest()
    name = base64.urlsafe_b64encode(digest).decode()[:11]
    return name if name[0].isalnum() else "v" + name[1:]


def _questions_for(questions: tuple[Question, ...], index: int) -> tuple[Question, ...]:
    """All three skills on even clips; odd clips drop one, cycling through the skills so each stays common."""
    if index % 2 == 0 or len(questions) < 3:
        return questions
    dropped = SKILLS[(index // 2) % 3]
    return tuple(q for q in questions if q.skill != dropped)


def _eval_source(discipline: str, counter: int) -> str:
    if discipline == "Natural Sciences":
        return "SciVideoBench"
    if discipline == "Healthcare":
        return "MMVU"
    return ("VideoMMMU", "MMVU")[counter % 2]


def plan(seed: int) -> list[PlannedClip]:
    """Decide every clip (family, parameters, questions, release path) from the seed; renders nothing."""
    rng = np.random.default_rng([seed, 0])
    families = list(FAMILIES)
    orders = {
        "sft": [families[i] for i in rng.permutation(2 * len(families)) % len(families)],
        "rl": families + [families[i] for i in rng.choice(len(families), 6, replace=False)],
        "eval": [*families, families[int(rng.integers(len(families)))]],
    }
    orders["rl"] = [orders["rl"][i] for i in rng.permutation(len(orders["rl"]))]
    orders["eval"] = [orders["eval"][i] for i in rng.permutation(len(orders["eval"]))]
    clips: list[PlannedClip] = []
    others = 0
    for code, kind in enumerate(KINDS, start=1):
        assert len(orders[kind]) == PROCEDURAL_CLIPS[kind]
        for index, family in enumerate(orders[kind]):
            clip_rng = np.random.default_rng([seed, code, index])
            scene = family.make(clip_rng)
            clip = PlannedClip(
                kind,
                index,
                clip_name(seed, kind, index),
                scene.subject,
                scene.discipline,
                scene.duration,
                _questions_for(scene.questions, index),
                clip_rng,
                scene=scene,
            )
            if kind == "eval":
                clip.dataset = _eval_source(scene.discipline, others)
                others += scene.discipline not in ("Natural Sciences", "Healthcare")
                clip.origin = "re-annotated" if rng.random() < 0.4 else "retained"
                prefix = "./" if clip.dataset == "VideoMMMU" else ""
                clip.path = f"{prefix}videos/{clip.dataset}/{clip.name}.mp4"
            clips.append(clip)
    for offset, real in enumerate(real_clips()):
        index = PROCEDURAL_CLIPS["sft"] + offset
        clips.append(
            PlannedClip(
                "sft",
                index,
                clip_name(seed, "sft", index),
                *REAL_SUBJECT,
                real.duration,
                REAL_QUESTIONS[real.name],
                np.random.default_rng([seed, 1, index]),
                real=real,
            )
        )
    train = [c for c in clips if c.kind != "eval"]
    for position, i in enumerate(rng.permutation(len(train))):
        train[i].path = f"videos_{position // CLIPS_PER_ARCHIVE:04d}/{train[i].name}.mp4"
    return clips


def _encode(clip: PlannedClip, staging: Path) -> bytes:
    if clip.real is not None:
        return clip.real.path.read_bytes()
    assert clip.scene is not None
    return write_clip(staging / f"{clip.name}.mp4", clip.scene.render(), clip.scene.fps).read_bytes()


def _provenance(clip: PlannedClip) -> dict[str, Any]:
    if clip.real is None:
        provenance = dict(PROCEDURAL_PROVENANCE)
    else:
        provenance = {
            "source_url": clip.real.source_url,
            "creator": clip.real.creator,
            "license": clip.real.license,
            "attribution": clip.real.attribution,
        }
    return provenance | {"duration": round(clip.duration, 3)}


def _labels(clip: PlannedClip, question: Question) -> dict[str, Any]:
    return {
        "skill": question.skill,
        "subject": clip.subject,
        "discipline": clip.discipline,
        "knowledge_point": question.knowledge_point,
    }


def _training_row(clip: PlannedClip, question: Question, kind: str) -> dict[str, Any]:
    problem_type = MULTIPLE_CHOICE if question.is_multiple_choice else OPEN_ENDED
    options: list[str] = []
    answer, think = question.answer, question.think
    if question.is_multiple_choice:
        texts, answer = choose_options(question, clip.rng, int(clip.rng.choice([4, 5])))
        options = lettered(texts)
        think = f"{think} That is option {answer}."
    row: dict[str, Any] = {"id" if kind == "sft" else "problem_id": "", "data_type": "video"}
    if kind == "sft":
        row["video_path"] = clip.path
    row |= {
        "question": question.text,
        "options": options,
        "problem_type": problem_type,
        "solution": f"<answer>{answer}</answer>",
    }
    if kind == "sft":
        row["think"] = f"<think>{think}</think>"
    else:
        row["videos"] = [clip.path]
    return row | _labels(clip, question) | _provenance(clip)


def _eval_row(clip: PlannedClip, question: Question) -> dict[str, Any]:
    assert clip.dataset is not None
    style = EVAL_STYLES[clip.dataset]
    row: dict[str, Any] = {"id": "", "video_path": clip.path, "question": question.text}
    answer = question.answer
    if question.is_multiple_choice:
        texts, answer = choose_options(question, clip.rng, int(style["n_options"]))
        row[str(style["options_key"])] = letter_map(texts) if style["mapping"] else lettered(texts)
        row["problem_type"] = EVAL_PROBLEM_TYPES[MULTIPLE_CHOICE]
    else:
        if style["options_key"] == "options":
            row["options"] = []
        row["problem_type"] = EVAL_PROBLEM_TYPES[OPEN_ENDED]
    row[str(style["answer_key"])] = answer
    row |= {"dataset": clip.dataset} | _labels(clip, question) | {"origin": clip.origin}
    return row | _provenance(clip)


def _rows(clips: list[PlannedClip], seed: int) -> dict[str, list[dict[str, Any]]]:
    rows: dict[str, list[dict[str, Any]]] = {kind: [] for kind in KINDS}
    for clip in clips:
        for question in clip.questions:
            if clip.kind == "eval":
                rows["eval"].append(_eval_row(clip, question))
            else:
                rows[clip.kind].append(_training_row(clip, question, clip.kind))
    shuffle = np.random.default_rng([seed, 4])
    for kind, prefix in (("sft", "cot"), ("rl", "rl")):
        rows[kind] = [rows[kind][i] for i in shuffle.permutation(len(rows[kind]))]
        key = "id" if kind == "sft" else "problem_id"
        for n, row in enumerate(rows[kind], start=1):
            row[key] = f"{prefix}-{n:06d}"
    numbers: Counter[str] = Counter()
    for row in rows["eval"]:
        numbers[row["dataset"]] += 1
        row["id"] = f"{row['dataset']}_{numbers[row['dataset']]:04d}"
    return rows


def _clear(train_root: Path, eval_root: Path) -> None:
    """Remove what an earlier run wrote (clip names depend on the seed), and nothing else."""
    videos = train_root / VIDEOS_DIR
    if videos.is_dir():
        for path in videos.glob("videos_*.tar*"):
            path.unlink()
    if (eval_root / "videos").is_dir():
        shutil.rmtree(eval_root / "videos")


def generate_sample_corpus(out_dir: Path, *, seed: int = 0, progress: bool = False) -> SampleCorpus:
    """Render and write the whole sample corpus under ``out_dir``; the same seed gives the same bytes.

    Re-running into the same folder replaces the earlier corpus, including clips an earlier seed wrote.
    """
    out_dir = Path(out_dir)
    train_root, eval_root = out_dir / TRAIN_DIR, out_dir / EVAL_DIR
    clips = plan(seed)
    data: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory(prefix="videokr-sample-") as staging:
        for clip in tqdm(clips, desc="rendering clips", unit="clip", disable=not progress):
            data[clip.name] = _encode(clip, Path(staging))
    digests = Counter(hashlib.sha256(b).hexdigest() for b in data.values())
    if max(digests.values()) > 1:
        raise RuntimeError("two clips came out byte-identical; SFT, RL and Eval would share a video")
    rows = _rows(clips, seed)

    _clear(train_root, eval_root)
    train_root.mkdir(parents=True, exist_ok=True)
    eval_root.mkdir(parents=True, exist_ok=True)
    archives: dict[str, list[tuple[str, bytes]]] = {}
    for clip in clips:
        if clip.kind != "eval":
            archives.setdefault(clip.path.split("/")[0], []).append((clip.path, data[clip.name]))
        else:
            target = eval_root / clip.path.removeprefix("./")
            target.parent.mkdir(parents=True, exist_ok=True)
            write_bytes_atomic(target, data[clip.name])
    written, files = write_release(train_root, eval_root, archives, rows, split_parts=SPLIT_PARTS)

    return SampleCorpus(
        root=out_dir,
        train_root=train_root,
        eval_root=eval_root,
        seed=seed,
        files=files,
        rows={kind: len(rows[kind]) for kind in KINDS},
        clips={kind: sum(c.kind == kind for c in clips) for kind in KINDS},
        problem_types={kind: dict(Counter(_problem_type(r) for r in rows[kind])) for kind in KINDS},
        archives=tuple(written),
    )


def _problem_type(row: dict[str, Any]) -> str:
    return MULTIPLE_CHOICE if row["problem_type"] in (MULTIPLE_CHOICE, "multiple-choice") else OPEN_ENDED


def sample_command(out: Path, seed: int = 0) -> SampleCorpus:
    """``videokr sample OUT [--seed N]``: generate with a progress bar and print a summary table."""
    started = time.perf_counter()
    corpus = generate_sample_corpus(Path(out), seed=seed, progress=True)
    print(corpus.summary())
    print(f"  generated in {time.perf_counter() - started:.1f} s")
    return corpus
