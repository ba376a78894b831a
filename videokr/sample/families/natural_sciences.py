"""Natural Sciences scenes: a flame test (Chemistry), a pendulum (Physics), a growing culture (Biology).

Each answer hangs on something that happens over time — which colour follows which, how often the bob
returns, how often the cells double — and the knowledge questions add one textbook fact on top.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from videokr.sample.scene import (
    FPS,
    ORDINALS,
    Family,
    Question,
    Scene,
    canvas,
    disc,
    either,
    listing,
    near_counts,
    number,
    pixels,
    seconds,
    tint,
)

DISCIPLINE = "Natural Sciences"

# Element → (flame colour name, RGB drawn). Colours are far apart in hue so the sequence can be read back
# from the decoded pixels; chemically these are the textbook flame colours of each ion.
FLAME_COLOURS: dict[str, tuple[str, tuple[int, int, int]]] = {
    "Sodium": ("yellow", (255, 214, 10)),
    "Potassium": ("lilac", (190, 130, 255)),
    "Lithium": ("crimson", (215, 15, 75)),
    "Copper": ("blue-green", (20, 210, 170)),
    "Calcium": ("orange-red", (255, 105, 15)),
}
BURNER_BLUE = (60, 100, 255)
ALKALI_METALS = {"Sodium", "Potassium", "Lithium"}
NON_COLOURING = ("Magnesium", "Aluminium", "Iron", "Silver", "Nickel")
EXTRA_COLOUR_NAMES = ("blue", "white", "apple-green", "violet")
FLAME_GAP, FLAME_HOLD = 4, 8  # frames with the bare flame, frames with a sample in it
FLAME_PATCH = (slice(64, 75), slice(92, 101))  # rows, columns always inside the outer flame


def article(word: str) -> str:
    return "An" if word[0] in "aeiou" else "A"


def flame_segments(count: int) -> list[tuple[int, int]]:
    """[start, end) frames of each sample in the flame; the bare blue flame burns in between."""
    return [
        (FLAME_GAP + i * (FLAME_GAP + FLAME_HOLD), FLAME_GAP + i * (FLAME_GAP + FLAME_HOLD) + FLAME_HOLD)
        for i in range(count)
    ]


def make_flame_test(rng: np.random.Generator) -> Scene:
    count = int(rng.choice([3, 4]))
    elements = [str(e) for e in rng.choice(list(FLAME_COLOURS), size=count, replace=False)]
    segments = flame_segments(count)
    n_frames = count * (FLAME_GAP + FLAME_HOLD) + FLAME_GAP
    flicker = rng.integers(-4, 5, size=n_frames)

    def colour_at(frame: int) -> tuple[int, int, int]:
        for element, (start, end) in zip(elements, segments, strict=True):
            if start <= frame < end:
                return FLAME_COLOURS[element][1]
        return BURNER_BLUE

    background = tint(rng, (25, 25, 30))

    def render() -> Iterator[np.ndarray]:
        for f in range(n_frames):
            image, draw = canvas(background)
            draw.rectangle((86, 112, 106, 143), fill=(110, 110, 120))
            draw.rectangle((82, 108, 110, 113), fill=(140, 140, 150))
            outer = colour_at(f)
            inner = tuple(int(0.55 * c + 0.45 * 255) for c in outer)
            draw.ellipse((83, 46 + int(flicker[f]), 109, 110), fill=outer)
            draw.ellipse((91, 84, 101, 108), fill=inner)
            if outer != BURNER_BLUE:
                draw.line((175, 52, 106, 86), fill=(175, 175, 175), width=2)
                draw.ellipse((100, 83, 108, 91), outline=(175, 175, 175), width=2)
            yield pixels(image)

    colours = [FLAME_COLOURS[e][0] for e in elements]
    timeline = "; ".join(
        f"from {seconds(a / FPS)} to {seconds(b / FPS)} a sample turns it {c}"
        for c, (a, b) in zip(colours, segments, strict=True)
    )
    seen = f"The bare flame is blue. {timeline[0].upper()}{timeline[1:]}."
    questions = []

    if rng.random() < 0.5:
        j = int(rng.integers(0, count - 1))
        others = [c for c in colours if c != colours[j + 1]]
        pool = others + [c for c, _ in FLAME_COLOURS.values() if c not in colours] + list(EXTRA_COLOUR_NAMES)
        questions.append(
            Question(
                "VidR",
                "Samples are held in the burner flame one after another. Which flame colour appears "
                f"immediately after the {colours[j]} flame?",
                colours[j + 1],
                f"{seen} The {colours[j]} flame is followed, after a short blue pause, by the "
                f"{colours[j + 1]} one.",
                distractors=tuple(dict.fromkeys(pool)),
            )
        )
    else:
        questions.append(
            Question(
                "VidR",
                "How many different samples are held in the burner flame, one after another, during the "
                "clip?",
                str(count),
                f"{seen} Each time the wire loop enters the flame its colour changes; that happens {count} "
                f"times, so {count} samples are tested.",
            )
        )

    k = int(rng.integers(0, count))
    element = elements[k]
    pool = [e for e in elements if e != element]
    pool += [e for e in FLAME_COLOURS if e not in elements] + list(NON_COLOURING)
    questions.append(
        Question(
            "KnowVid",
            f"Which element does the {ORDINALS[k]} sample held in the flame contain?",
            element,
            f"{seen} The {ORDINALS[k]} sample colours the flame {colours[k]}. {article(colours[k])} "
            f"{colours[k]} flame is characteristic of {element.lower()} ions, so the sample contains "
            f"{element.lower()}.",
            "Flame tests: characteristic flame colours of metal ions",
            tuple(pool),
        )
    )

    alkali = [e for e in elements if e in ALKALI_METALS]
    readings = listing([f"{c} ({e.lower()})" for c, e in zip(colours, elements, strict=True)])
    verdict = (
        f"{listing([e.lower() for e in alkali])} {'is' if len(alkali) == 1 else 'are'} in group 1"
        if alkali
        else "none of them is in group 1"
    )
    questions.append(
        Question(
            "KnowVidR",
            "How many of the samples tested in the clip contain an alkali metal (a group 1 element)?",
            str(len(alkali)),
            f"{seen} Reading the flames in order: {readings}. Of these, {verdict}, so "
            f"{len(alkali)} of the {count} samples contain an alkali metal.",
            "Flame test colours and the alkali metals (group 1)",
        )
    )
    return Scene(
        "flame_test",
        "Chemistry",
        DISCIPLINE,
        n_frames,
        render,
        tuple(questions),
        facts={"elements": elements, "segments": segments},
    )


# Period (s) → frames per period at 8 fps and the whole numbers of swings that fit in at most 8 s.
PENDULUM_PERIODS = {1.0: (8, (4, 5, 6)), 1.25: (10, (4, 5, 6)), 1.5: (12, (3, 4, 5)), 2.0: (16, (2, 3))}
PENDULUM_DISTRACTOR_PERIODS = (0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.25, 2.5, 3.0)
GRAVITY = 9.8
PIVOT = (96, 10)
ROD = 100


def pendulum_length(period: float) -> float:
    return GRAVITY * period**2 / (4 * math.pi**2)


def make_pendulum(rng: np.random.Generator) -> Scene:
    period = float(rng.choice(list(PENDULUM_PERIODS)))
    per, swing_counts = PENDULUM_PERIODS[period]
    swings = int(rng.choice(swing_counts))
    n_frames = swings * per + 1  # the last frame shows the bob back where it started
    side = int(rng.choice([-1, 1]))
    amplitude = math.radians(float(rng.uniform(18, 30)))
    colour = [(200, 40, 40), (40, 80, 200), (30, 140, 60)][int(rng.integers(0, 3))]

    background = tint(rng, (235, 235, 225))

    def render() -> Iterator[np.ndarray]:
        for f in range(n_frames):
            image, draw = canvas(background)
            draw.rectangle((60, 4, 132, 9), fill=(70, 70, 70))
            theta = side * amplitude * math.cos(2 * math.pi * f / per)
            x = PIVOT[0] + ROD * math.sin(theta)
            y = PIVOT[1] + ROD * math.cos(theta)
            draw.line((PIVOT[0], PIVOT[1], x, y), fill=(50, 50, 50), width=2)
            disc(draw, x, y, 8, colour)
            yield pixels(image)

    side_name = "left" if side < 0 else "right"
    returns = [seconds(i * period) for i in range(1, swings + 1)]
    seen = (
        f"The bob starts at its far {side_name} position at 0 s and is back at that same extreme at "
        f"{listing(returns)}."
    )
    frequency = 1 / period
    length = pendulum_length(period)
    count_q = Question(
        "VidR",
        "How many complete back-and-forth swings does the pendulum make during the clip?",
        str(swings),
        f"{seen} Each return to the starting extreme closes one full swing (out and back), so the pendulum "
        f"makes {swings} complete swings.",
        distractors=near_counts(swings, low=1),
    )
    freq_pool = [f"{number(2 / period)} Hz"] + [f"{number(1 / p)} Hz" for p in PENDULUM_DISTRACTOR_PERIODS]
    freq_answer = f"{number(frequency)} Hz"
    frequency_q = Question(
        "KnowVid",
        "What is the frequency of the pendulum's oscillation?",
        freq_answer,
        f"{seen} One full oscillation therefore takes {seconds(period)}, the period T. Frequency is the "
        f"number of oscillations per second, f = 1/T = 1/{number(period)} ≈ {freq_answer}.",
        "Period and frequency of an oscillation (f = 1/T)",
        tuple(dict.fromkeys(x for x in freq_pool if x != freq_answer)),
    )
    by_closeness = sorted(PENDULUM_DISTRACTOR_PERIODS, key=lambda p: (abs(p - period), p))
    length_answer = f"{length:.2f} m"
    length_q = Question(
        "KnowVidR",
        "Assuming the clip plays in real time and g = 9.8 m/s², how long is the pendulum (from the pivot to "
        "the centre of the bob)?",
        length_answer,
        f"{seen} So {swings} swings take {seconds(swings * period)} and the period is T = "
        f"{seconds(period)}. For a simple pendulum T = 2π√(L/g), so L = gT²/(4π²) = 9.8 × "
        f"{number(period)}² / 39.48 ≈ {length_answer}.",
        "Period of a simple pendulum: T = 2π√(L/g)",
        tuple(dict.fromkeys(f"{pendulum_length(p):.2f} m" for p in by_closeness if p != period)),
    )
    return Scene(
        "pendulum",
        "Physics",
        DISCIPLINE,
        n_frames,
        render,
        (either(rng, count_q), either(rng, frequency_q), either(rng, length_q)),
        facts={"period": period, "swings": swings, "side": side, "colour": colour},
    )


# Frames between divisions at 8 fps → the largest number of doublings that fits in 8 s.
DIVISION_INTERVALS = {12: 4, 16: 3, 24: 2}
MINUTES_PER_SECOND = 10
GENERATION_CHOICES = (5, 10, 15, 20, 25, 30, 40, 45, 60)


def _cell_layout(count: int, rng: np.random.Generator) -> list[tuple[float, float]]:
    cols = math.ceil(math.sqrt(count * 4 / 3))
    rows = math.ceil(count / cols)
    step = 30 if count <= 8 else 26
    x0 = 96 - (cols - 1) * step / 2
    y0 = 72 - (rows - 1) * step / 2
    jitter = rng.uniform(-3, 3, size=(count, 2))
    return [
        (x0 + (i % cols) * step + jitter[i, 0], y0 + (i // cols) * step + jitter[i, 1]) for i in range(count)
    ]


def make_bacterial_growth(rng: np.random.Generator) -> Scene:
    interval = int(rng.choice(list(DIVISION_INTERVALS)))
    start = int(rng.choice([1, 2]))
    max_rounds = DIVISION_INTERVALS[interval]
    rounds = int(rng.choice([r for r in range(2, max_rounds + 1) if start * 2**r <= 16]))
    n_frames = int((rounds + 0.5) * interval)
    layouts = {start * 2**g: _cell_layout(start * 2**g, rng) for g in range(rounds + 1)}

    background = tint(rng, (245, 238, 215))

    def render() -> Iterator[np.ndarray]:
        for f in range(n_frames):
            image, draw = canvas(background)
            generation = min(f // interval, rounds)
            cells = start * 2**generation
            radius = 10 if cells <= 8 else 8
            until_split = interval - f % interval
            splitting = generation < rounds and until_split <= 3
            for x, y in layouts[cells]:
                if splitting:
                    spread = (4 - until_split) * radius / 3
                    for dx in (-spread, spread):
                        disc(draw, x + dx, y, radius * 0.9, (60, 150, 70))
                        disc(draw, x + dx, y, radius * 0.3, (30, 90, 40))
                else:
                    disc(draw, x, y, radius, (60, 150, 70))
                    disc(draw, x, y, radius * 0.35, (30, 90, 40))
            yield pixels(image)

    end_count = start * 2**rounds
    division_times = [seconds(interval * j / FPS) for j in range(1, rounds + 1)]
    counts = " → ".join(str(start * 2**g) for g in range(rounds + 1))
    noun = "cell" if start == 1 else "cells"
    seen = f"The clip opens with {start} {noun}. The cells divide at {listing(division_times)}: {counts}."
    generation = interval / FPS * MINUTES_PER_SECOND
    gen_answer = f"{number(generation)} minutes"
    doublings_per_hour = round(60 / generation)
    later = end_count * 2**doublings_per_hour
    scale = "Each second of the clip corresponds to 10 minutes of real time."
    questions = (
        either(
            rng,
            Question(
                "VidR",
                "How many times does the number of cells double during the clip?",
                str(rounds),
                f"{seen} Every division event doubles the count, and there are {rounds} of them.",
                distractors=near_counts(rounds, low=1),
            ),
        ),
        either(
            rng,
            Question(
                "KnowVid",
                f"{scale} What is the generation (doubling) time of these bacteria?",
                gen_answer,
                f"{seen} Divisions come every {seconds(interval / FPS)} of the clip. The generation time is "
                f"the time the population takes to double: {number(interval / FPS)} s × 10 min/s = "
                f"{gen_answer}.",
                "Bacterial growth: generation (doubling) time",
                tuple(f"{g} minutes" for g in GENERATION_CHOICES if g != generation),
            ),
        ),
        Question(
            "KnowVidR",
            f"{scale} If the culture keeps growing exponentially at the same rate, how many cells will there "
            "be "
            "one hour after the clip ends?",
            str(later),
            f"{seen} So the clip ends with {end_count} cells, and they double every "
            f"{seconds(interval / FPS)} of clip time, i.e. every {gen_answer}. One hour holds 60 / "
            f"{number(generation)} = {doublings_per_hour} more doublings, so N = {end_count} × "
            f"2^{doublings_per_hour} = {later}.",
            "Exponential growth: N = N0 · 2^(t / generation time)",
        ),
    )
    return Scene(
        "bacterial_growth",
        "Biology",
        DISCIPLINE,
        n_frames,
        render,
        questions,
        facts={"start": start, "rounds": rounds, "interval": interval},
    )


FAMILIES = (
    Family("flame_test", "Chemistry", DISCIPLINE, make_flame_test),
    Family("pendulum", "Physics", DISCIPLINE, make_pendulum),
    Family("bacterial_growth", "Biology", DISCIPLINE, make_bacterial_growth),
)
