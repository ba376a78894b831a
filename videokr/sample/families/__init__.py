"""The scene families of the sample corpus, three subjects in each of the four disciplines."""

from __future__ import annotations

from videokr.sample.families import engineering, healthcare, humanities, natural_sciences
from videokr.sample.scene import Family

FAMILIES: tuple[Family, ...] = (
    natural_sciences.FAMILIES + engineering.FAMILIES + healthcare.FAMILIES + humanities.FAMILIES
)
BY_NAME: dict[str, Family] = {family.name: family for family in FAMILIES}

__all__ = ["BY_NAME", "FAMILIES"]
