"""What a procedural scene family produces: the clip's frames and questions whose answers it knows.

A family draws its parameters from a random generator, renders frames from exactly those parameters,
and writes its questions and rationales from the same parameters. Keeping the three together is what
makes every answer true: there is no second source of truth to drift out of sync with the pixels.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

WIDTH, HEIGHT = 192, 144
FPS = 8
SKILLS = ("VidR", "KnowVid", "KnowVidR")

Frames = Callable[[], Iterator[np.ndarray]]


@dataclass(frozen=True)
class Question:
    """One question about a scene.

    ``distractors`` non-empty makes it multiple choice: ``answer`` is then the correct option's text and
    the distractors are wrong option texts, most plausible first, so a layout that needs fewer options
    keeps the hardest ones. Empty ``distractors`` makes it open-ended with a short ``answer``.
    ``think`` derives the answer from what the clip shows (and, for knowledge skills, one domain fact).
    """

    skill: str
    text: str
    answer: str
    think: str
    knowledge_point: str | None = None
    distractors: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.skill not in SKILLS:
            raise ValueError(f"unknown skill {self.skill!r}")
        if self.answer in self.distractors or len(set(self.distractors)) != len(self.distractors):
            raise ValueError(f"distractors must be distinct and differ from the answer: {self!r}")

    @property
    def is_multiple_choice(self) -> bool:
        return bool(self.distractors)


@dataclass(frozen=True)
class Scene:
    """One clip and its questions (ordered VidR, KnowVid, KnowVidR).

    ``render`` draws the frames lazily (a clip is encoded as it is drawn, never held whole); ``facts`` are
    the drawn parameters, kept for inspection when a question looks wrong.
    """

    family: str
    subject: str
    discipline: str
    n_frames: int
    render: Frames
    questions: tuple[Question, ...]
    fps: int = FPS
    facts: dict[str, object] = field(default_factory=dict)

    @property
    def duration(self) -> float:
        return self.n_frames / self.fps


@dataclass(frozen=True)
class Family:
    """A kind of scene: its subject, discipline and the function that makes one from a generator."""

    name: str
    subject: str
    discipline: str
    make: Callable[[np.random.Generator], Scene]


def canvas(background: tuple[int, int, int]) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    """A blank frame to draw on; PIL drawing is exact and deterministic, which byte-identical output needs."""
    image = Image.new("RGB", (WIDTH, HEIGHT), background)
    return image, ImageDraw.Draw(image)


def pixels(image: Image.Image) -> np.ndarray:
    return np.array(image, dtype=np.uint8)


def disc(draw: ImageDraw.ImageDraw, x: float, y: float, r: float, fill: tuple[int, int, int]) -> None:
    draw.ellipse((x - r, y - r, x + r, y + r), fill=fill)


def seconds(t: float) -> str:
    """A time as the rationale writes it: ``1.5 s``, ``0.125 s``."""
    text = f"{t:.3f}".rstrip("0").rstrip(".")
    return f"{text} s"


def number(value: float, digits: int = 2) -> str:
    """A number without trailing zeros: 2.0 → ``2``, 0.5 → ``0.5``."""
    text = f"{value:.{digits}f}".rstrip("0").rstrip(".")
    return text if text != "-0" else "0"


ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth")


def listing(items: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def near_counts(n: int, *, low: int = 0, count: int = 9) -> tuple[str, ...]:
    """Wrong counts close to ``n`` (n±1, n±2, …), the mistakes a miscount makes."""
    out: list[str] = []
    step = 1
    while len(out) < count:
        for candidate in (n + step, n - step):
            if candidate >= low and len(out) < count:
                out.append(str(candidate))
        step += 1
    return tuple(out)


def either(rng: np.random.Generator, question: Question) -> Question:
    """The same question as multiple choice or, half of the time, open-ended (no options).

    Numeric answers read well both ways, and mixing the two keeps the corpus near the release's
    half-and-half split of problem types.
    """
    if question.distractors and rng.random() < 0.5:
        return Question(
            question.skill, question.text, question.answer, question.think, question.knowledge_point
        )
    return question


def tint(rng: np.random.Generator, base: tuple[int, int, int], spread: int = 8) -> tuple[int, int, int]:
    """A background colour near ``base``: clips with the same story still differ in bytes, so a video can
    never sit in two splits by accident."""
    jitter = rng.integers(-spread, spread + 1, size=3)
    return tuple(int(np.clip(c + d, 0, 255)) for c, d in zip(base, jitter, strict=True))  # type: ignore[return-value]
