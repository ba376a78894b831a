"""Engineering scenes: a gear train (Mechanical), resistor bands (Electrical), a binary counter (Computer).

Gear directions and speeds exist only across frames; the resistor's bands sit symmetrically so only the
order in which they appear says which end is read first; the counter's step shows only between frames.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator

import numpy as np

from videokr.sample.scene import (
    FPS,
    HEIGHT,
    WIDTH,
    Family,
    Question,
    Scene,
    canvas,
    disc,
    either,
    number,
    pixels,
    seconds,
    tint,
)

DISCIPLINE = "Engineering"

GEAR_FRAMES = 48  # 6 s
GEAR_TEETH = (8, 12, 16, 24)
DRIVER_REVOLUTIONS = (1.0, 1.5, 2.0)
DIRECTIONS = ("clockwise", "counter-clockwise")


def times(count: float) -> str:
    return "once" if count == 1 else f"{number(count)} times"


def _gear_train(rng: np.random.Generator) -> tuple[list[int], list[tuple[float, float, float]], float]:
    """Teeth, centres with radii, and driver revolutions such that the train fits the frame and the
    output gear turns a whole or half number of times (a clean answer) at most 60° per frame."""
    while True:
        count = int(rng.choice([2, 3, 4]))
        teeth = [int(t) for t in rng.choice(GEAR_TEETH, size=count)]
        revolutions = float(rng.choice(DRIVER_REVOLUTIONS))
        output = revolutions * teeth[0] / teeth[-1]
        radii = [1.6 * t for t in teeth]
        width = sum(2 * r + 4 for r in radii)
        if (output * 2) % 1 or output * 360 / GEAR_FRAMES > 60 or width > WIDTH - 8:
            continue
        x = (WIDTH - width) / 2
        gears = []
        for i, r in enumerate(radii):
            x += r + 2
            y = HEIGHT / 2 + (8 if i % 2 else -8) * (count > 2)
            gears.append((x, y, r))
            x += r + 2
        return teeth, gears, revolutions


def _gear_polygon(x: float, y: float, r: float, teeth: int, angle: float) -> list[tuple[float, float]]:
    points = []
    for k in range(teeth):
        base = angle + 2 * math.pi * k / teeth
        for offset, radius in ((-0.3, r - 1), (-0.15, r + 4), (0.15, r + 4), (0.3, r - 1)):
            a = base + offset * 2 * math.pi / teeth
            points.append((x + radius * math.cos(a), y + radius * math.sin(a)))
    return points


def make_gear_train(rng: np.random.Generator) -> Scene:
    teeth, gears, revolutions = _gear_train(rng)
    driver_sense = int(rng.choice([1, -1]))  # +1: clockwise on screen (image y grows downwards)
    senses = [driver_sense * (-1) ** i for i in range(len(teeth))]
    speeds = [revolutions * teeth[0] / t for t in teeth]  # revolutions during the clip
    phases = rng.uniform(0, 2 * math.pi, size=len(teeth))

    background = tint(rng, (215, 222, 230))

    def render() -> Iterator[np.ndarray]:
        for f in range(GEAR_FRAMES):
            image, draw = canvas(background)
            for i, (x, y, r) in enumerate(gears):
                angle = phases[i] + senses[i] * 2 * math.pi * speeds[i] * f / GEAR_FRAMES
                colour = (235, 140, 30) if i == 0 else (150, 155, 165)
                draw.polygon(_gear_polygon(x, y, r, teeth[i], angle), fill=colour, outline=(60, 60, 70))
                disc(draw, x, y, 3, (60, 60, 70))
                disc(draw, x + 0.6 * r * math.cos(angle), y + 0.6 * r * math.sin(angle), 3, (20, 20, 30))
            yield pixels(image)

    count = len(teeth)
    duration = GEAR_FRAMES / FPS
    last = DIRECTIONS[0] if senses[-1] > 0 else DIRECTIONS[1]
    driver = DIRECTIONS[0] if driver_sense > 0 else DIRECTIONS[1]
    rpm = revolutions * 60 / duration
    output = speeds[-1]
    chain = " → ".join(DIRECTIONS[0] if s > 0 else DIRECTIONS[1] for s in senses)
    seen = (
        f"The orange driving gear's marker dot goes round {times(revolutions)} {driver} in the "
        f"{seconds(duration)} clip."
    )
    direction_q = Question(
        "VidR",
        f"A train of {count} meshed gears is shown. In which direction does the gear at the right end turn?",
        last.capitalize(),
        f"Following the dark marker dot on each gear from frame to frame: {chain} from left to right, so the "
        f"right-most gear turns {last}.",
        distractors=(
            (DIRECTIONS[1] if last == DIRECTIONS[0] else DIRECTIONS[0]).capitalize(),
            "It does not turn",
            "It keeps reversing direction",
        ),
    )
    rpm_answer = f"{number(rpm)} rpm"
    rpm_pool = [f"{number(v)} rpm" for v in (revolutions, rpm * 2, rpm / 2, 60, 5, 12, 40, 45, 90, 120)]
    rpm_q = Question(
        "KnowVid",
        "Assuming the clip plays in real time, what is the rotational speed of the orange driving gear?",
        rpm_answer,
        f"{seen} Revolutions per minute = revolutions ÷ minutes = {number(revolutions)} ÷ "
        f"({number(duration)}/60) = {rpm_answer}.",
        "Rotational speed in revolutions per minute",
        tuple(dict.fromkeys(x for x in rpm_pool if x != rpm_answer)),
    )
    idlers = (
        " The gears in between are idlers: they change the direction but not the overall ratio."
        if count > 2
        else ""
    )
    output_q = Question(
        "KnowVidR",
        f"The orange driving gear has {teeth[0]} teeth and the gear at the right end has {teeth[-1]} teeth. "
        "How many revolutions does the right-end gear make during the clip?",
        number(output),
        f"{seen} Meshed gears pass the same number of teeth per unit time, so the output turns "
        f"{teeth[0]}/{teeth[-1]} times as fast as the driver.{idlers} Output revolutions = "
        f"{number(revolutions)} × {teeth[0]}/{teeth[-1]} = {number(output)}.",
        "Gear ratio: speed ratio is the inverse of the teeth ratio",
    )
    return Scene(
        "gear_train",
        "Mechanical Engineering",
        DISCIPLINE,
        GEAR_FRAMES,
        render,
        (direction_q, either(rng, rpm_q), output_q),
        facts={"teeth": teeth, "senses": senses, "revolutions": revolutions},
    )


# Colour code: name, digit/multiplier exponent, RGB drawn.
BAND_COLOURS: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ("black", (20, 20, 20)),
    ("brown", (120, 65, 25)),
    ("red", (215, 30, 30)),
    ("orange", (255, 140, 0)),
    ("yellow", (250, 230, 30)),
    ("green", (30, 170, 60)),
    ("blue", (30, 80, 220)),
    ("violet", (140, 60, 200)),
    ("grey", (128, 128, 128)),
    ("white", (245, 245, 245)),
)
BAND_X = (72, 96, 120)  # symmetric about the body's centre, so position never tells the reading end
BAND_FRAMES = (8, 16, 24)  # each band appears at 1 s, 2 s, 3 s
RESISTOR_FRAMES = 36
SUPPLY_VOLTS = 12


def ohms(value: float) -> str:
    for scale, unit in ((1e6, "MΩ"), (1e3, "kΩ")):
        if value >= scale:
            return f"{number(value / scale)} {unit}"
    return f"{number(value)} Ω"


def amps(value: float) -> str:
    for scale, unit in ((1, "A"), (1e-3, "mA")):
        if value >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value / 1e-6:.3g} µA"


def _resistance(digits: tuple[int, int, int]) -> int:
    return (10 * digits[0] + digits[1]) * 10 ** digits[2]


def make_resistor(rng: np.random.Generator) -> Scene:
    while True:
        first, second, multiplier = int(rng.integers(1, 7)), int(rng.integers(0, 10)), int(rng.integers(1, 5))
        bands = (first, second, multiplier)
        reversed_bands = (multiplier, second, first)
        if _resistance(bands) != _resistance(reversed_bands):
            break
    from_left = bool(rng.random() < 0.5)
    order = BAND_X if from_left else BAND_X[::-1]

    background = tint(rng, (70, 90, 110))

    def render() -> Iterator[np.ndarray]:
        for f in range(RESISTOR_FRAMES):
            image, draw = canvas(background)
            draw.line((20, 72, 172, 72), fill=(190, 190, 190), width=3)
            draw.rounded_rectangle((56, 56, 136, 88), radius=10, fill=(225, 200, 150))
            for value, x, appears in zip(bands, order, BAND_FRAMES, strict=True):
                if f >= appears:
                    draw.rectangle((x - 4, 56, x + 4, 88), fill=BAND_COLOURS[value][1])
            yield pixels(image)

    names = [BAND_COLOURS[b][0] for b in bands]
    end = "left" if from_left else "right"
    seen = (
        f"The bands appear one at a time: {names[0]} at 1 s nearest the {end} end, then {names[1]} at 2 s in "
        f"the middle, then {names[2]} at 3 s nearest the other end."
    )
    value = _resistance(bands)
    wrong = [
        _resistance(reversed_bands),
        _resistance((second, first, multiplier)) if second else None,
        value * 10,
        value // 10 if value >= 100 else None,
        _resistance((first, second, multiplier + 2)),
        _resistance((first, (second + 1) % 10, multiplier)),
    ]
    wrong_values = [w for w in dict.fromkeys(wrong) if w and w != value]
    pool = [n for n, _ in BAND_COLOURS if n != names[1]]
    colour_q = Question(
        "VidR",
        "Coloured bands are painted onto the resistor one at a time. What colour is the second band to "
        "appear?",
        names[1],
        f"{seen} The second band to appear is {names[1]}.",
        distractors=tuple(
            [n for n in (names[0], names[2]) if n != names[1]] + [n for n in pool if n not in names]
        ),
    )
    resistance_answer = ohms(value)
    reading = (
        f"Reading in that order, {names[0]} = {first} and {names[1]} = {second} are the digits and "
        f"{names[2]} "
        f"is the multiplier 10^{multiplier}, so R = {10 * first + second} × {10**multiplier:,} Ω = "
        f"{resistance_answer}."
    )
    resistance_q = Question(
        "KnowVid",
        "The bands are painted in reading order (first digit first). What is the resistor's resistance?",
        resistance_answer,
        f"{seen} {reading}",
        "Resistor colour code (two digits and a multiplier)",
        tuple(dict.fromkeys(ohms(w) for w in wrong_values if ohms(w) != resistance_answer)),
    )
    current_answer = amps(SUPPLY_VOLTS / value)
    current_q = Question(
        "KnowVidR",
        f"The bands are painted in reading order (first digit first). If this resistor is connected across a "
        f"{SUPPLY_VOLTS} V supply, what current flows through it?",
        current_answer,
        f"{seen} {reading} By Ohm's law I = V/R = {SUPPLY_VOLTS} V / {resistance_answer} ≈ {current_answer}.",
        "Resistor colour code and Ohm's law (I = V/R)",
        tuple(
            dict.fromkeys(
                amps(SUPPLY_VOLTS / w) for w in wrong_values if amps(SUPPLY_VOLTS / w) != current_answer
            )
        ),
    )
    return Scene(
        "resistor",
        "Electrical Engineering",
        DISCIPLINE,
        RESISTOR_FRAMES,
        render,
        (colour_q, either(rng, resistance_q), either(rng, current_q)),
        facts={"bands": bands, "from_left": from_left},
    )


BITS = 4
COUNTER_HOLD = 4  # frames per displayed value (0.5 s)
LED_X = (51, 81, 111, 141)


def _bits(value: int) -> str:
    return format(value, f"0{BITS}b")


def make_binary_counter(rng: np.random.Generator) -> Scene:
    step = int(rng.choice([1, 2, 3])) * int(rng.choice([1, -1]))
    start = int(rng.integers(0, 2**BITS))
    shown = int(rng.integers(9, 13))
    values = [(start + i * step) % 2**BITS for i in range(shown)]
    n_frames = shown * COUNTER_HOLD

    background = tint(rng, (30, 35, 40))

    def render() -> Iterator[np.ndarray]:
        for f in range(n_frames):
            image, draw = canvas(background)
            draw.rounded_rectangle((30, 50, 162, 94), radius=6, fill=(20, 90, 50))
            for bit, x in zip(_bits(values[f // COUNTER_HOLD]), LED_X, strict=True):
                disc(draw, x, 72, 11, (255, 45, 45) if bit == "1" else (80, 20, 20))
            yield pixels(image)

    readings = [f"{_bits(v)} = {v}" for v in values]
    seen = f"Reading the LEDs every {seconds(COUNTER_HOLD / FPS)}: {', '.join(readings)}."
    msb = [int(_bits(v)[0]) for v in values]
    switch_ons = sum(1 for a, b in itertools.pairwise(msb) if not a and b)
    sense = "up" if step > 0 else "down"
    step_answer = f"It counts {sense} by {abs(step)}"
    nxt = (values[-1] + step) % 2**BITS
    wrap = " (the 4-bit counter wraps around modulo 16)" if not 0 <= values[-1] + step < 2**BITS else ""
    legend = "The four LEDs show a 4-bit binary number (leftmost LED = most significant bit, lit = 1)."
    questions = (
        Question(
            "VidR",
            "How many times does the leftmost LED switch on during the clip (off, then lit)?",
            str(switch_ons),
            f"The leftmost LED over time: {' '.join('on' if b else 'off' for b in msb)}. It goes from off to "
            "on "
            f"{switch_ons} time{'s' if switch_ons != 1 else ''}.",
        ),
        Question(
            "KnowVid",
            f"{legend} How does the counter change at each step?",
            step_answer,
            f"{seen} Each step changes the value by {'+' if step > 0 else '-'}{abs(step)} (modulo 16), so it "
            f"counts {sense} by {abs(step)}.",
            "Binary number representation",
            tuple(
                f"It counts {s} by {k}"
                for s in ("up", "down")
                for k in (1, 2, 3, 4)
                if (s, k) != (sense, abs(step))
            ),
        ),
        Question(
            "KnowVidR",
            f"{legend} If it keeps going the same way, what decimal value will it show at the next step "
            "after "
            "the clip ends?",
            str(nxt),
            f"{seen} The step is {'+' if step > 0 else '-'}{abs(step)}, so after {values[-1]} comes "
            f"{nxt}{wrap}, "
            f"shown as {_bits(nxt)}.",
            "Binary counters and modular (wrap-around) arithmetic",
        ),
    )
    return Scene(
        "binary_counter",
        "Computer Engineering",
        DISCIPLINE,
        n_frames,
        render,
        questions,
        facts={"values": values, "step": step},
    )


FAMILIES = (
    Family("gear_train", "Mechanical Engineering", DISCIPLINE, make_gear_train),
    Family("resistor", "Electrical Engineering", DISCIPLINE, make_resistor),
    Family("binary_counter", "Computer Engineering", DISCIPLINE, make_binary_counter),
)
