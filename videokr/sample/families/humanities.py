"""Humanities & Social Sciences scenes: regional GDP bars (Economics), a shadow stick (Geography), a
metronome light (Music).

A growth rate needs two years, a contraction hides in the middle years, a shadow's turning sense and its
shortest moment need the whole day, and tempo and metre are patterns in time.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator

import numpy as np

from videokr.sample.scene import (
    FPS,
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

DISCIPLINE = "Humanities & Social Sciences"

REGION_COLOURS = {
    "blue": (40, 90, 200),
    "red": (210, 40, 40),
    "green": (40, 160, 70),
    "orange": (240, 140, 20),
    "purple": (130, 60, 170),
}
YEARS = 5
YEAR_FRAMES = 10
BLEND_FRAMES = 3
CHART_BOTTOM, UNIT_PX = 128, 100 / 120  # 120 units fill 100 px; gridlines every 20 units


def _gdp_paths(rng: np.random.Generator) -> dict[str, list[int]]:
    """Yearly values per role: the biggest absolute gain, the fastest relative growth, one contraction and
    a steady grower — distinct winners, so each question has exactly one right answer."""
    while True:
        big_start = rng.uniform(60, 75)
        big = np.geomspace(big_start, big_start + rng.uniform(32, 40), YEARS)
        small_start = rng.uniform(12, 20)
        small = np.geomspace(small_start, small_start * rng.uniform(2.2, 2.8), YEARS)
        dip_start = rng.uniform(35, 50)
        dip_year = int(rng.integers(2, YEARS - 1))
        dip = dip_start * np.geomspace(1.0, 1.12, YEARS)
        dip[dip_year] = dip[dip_year - 1] * rng.uniform(0.78, 0.86)
        steady_start = rng.uniform(30, 55)
        steady = np.geomspace(steady_start, steady_start * rng.uniform(1.15, 1.3), YEARS)
        paths = {
            role: [round(float(v)) for v in values]
            for role, values in (
                ("absolute", big),
                ("relative", small),
                ("contraction", dip),
                ("steady", steady),
            )
        }
        gains = {r: p[-1] - p[0] for r, p in paths.items()}
        growth = {r: p[-1] / p[0] for r, p in paths.items()}
        falls = {r for r, p in paths.items() if any(b < a for a, b in itertools.pairwise(p))}
        rises = all(b > a for r, p in paths.items() if r != "contraction" for a, b in itertools.pairwise(p))
        if (
            max(gains, key=gains.__getitem__) == "absolute"
            and sorted(gains.values())[-2] <= gains["absolute"] - 6
            and max(growth, key=growth.__getitem__) == "relative"
            and sorted(growth.values())[-2] <= growth["relative"] - 0.3
            and falls == {"contraction"}
            and rises
            and gains["contraction"] > 0
        ):
            return paths


def make_bar_chart(rng: np.random.Generator) -> Scene:
    paths = _gdp_paths(rng)
    roles = list(paths)
    if rng.random() < 0.4:
        roles.remove("steady")
    colours = [str(c) for c in rng.choice(list(REGION_COLOURS), size=len(roles), replace=False)]
    colour_of = dict(zip(roles, colours, strict=True))
    order = [roles[i] for i in rng.permutation(len(roles))]
    n_frames = YEARS * YEAR_FRAMES
    slot = 160 / len(order)

    def value(role: str, f: int) -> float:
        year, into = divmod(f, YEAR_FRAMES)
        if year == 0 or into >= BLEND_FRAMES:
            return paths[role][year]
        a = (into + 1) / (BLEND_FRAMES + 1)
        return (1 - a) * paths[role][year - 1] + a * paths[role][year]

    background = tint(rng, (250, 250, 247))

    def render() -> Iterator[np.ndarray]:
        for f in range(n_frames):
            image, draw = canvas(background)
            for units in range(20, 121, 20):
                y = CHART_BOTTOM - units * UNIT_PX
                draw.line((16, y, 178, y), fill=(215, 215, 215))
            draw.line((16, CHART_BOTTOM, 178, CHART_BOTTOM), fill=(40, 40, 40), width=2)
            for i, role in enumerate(order):
                x = 18 + slot * i + slot / 2
                top = CHART_BOTTOM - value(role, f) * UNIT_PX
                draw.rectangle((x - 11, top, x + 11, CHART_BOTTOM - 1), fill=REGION_COLOURS[colour_of[role]])
            for year in range(YEARS):
                filled = year == f // YEAR_FRAMES
                disc(draw, 72 + 12 * year, 10, 3.5, (40, 40, 40) if filled else (200, 200, 200))
            yield pixels(image)

    def bar(role: str) -> str:
        return f"The {colour_of[role]} bar"

    others = [bar(r) for r in order]
    first = listing([f"{colour_of[r]} {paths[r][0]}" for r in order])
    last = listing([f"{colour_of[r]} {paths[r][-1]}" for r in order])
    seen = (
        f"Reading the bars against the gridlines (every 20 units), year 1 stands at about {first}; after "
        f"{YEARS - 1} yearly steps (one per {seconds(YEAR_FRAMES / FPS)}, counted by the dots at the top) "
        f"year {YEARS} stands at about {last}."
    )
    gains = listing([f"{colour_of[r]} {paths[r][-1] - paths[r][0]:+d}" for r in order])
    dip = paths["contraction"]
    dip_year = next(i for i in range(1, YEARS) if dip[i] < dip[i - 1])
    rates = listing(
        [
            f"{colour_of[r]} {100 * ((paths[r][-1] / paths[r][0]) ** (1 / (YEARS - 1)) - 1):.1f} %"
            for r in order
        ]
    )
    questions = (
        Question(
            "VidR",
            "The bars change year by year (the dots at the top count the years). Which bar gains the most "
            "height "
            "between the first year and the last?",
            bar("absolute"),
            f"{seen} The gains are {gains}, so the {colour_of['absolute']} bar gains the most.",
            distractors=(*tuple(b for b in others if b != bar("absolute")), "They all gain the same"),
        ),
        Question(
            "KnowVid",
            "Each bar shows one region's real GDP, year by year. Which region goes through an economic "
            "contraction (its GDP falls from one year to the next)?",
            bar("contraction"),
            f"The {colour_of['contraction']} bar goes {' → '.join(str(v) for v in dip)} over the {YEARS} "
            "years: "
            f"it falls in year {dip_year + 1} before recovering, and a fall in real GDP is a contraction. "
            "The "
            "other bars rise every year.",
            "Economic growth and contraction (change in real GDP)",
            (*tuple(b for b in others if b != bar("contraction")), "None of them"),
        ),
        Question(
            "KnowVidR",
            "Each bar shows one region's GDP, year by year. Which region has the highest average annual "
            "growth "
            "rate over the period?",
            bar("relative"),
            f"{seen} A growth rate is relative: the compound annual rate is (last / first)^(1/{YEARS - 1}) − "
            "1, "
            f"giving {rates}. The {colour_of['relative']} region grows fastest, even though the "
            f"{colour_of['absolute']} bar adds the most height.",
            "Compound annual growth rate versus absolute growth",
            (*tuple(b for b in others if b != bar("relative")), "They all grow at the same rate"),
        ),
    )
    return Scene(
        "bar_chart",
        "Economics",
        DISCIPLINE,
        n_frames,
        render,
        questions,
        facts={"paths": {colour_of[r]: paths[r] for r in roles}},
    )


SUNDIAL_FRAMES = 48  # 6 s from morning to afternoon
STICK_PX = 22
CENTRE = (96, 72)
EDGES = ("top", "right", "bottom", "left")  # north's screen edge; index × 90° is the clockwise rotation
COMPASS_8 = ("top", "upper right", "right", "lower right", "bottom", "lower left", "left", "upper left")


def _screen(azimuth_deg: float, rotation: int) -> tuple[float, float]:
    """Screen unit vector (y down) for a compass azimuth, seen from above, north at ``EDGES[rotation]``."""
    a = math.radians(azimuth_deg + 90 * rotation)
    return math.sin(a), -math.cos(a)


def _where(vector: tuple[float, float]) -> str:
    angle = math.degrees(math.atan2(vector[0], -vector[1])) % 360
    return COMPASS_8[round(angle / 45) % 8]


def make_sundial(rng: np.random.Generator) -> Scene:
    northern = bool(rng.random() < 0.5)
    rotation = int(rng.integers(0, 4))
    start, end = float(rng.uniform(-3.5, -1.5)), float(rng.uniform(1.5, 3.5))
    noon_elevation = math.radians(float(rng.uniform(35, 50)))
    speckles = rng.integers(0, [192, 144], size=(90, 2))

    def hour(f: int) -> float:
        return start + (end - start) * f / (SUNDIAL_FRAMES - 1)

    def shadow(f: int) -> tuple[float, float]:
        x = hour(f)
        azimuth = 15 * x if northern else 180 - 15 * x
        length = STICK_PX / math.tan(noon_elevation * math.cos(x * math.pi / 12))
        dx, dy = _screen(azimuth, rotation)
        return dx * length, dy * length

    background = tint(rng, (215, 192, 142))

    def render() -> Iterator[np.ndarray]:
        for f in range(SUNDIAL_FRAMES):
            image, draw = canvas(background)
            for sx, sy in speckles:
                draw.point((int(sx), int(sy)), fill=(190, 165, 120))
            dx, dy = shadow(f)
            draw.line((CENTRE[0], CENTRE[1], CENTRE[0] + dx, CENTRE[1] + dy), fill=(85, 70, 50), width=5)
            disc(draw, CENTRE[0] + dx, CENTRE[1] + dy, 2.5, (85, 70, 50))
            disc(draw, *CENTRE, 4, (120, 120, 125))
            yield pixels(image)

    sense = "clockwise" if northern else "counter-clockwise"
    other_sense = "counter-clockwise" if northern else "clockwise"
    noon_frame = round(-start / (end - start) * (SUNDIAL_FRAMES - 1))
    noon_edge = EDGES[(rotation + (0 if northern else 2)) % 4]
    north_edge = EDGES[rotation]
    path = ", then ".join(_where(shadow(f)) for f in (0, noon_frame, SUNDIAL_FRAMES - 1))
    seen = (
        f"Seen from above, the shadow points toward the {path} of the frame: it sweeps {sense}, and it is "
        f"shortest at about {seconds(noon_frame / FPS)}, pointing toward the {noon_edge} edge."
    )
    hemisphere = "Northern" if northern else "Southern"
    sun_noon = "south" if northern else "north"
    stem = (
        "A vertical stick's shadow is filmed from directly above, from morning to afternoon, outside the "
        "tropics."
    )
    questions = (
        Question(
            "VidR",
            "Seen from above, which way does the stick's shadow turn during the clip?",
            sense.capitalize(),
            seen,
            distractors=(other_sense.capitalize(), "It does not turn", "It turns one way and then back"),
        ),
        Question(
            "KnowVid",
            f"{stem} In which hemisphere was it filmed? Answer with one word.",
            hemisphere,
            f"{seen} A shadow points away from the sun. Outside the tropics the sun crosses the "
            f"{sun_noon}ern sky "
            f"from east to west in the {hemisphere} Hemisphere, so shadows there turn {sense}. The shadow "
            "turns "
            f"{sense}, so it was filmed in the {hemisphere} Hemisphere.",
            "Apparent motion of the sun and shadow direction by hemisphere",
        ),
        Question(
            "KnowVidR",
            f"{stem} Toward which edge of the frame is true north?",
            f"The {north_edge} edge",
            f"{seen} A {sense} turn means the {hemisphere} Hemisphere. The shortest shadow marks local solar "
            f"noon, when the sun is due {sun_noon} there, so the noon shadow points "
            f"{'north' if northern else 'south'}. It points toward the {noon_edge} edge, so north is toward "
            "the "
            f"{north_edge} edge.",
            "Solar noon: the shortest shadow points toward the pole",
            (*tuple(f"The {e} edge" for e in EDGES if e != north_edge), "It cannot be determined"),
        ),
    )
    return Scene(
        "sundial",
        "Geography",
        DISCIPLINE,
        SUNDIAL_FRAMES,
        render,
        questions,
        facts={"northern": northern, "rotation": rotation, "noon_frame": noon_frame},
    )


METRONOME_FRAMES = 64  # 8 s
# Marking → bpm drawn from and the range a listener's estimate must fall in (common textbook ranges).
TEMPI = {
    "Largo": ((46, 54), (40, 60)),
    "Adagio": ((67, 72), (66, 76)),
    "Andante": ((86, 100), (76, 108)),
    "Allegro": ((128, 150), (120, 168)),
}
OTHER_TEMPI = ("Presto", "Prestissimo", "Larghissimo")
LAMP = (96, 64)
ACCENT_RADIUS, BEAT_RADIUS = 26, 15


def metronome_flashes(bpm: int, first: float) -> list[tuple[int, int]]:
    """(start frame, length in frames) of each beat's flash inside the clip."""
    starts = []
    t = first
    while round(t * FPS) <= METRONOME_FRAMES - 2:
        starts.append(round(t * FPS))
        t += 60 / bpm
    length = 2 if 60 / bpm * FPS >= 4.5 else 1
    return [(s, length) for s in starts]


def make_metronome(rng: np.random.Generator) -> Scene:
    while True:
        marking = str(rng.choice(list(TEMPI)))
        (low, high), (accept_low, accept_high) = TEMPI[marking]
        bpm = int(rng.integers(low, high + 1))
        flashes = metronome_flashes(bpm, float(rng.uniform(0.25, 0.5)))
        metre = int(rng.choice([2, 3, 4]))
        starts = [s for s, _ in flashes]
        estimate = 60 * FPS * (len(starts) - 1) / (starts[-1] - starts[0])
        if len(flashes) >= 2 * metre + 1 and accept_low <= estimate <= accept_high:
            break
    state = [0] * METRONOME_FRAMES  # 0 off, 1 beat, 2 accented beat
    for k, (s, length) in enumerate(flashes):
        for f in range(s, s + length):
            state[f] = 2 if k % metre == 0 else 1

    background = tint(rng, (20, 20, 30))

    def render() -> Iterator[np.ndarray]:
        for f in range(METRONOME_FRAMES):
            image, draw = canvas(background)
            draw.rectangle((70, 112, 122, 124), fill=(70, 60, 50))
            if state[f] == 2:
                disc(draw, *LAMP, ACCENT_RADIUS, (255, 255, 225))
            elif state[f] == 1:
                disc(draw, *LAMP, BEAT_RADIUS, (255, 210, 50))
            else:
                disc(draw, *LAMP, BEAT_RADIUS, (60, 60, 72))
            yield pixels(image)

    count = len(flashes)
    times = listing([seconds(s / FPS) for s in starts])
    seen = f"The lamp flashes at {times}: {count} flashes in the {seconds(METRONOME_FRAMES / FPS)} clip."
    accents = listing([str(k + 1) for k in range(0, count, metre)])
    metre_names = {2: "duple", 3: "triple", 4: "quadruple"}
    gap = (starts[-1] - starts[0]) / FPS / (count - 1)
    ranges = "Largo is about 40–60 bpm, Adagio 66–76, Andante 76–108, Allegro 120–168 and Presto 168–200"
    questions = (
        either(
            rng,
            Question(
                "VidR",
                "How many times does the light flash during the clip?",
                str(count),
                seen,
                distractors=near_counts(count, low=1),
            ),
        ),
        Question(
            "KnowVid",
            "Each flash is a beat, and the bigger, brighter flashes mark the first beat of each bar. Which "
            "time "
            "signature does this pattern suggest?",
            f"{metre}/4",
            f"{seen} The big flashes are beats {accents}: every {ORDINAL_EVERY[metre]} beat is accented, so "
            "each "
            f"bar has {metre} beats — {metre_names[metre]} metre, written {metre}/4.",
            "Metre and time signatures",
            tuple(s for s in ("2/4", "3/4", "4/4", "5/4", "7/8") if s != f"{metre}/4"),
        ),
        Question(
            "KnowVidR",
            "The flashes mark the beats of a piece of music in real time. Which tempo marking best "
            "describes it?",
            marking,
            f"{seen} From the first flash to the last, {count - 1} intervals take "
            f"{seconds((starts[-1] - starts[0]) / FPS)}, about {gap:.2f} s per beat, i.e. about "
            f"{number(60 / gap, 0)} beats per minute. {ranges}, so the tempo is {marking}.",
            "Italian tempo markings and beats per minute",
            tuple(m for m in TEMPI if m != marking) + OTHER_TEMPI,
        ),
    )
    return Scene(
        "metronome",
        "Music",
        DISCIPLINE,
        METRONOME_FRAMES,
        render,
        questions,
        facts={"bpm": bpm, "metre": metre, "flashes": flashes},
    )


ORDINAL_EVERY = {2: "second", 3: "third", 4: "fourth"}

FAMILIES = (
    Family("bar_chart", "Economics", DISCIPLINE, make_bar_chart),
    Family("sundial", "Geography", DISCIPLINE, make_sundial),
    Family("metronome", "Music", DISCIPLINE, make_metronome),
)
