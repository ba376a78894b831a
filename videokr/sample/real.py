"""The real, freely licensed clips that ship with the package, their licences, and questions about them.

Procedural clips come from our own encoder and never exercise what real footage does (B-frames, an audio
track, camera noise, a hard cut). These two small clips do. Their questions were written by watching
them and check only what happens over time; the test suite re-checks the shot count from the pixels.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from videokr.sample.scene import Question

ASSETS = Path(__file__).parent / "assets" / "real"


@dataclass(frozen=True)
class RealClip:
    """One shipped clip with everything a row's provenance needs."""

    name: str
    path: Path
    title: str
    creator: str | None
    license: str
    license_url: str
    source_url: str
    source_file: str
    source_sha256: str
    attribution: str
    width: int
    height: int
    fps: int
    frames: int
    duration: float
    audio: bool


@cache
def real_clips() -> tuple[RealClip, ...]:
    """Every shipped real clip, in a fixed order, read from ``assets/real/clips.json``."""
    entries = json.loads((ASSETS / "clips.json").read_text(encoding="utf-8"))
    return tuple(RealClip(path=ASSETS / entry.pop("file"), **entry) for entry in entries)


SHOT_QUESTION = "How many distinct shots does the clip contain (a new shot starts at each hard cut)?"

REAL_QUESTIONS: dict[str, tuple[Question, ...]] = {
    "bigbuckbunny": (
        Question(
            "VidR",
            "What does the large rabbit do over the course of the clip?",
            "It climbs out of its burrow, stands up and stretches its arms",
            "At the start the rabbit lies half inside a burrow in the hillside on the left. During the first "
            "second and a half it pushes itself out and gets up; from about 1.5 s to 3.5 s it stands "
            "outside and "
            "stretches its arms wide, and then it lowers them and stands still. It never goes back in, runs "
            "off or lies down.",
            distractors=(
                "It climbs into its burrow and disappears",
                "It runs across the meadow from left to right",
                "It sits still and eats a flower",
                "It lies down and falls asleep",
                "It chases a butterfly into the trees",
            ),
        ),
        Question(
            "VidR",
            SHOT_QUESTION,
            "1",
            "The camera keeps the same view of the hillside, the burrow and the rocks in the background "
            "from the "
            "first frame to the last; the picture never changes abruptly. It is a single continuous shot: 1 "
            "shot.",
        ),
    ),
    "city": (
        Question(
            "VidR",
            SHOT_QUESTION,
            "2",
            "From 0 s to about 2.1 s the camera looks up at a cluster of lit glass towers against a purple "
            "night "
            "sky. At about 2.1 s the picture changes abruptly to a different view: two tall towers lit from "
            "below against a dark blue sky, which lasts to the end at 5 s. One hard cut, so two shots.",
            distractors=("1", "3", "4", "5"),
        ),
        Question(
            "VidR",
            "What happens about halfway through the clip?",
            "The view cuts abruptly from one group of skyscrapers to another",
            "The first part looks up at a cluster of lit towers against a purple sky. At about 2.1 s the "
            "image "
            "is replaced in a single frame by a different pair of towers against a dark blue sky: a hard "
            "cut. "
            "Nothing fades, the lights stay on and the camera does not zoom in.",
            distractors=(
                "The screen fades to black",
                "All the building lights switch off",
                "The camera zooms in on a single window",
                "Night turns into day",
            ),
        ),
    ),
}
