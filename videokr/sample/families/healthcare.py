"""Healthcare scenes: an ECG monitor (Cardiology), breathing (Nursing), two drugs' elimination (Pharmacology).

Rates are the point: beats, breaths and halvings per unit of time exist only across frames, and the
clinical reading (bradycardia, tachypnoea, five half-lives) is the knowledge on top.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from videokr.sample.scene import (
    FPS,
    WIDTH,
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

DISCIPLINE = "Healthcare"

ECG_FRAMES = 48  # a 6-second strip: heart rate = QRS count × 10
ECG_WINDOW_S = 2.0
ECG_PX_PER_S = WIDTH / ECG_WINDOW_S
ECG_BASELINE = 84
ECG_GREEN = (40, 235, 90)
HEART_RATES = (40, 50, 70, 80, 90, 110, 120, 130, 140)
# (offset from the R peak in s, height in px (up is positive), width in s): P, Q, R, S, T waves.
ECG_WAVES = ((-0.16, 6, 0.025), (-0.025, -5, 0.008), (0.0, 48, 0.010), (0.025, -12, 0.009), (0.26, 12, 0.045))
RHYTHMS = ("Sinus bradycardia", "Normal sinus rhythm", "Sinus tachycardia")
OTHER_RHYTHMS = ("Ventricular fibrillation", "Asystole", "Atrial flutter")


def ecg_height(tau: float, beats: list[float]) -> float:
    """Trace height above the baseline (px) at time ``tau``; nothing is recorded before the clip starts."""
    return sum(
        amp * math.exp(-0.5 * ((tau - beat - offset) / width) ** 2)
        for beat in beats
        if abs(tau - beat) < 0.6
        for offset, amp, width in ECG_WAVES
    )


def rate_distractors(rate: int) -> tuple[int, ...]:
    """Wrong rates a reader gets by miscounting one beat, doubling, halving, or guessing a round number."""
    return (rate * 2, rate + 10, rate - 10, rate // 2, rate + 20, rate - 20, 60, 100, 150)


def rhythm(rate: int) -> str:
    return RHYTHMS[0] if rate < 60 else RHYTHMS[2] if rate > 100 else RHYTHMS[1]


def make_ecg(rng: np.random.Generator) -> Scene:
    rate = int(rng.choice(HEART_RATES))
    period = 60 / rate
    count = rate // 10
    first = float(rng.uniform(0.2, period - 0.18))
    beats = [first + k * period for k in range(count)]

    background = tint(rng, (5, 12, 8))

    def render() -> Iterator[np.ndarray]:
        for f in range(ECG_FRAMES):
            image, draw = canvas(background)
            now = f / FPS
            grid = math.floor((now - ECG_WINDOW_S) / 0.2)
            for k in range(grid, grid + 12):
                x = WIDTH - 1 - (now - 0.2 * k) * ECG_PX_PER_S
                draw.line((x, 0, x, 143), fill=(0, 55, 25))
            for y in range(4, 144, 20):
                draw.line((0, y, 191, y), fill=(0, 55, 25))
            points = []
            for x in range(WIDTH):
                tau = now - (WIDTH - 1 - x) / ECG_PX_PER_S
                if tau >= 0:
                    points.append((x, ECG_BASELINE - ecg_height(tau, beats)))
            if len(points) > 1:
                draw.line(points, fill=ECG_GREEN, width=2)
            yield pixels(image)

    times = listing([seconds(round(b, 2)) for b in beats])
    seen = (
        f"The trace scrolls from right to left and starts when the clip starts. Tall, narrow QRS spikes "
        f"arrive at about {times}: {count} complexes in the 6-second clip."
    )
    count_q = Question(
        "VidR",
        "The monitor starts tracing when the clip starts. How many QRS complexes (tall spikes) appear on the "
        "trace during the clip?",
        str(count),
        f"{seen}",
        distractors=near_counts(count, low=1),
    )
    rate_answer = f"{rate} bpm"
    rate_q = Question(
        "KnowVid",
        "The clip shows a 6-second rhythm strip in real time. What is the heart rate?",
        rate_answer,
        f"{seen} With the 6-second method the heart rate is the number of QRS complexes × 10 = {count} × 10 "
        f"= {rate_answer}.",
        "Heart rate from a rhythm strip (6-second method)",
        tuple(dict.fromkeys(f"{r} bpm" for r in rate_distractors(rate) if r != rate and r > 0)),
    )
    answer = rhythm(rate)
    rhythm_q = Question(
        "KnowVidR",
        "The clip shows a 6-second rhythm strip of a resting adult in real time. The rhythm is regular and "
        "every QRS complex follows a P wave. Which rhythm is this?",
        answer,
        f"{seen} So the rate is {count} × 10 = {rate} bpm. With a P wave before every QRS and a regular "
        "rhythm "
        f"the rhythm is sinus; below 60 bpm is bradycardia and above 100 bpm tachycardia, so at {rate} bpm "
        f"this is {answer.lower()}.",
        "Sinus rhythm, bradycardia and tachycardia thresholds",
        tuple(r for r in RHYTHMS if r != answer) + OTHER_RHYTHMS,
    )
    return Scene(
        "ecg",
        "Cardiology",
        DISCIPLINE,
        ECG_FRAMES,
        render,
        (either(rng, count_q), either(rng, rate_q), rhythm_q),
        facts={"rate": rate, "beats": beats},
    )


BREATH_FRAMES = 60  # 7.5 s: respiratory rate = breaths × 8 per minute
BREATH_CLASSES = (
    "Bradypnoea (abnormally slow breathing)",
    "Normal breathing (eupnoea)",
    "Tachypnoea (abnormally fast breathing)",
)
OTHER_BREATHING = (
    "Apnoea (no breathing)",
    "Cheyne-Stokes breathing (cycles of deepening breaths and pauses)",
)


def breathing_class(rate: int) -> str:
    return BREATH_CLASSES[0] if rate < 12 else BREATH_CLASSES[2] if rate > 20 else BREATH_CLASSES[1]


def make_breathing(rng: np.random.Generator) -> Scene:
    breaths = int(rng.choice([1, 2, 3, 4]))
    rate = breaths * 8
    skin = [(230, 190, 160), (190, 140, 105), (140, 95, 70)][int(rng.integers(0, 3))]

    def volume(f: int) -> float:
        return (1 - math.cos(2 * math.pi * breaths * f / BREATH_FRAMES)) / 2

    background = tint(rng, (228, 234, 240))

    def render() -> Iterator[np.ndarray]:
        for f in range(BREATH_FRAMES):
            image, draw = canvas(background)
            v = volume(f)
            disc(draw, 96, 24, 15, skin)
            half = 34 + 10 * v
            draw.rounded_rectangle((96 - half, 42, 96 + half, 140), radius=18, fill=skin)
            for side in (-1, 1):
                cx = 96 + side * (14 + 4 * v)
                w, h = 11 + 6 * v, 26 + 8 * v
                draw.ellipse((cx - w, 80 - h, cx + w, 80 + h), fill=(225, 120, 130))
            yield pixels(image)

    cycle = BREATH_FRAMES / breaths / FPS
    peaks = listing([seconds(round((k + 0.5) * cycle, 2)) for k in range(breaths)])
    seen = (
        f"The chest and lungs are smallest at 0 s, largest at {peaks}, and smallest again every "
        f"{seconds(cycle)}: {breaths} complete breath{'s' if breaths > 1 else ''} in the 7.5 s clip."
    )
    rate_answer = f"{rate} breaths per minute"
    pool = (rate * 2, rate // 2, rate + 4, rate - 4, 12, 16, 20, 24, 40)
    questions = (
        either(
            rng,
            Question(
                "VidR",
                "How many complete breaths (one inhalation and one exhalation) are taken during the clip?",
                str(breaths),
                seen,
                distractors=near_counts(breaths, low=1),
            ),
        ),
        either(
            rng,
            Question(
                "KnowVid",
                "The clip shows 7.5 seconds of breathing in real time. What is the respiratory rate?",
                rate_answer,
                f"{seen} Respiratory rate is breaths per minute: {breaths} "
                f"breath{'s' if breaths > 1 else ''} "
                f"per 7.5 s × 8 = {rate_answer}.",
                "Measuring respiratory rate",
                tuple(dict.fromkeys(f"{r} breaths per minute" for r in pool if r != rate and r > 0)),
            ),
        ),
        Question(
            "KnowVidR",
            "The clip shows 7.5 seconds of a resting adult's breathing in real time. How should this "
            "breathing "
            "rate be classified?",
            breathing_class(rate),
            f"{seen} That is {breaths} × 8 = {rate} breaths per minute. A resting adult normally breathes "
            "12–20 "
            f"times a minute, so {rate} per minute is {breathing_class(rate).split(' (')[0].lower()}.",
            "Normal adult respiratory rate (12–20 per minute)",
            tuple(c for c in BREATH_CLASSES if c != breathing_class(rate)) + OTHER_BREATHING,
        ),
    )
    return Scene(
        "breathing",
        "Nursing",
        DISCIPLINE,
        BREATH_FRAMES,
        render,
        questions,
        facts={"breaths": breaths},
    )


DOSE_FRAMES = (2, 3, 4, 5, 6)  # the dose is given between 0.25 s and 0.75 s
DRUG_FRAMES = 56  # 7 s; one second of clip is one hour
HALF_LIVES = (1.0, 1.5, 2.0, 2.5, 3.0)
HALF_LIFE_CHOICES = (0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0)
DRUGS = (("blue", (40, 90, 210), 56), ("orange", (240, 140, 20), 110))  # name, colour, bar x
BAR_BOTTOM, BAR_HEIGHT = 128, 100


def hours(value: float) -> str:
    return "1 hour" if value == 1 else f"{number(value)} hours"


def make_half_life(rng: np.random.Generator) -> Scene:
    while True:
        lives = [float(h) for h in rng.choice(HALF_LIVES, size=2, replace=False)]
        if abs(lives[0] - lives[1]) >= 0.5:
            break
    dose = int(rng.choice(DOSE_FRAMES))

    def level(drug: int, f: int) -> float:
        if f < dose:
            return 0.0
        return 2 ** (-((f - dose) / FPS) / lives[drug])

    background = tint(rng, (248, 248, 244))

    def render() -> Iterator[np.ndarray]:
        for f in range(DRUG_FRAMES):
            image, draw = canvas(background)
            draw.line((30, BAR_BOTTOM, 170, BAR_BOTTOM), fill=(60, 60, 60), width=2)
            for fraction in (0.5, 0.25, 0.125):
                y = BAR_BOTTOM - fraction * BAR_HEIGHT
                for x in range(30, 170, 8):
                    draw.line((x, y, x + 4, y), fill=(150, 150, 150))
            for i, (_, colour, x) in enumerate(DRUGS):
                height = level(i, f) * BAR_HEIGHT
                if height >= 1:
                    draw.rectangle((x, BAR_BOTTOM - height, x + 26, BAR_BOTTOM - 1), fill=colour)
            yield pixels(image)

    crossings = [dose / FPS + h for h in lives]
    faster = int(np.argmin(lives))
    seen_both = (
        f"Both bars jump to full height when the dose is given at {seconds(dose / FPS)}. The blue bar "
        "reaches the dashed "
        f"half-way line at about {seconds(crossings[0])} and the orange bar at about {seconds(crossings[1])}."
    )
    drug = int(rng.integers(0, 2))
    name, h = DRUGS[drug][0], lives[drug]
    quarter = dose / FPS + 2 * h
    quarter_note = f" and the quarter line at about {seconds(quarter)}" if quarter < DRUG_FRAMES / FPS else ""
    seen_one = (
        f"The {name} bar is full at {seconds(dose / FPS)}, when the dose is given, and falls to the half-way "
        f"line at about {seconds(dose / FPS + h)}{quarter_note}: it halves every {seconds(h)}."
    )
    scale = "Each second of the clip represents one hour."
    half_answer = hours(h)
    elim_answer = hours(5 * h)
    elim_pool = (h, 2 * h, 3 * h, 10 * h, 5 * lives[1 - drug], 24, 48, 0.5 * h)
    questions = (
        Question(
            "VidR",
            "Two drugs, shown by the blue and orange bars, are given at the same moment. Which bar drops "
            "below the "
            "dashed half-way line first?",
            f"The {DRUGS[faster][0]} bar",
            f"{seen_both} So the {DRUGS[faster][0]} bar drops below it first.",
            distractors=(
                f"The {DRUGS[1 - faster][0]} bar",
                "Both at the same moment",
                "Neither drops below it",
            ),
        ),
        either(
            rng,
            Question(
                "KnowVid",
                f"{scale} What is the elimination half-life of the drug shown by the {name} bar?",
                half_answer,
                f"{seen_one} The half-life is the time for the plasma concentration to halve: {number(h)} s "
                "of "
                f"clip, i.e. {half_answer}.",
                "Elimination half-life",
                tuple(hours(c) for c in HALF_LIFE_CHOICES if c != h),
            ),
        ),
        either(
            rng,
            Question(
                "KnowVidR",
                f"{scale} Roughly how long after the dose will the {name} drug be essentially eliminated "
                "from the "
                "body?",
                elim_answer,
                f"{seen_one} So its half-life is {half_answer}. A drug is considered essentially eliminated "
                "after "
                f"about five half-lives (about 97 % gone): 5 × {number(h)} = {elim_answer}.",
                "Drug elimination takes about five half-lives",
                tuple(dict.fromkeys(hours(c) for c in elim_pool if hours(c) != elim_answer)),
            ),
        ),
    )
    return Scene(
        "half_life",
        "Pharmacology",
        DISCIPLINE,
        DRUG_FRAMES,
        render,
        questions,
        facts={"half_lives": lives},
    )


FAMILIES = (
    Family("ecg", "Cardiology", DISCIPLINE, make_ecg),
    Family("breathing", "Nursing", DISCIPLINE, make_breathing),
    Family("half_life", "Pharmacology", DISCIPLINE, make_half_life),
)
