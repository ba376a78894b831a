"""Which licences let a clip into a dataset that is published openly and used to train models.

VideoKR redistributes clips and trains on them, so a licence must allow redistribution, modification
(frames are resampled, re-encoded, cut) and commercial use (downstream models may be commercial). That
leaves public-domain dedications and the CC BY / CC BY-SA families. Everything else is rejected with the
reason, so a report can say *why* a video was left out:

- NonCommercial (NC): forbids the commercial use of models trained on the data.
- NoDerivatives (ND): re-encoding and cutting are adaptations.
- The standard YouTube licence: no redistribution outside YouTube.
- Missing or unrecognised: we never guess a licence.

YouTube's "Creative Commons" option is CC BY 3.0 (YouTube's own definition), which is what the Data API's
``status.license == "creativeCommon"`` means.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ACCEPTED: dict[str, str] = {
    "CC0-1.0": "CC0 1.0 Universal (public domain dedication)",
    "PDM-1.0": "Public Domain Mark 1.0",
    "CC-BY-2.0": "Creative Commons Attribution 2.0",
    "CC-BY-2.5": "Creative Commons Attribution 2.5",
    "CC-BY-3.0": "Creative Commons Attribution 3.0",
    "CC-BY-4.0": "Creative Commons Attribution 4.0",
    "CC-BY-SA-2.0": "Creative Commons Attribution-ShareAlike 2.0",
    "CC-BY-SA-3.0": "Creative Commons Attribution-ShareAlike 3.0",
    "CC-BY-SA-4.0": "Creative Commons Attribution-ShareAlike 4.0",
}
YOUTUBE_CC = "CC-BY-3.0"


@dataclass(frozen=True)
class LicenseDecision:
    """`license` is the canonical SPDX-style id when recognised; `reason` says why a licence is refused."""

    accepted: bool
    license: str | None
    reason: str | None = None


_TERMS = {
    "by": "BY", "attribution": "BY", "nc": "NC", "noncommercial": "NC", "nd": "ND", "noderivatives": "ND",
    "noderivs": "ND", "sa": "SA", "sharealike": "SA",
}  # fmt: skip
_NOISE = {
    "cc",
    "creative",
    "commons",
    "license",
    "licenses",
    "licence",
    "international",
    "unported",
    "generic",
}
_JOINED = {("non", "commercial"): "noncommercial", ("no", "derivatives"): "noderivatives",
           ("share", "alike"): "sharealike", ("no", "derivs"): "noderivs"}  # fmt: skip


def _canonical(raw: str) -> str | None:
    """An SPDX-style id (``CC-BY-SA-4.0``) for any common spelling, or None when it is not recognised."""
    text = raw.strip().lower()
    text = re.sub(r"^https?://creativecommons\.org/(licenses|publicdomain)/", "cc ", text)
    if text in {"creativecommon", "creative commons", "youtube-cc"}:
        return YOUTUBE_CC
    tokens = [t for t in re.split(r"[^a-z0-9.]+", text) if t]
    if tokens in (["cc0"], ["cc0", "1.0"], ["cc", "zero", "1.0"], ["public", "domain", "dedication"]):
        return "CC0-1.0"
    if tokens in (
        ["pdm"],
        ["pdm", "1.0"],
        ["cc", "mark", "1.0"],
        ["public", "domain"],
        ["public", "domain", "mark"],
    ):
        return "PDM-1.0"
    if not tokens or tokens[0] not in {"cc", "creative"}:
        return None
    merged: list[str] = []
    for token in tokens:
        if merged and (merged[-1], token) in _JOINED:
            merged[-1] = _JOINED[(merged[-1], token)]
        else:
            merged.append(token)
    terms: list[str] = []
    version = "?"
    for token in merged:
        if re.fullmatch(r"\d\.\d", token):
            version = token
        elif token in _TERMS:
            terms.append(_TERMS[token])
        elif token not in _NOISE:
            return None
    if "BY" not in terms:
        return None
    order = [t for t in ("BY", "NC", "ND", "SA") if t in terms]
    return "CC-" + "-".join(order) + f"-{version}"


def evaluate_license(raw: str | None) -> LicenseDecision:
    """Accept or refuse one licence string (SPDX id, CC URL, "CC BY-NC 4.0", YouTube API value …)."""
    if raw is None or not str(raw).strip():
        return LicenseDecision(False, None, "unknown: no licence given")
    text = str(raw).strip()
    if text.lower() in {"youtube", "standard youtube license", "standard-youtube-license"}:
        return LicenseDecision(
            False, "youtube", "standard YouTube licence: no redistribution outside YouTube"
        )
    if text.lower() in {"all rights reserved", "copyright", "proprietary"}:
        return LicenseDecision(False, None, "all rights reserved")
    canonical = _canonical(text)
    if canonical is None:
        return LicenseDecision(False, None, f"unknown: unrecognised licence {text!r}")
    if "-NC" in canonical:
        return LicenseDecision(
            False, canonical, "non-commercial (NC): forbids commercial use of trained models"
        )
    if "-ND" in canonical:
        return LicenseDecision(
            False, canonical, "no derivatives (ND): re-encoding and cutting are adaptations"
        )
    if canonical.endswith("-?"):
        return LicenseDecision(False, canonical, f"unknown: no licence version in {text!r}")
    if canonical not in ACCEPTED:
        return LicenseDecision(False, canonical, f"unknown: {canonical} is not on the accepted list")
    return LicenseDecision(True, canonical)


def attribution(title: str | None, creator: str | None, url: str | None, license_id: str) -> str:
    """The TASL line (title, author, source, licence) that CC BY requires with every reuse."""
    name = ACCEPTED.get(license_id, license_id)
    title_part = f'"{title}"' if title else "Untitled video"
    by = f" by {creator}" if creator else ""
    source = f" ({url})" if url else ""
    return f"{title_part}{by}{source}, licensed under {name} ({license_id})."
