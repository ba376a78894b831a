"""Dataset card, attribution and statistics for a built repository, all computed from the rows written.

The card's YAML is the loader (configs + dataset_info.features) and its prose carries statistics that
are counted from the very rows in `metadata.parquet`, so the card cannot drift from the data. What it
says about clip licences is counted too: it calls the clips Creative Commons licensed only when every
clip is (`is_creative_commons`); a build that kept other licences (`--allow-non-cc`) gets a card that
gives the counts by licence and says which clips are not CC.
"""

from __future__ import annotations

import math
import re
import statistics
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from videokr.atomic import write_text_atomic
from videokr.data.croissant import write_croissant
from videokr.data.records import Kind, record_features

CITATION = """@misc{fu2026videokrknowledgereasoningintensivevideo,
      title={VideoKR: Towards Knowledge- and Reasoning-Intensive Video Understanding},
      author={Lin Fu and Zheyuan Yang and Yang Wang and Tingyu Song and Arman Cohan and Yilun Zhao},
      year={2026},
      eprint={2606.05259},
      archivePrefix={arXiv},
      primaryClass={cs.CV},
      url={https://arxiv.org/abs/2606.05259},
}"""
ANNOTATION_LICENSE = "apache-2.0"
UNKNOWN = "(unknown)"
BREAKDOWNS = {
    "problem_type": "Problem type",
    "skill": "Skill",
    "discipline": "Discipline",
    "subject": "Subject",
    "dataset": "Source benchmark",
    "origin": "Origin",
    "needs": "What answering needs",
    "license": "Clip license",
}
#: Breakdowns shown only when some row carries the label.
OPTIONAL_BREAKDOWNS = ("needs",)
DURATION_BUCKETS = (
    (60, "< 1 min"),
    (300, "1–5 min"),
    (600, "5–10 min"),
    (1800, "10–30 min"),
    (None, "≥ 30 min"),
)


_LICENSE_NOISE = {"license", "licence", "licenses", "licences", "international", "unported", "generic"}
_LICENSE_NOISE |= {"deed", "legalcode", "en"}
_CC_TERMS = {"nc", "nd", "sa"}
_VERSION = re.compile(r"^\d+(\.\d+)?$")
# The claim a spec's summary may make about every clip; dropped from a card whose clips are not all CC.
_CC_CLAIM = re.compile(r"\b(CC|Creative[ -]Commons)[ -]licen[cs]ed\s+", re.IGNORECASE)


def is_creative_commons(license: str | None) -> bool:
    """Whether a clip's licence string names a Creative Commons licence or public-domain tool.

    Accepted: CC0 and the Public Domain Mark, and every CC BY licence (BY, BY-SA, BY-NC, BY-ND, …, any
    version), spelled as SPDX ids (``CC-BY-SA-4.0``), prose (``CC BY-NC 4.0``, "Creative Commons
    Attribution 4.0") or deed URLs, plus YouTube's ``creativeCommon`` (CC BY 3.0). Anything else, and a
    missing licence, is not: a licence is never guessed.
    """
    if license is None or not license.strip():
        return False
    text = license.strip().lower()
    if text in {"creativecommon", "youtube-cc"}:
        return True
    text = re.sub(r"^https?://(www\.)?creativecommons\.org/(licenses|publicdomain)/", "cc ", text)
    text = text.replace("creative commons", "cc").replace("attribution", "by")
    for long, short in (("noncommercial", "nc"), ("non-commercial", "nc"), ("noderivatives", "nd")):
        text = text.replace(long, short)
    text = text.replace("noderivs", "nd").replace("sharealike", "sa").replace("share-alike", "sa")
    tokens = [t for t in re.split(r"[^a-z0-9.]+", text) if t and t not in _LICENSE_NOISE]
    rest: list[str]
    if tokens[:1] == ["cc0"]:
        rest = tokens[1:]
    elif tokens[:2] in (["cc", "zero"], ["cc", "0"], ["cc", "mark"], ["cc", "by"]):
        rest = [t for t in tokens[2:] if not (tokens[1] == "by" and t in _CC_TERMS)]
    elif tokens[:1] == ["pdm"] or tokens[:3] == ["public", "domain", "mark"]:
        rest = tokens[3:] if tokens[0] == "public" else tokens[1:]
    else:
        return False
    return all(_VERSION.match(t) for t in rest) and len(rest) <= 1


@dataclass(frozen=True)
class DatasetSpec:
    """What distinguishes one of the three datasets: its name, kind, split and card text."""

    kind: Kind
    name: str
    split: str
    pretty_name: str
    summary: str
    description: str
    task_categories: tuple[str, ...] = ("video-text-to-text", "visual-question-answering")
    size_note: str = ""


def size_category(rows: int) -> str:
    for limit, name in (
        (1_000, "n<1K"),
        (10_000, "1K<n<10K"),
        (100_000, "10K<n<100K"),
        (1_000_000, "100K<n<1M"),
    ):
        if rows < limit:
            return name
    return "1M<n<10M"


def compute_statistics(rows: list[dict[str, Any]], durations: dict[str, float | None]) -> dict[str, Any]:
    """Counts by every breakdown column, clip counts and the clip-duration distribution."""
    clips = {row["file_name"] for row in rows}
    stats: dict[str, Any] = {"rows": len(rows), "clips": len(clips)}
    for column in BREAKDOWNS:
        if rows and column in rows[0]:
            if column in OPTIONAL_BREAKDOWNS and all(row.get(column) is None for row in rows):
                continue  # a label only some corpora carry: no table of "(unknown)" for the others
            counts = Counter(row.get(column) or UNKNOWN for row in rows)
            stats[column] = dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    clip_licenses: dict[str, str | None] = {}
    for row in rows:
        clip_licenses.setdefault(row["file_name"], row.get("license"))
    by_license = Counter(value or UNKNOWN for value in clip_licenses.values())
    stats["clip_licenses"] = dict(sorted(by_license.items(), key=lambda kv: (-kv[1], kv[0])))
    stats["non_cc_clips"] = sum(1 for value in clip_licenses.values() if not is_creative_commons(value))
    known = sorted(d for d in durations.values() if d is not None and math.isfinite(d))
    buckets = Counter(_bucket(d) for d in known)
    stats["duration_s"] = {
        "clips_with_duration": len(known),
        "min": known[0] if known else None,
        "median": statistics.median(known) if known else None,
        "mean": statistics.fmean(known) if known else None,
        "max": known[-1] if known else None,
        "buckets": {name: buckets.get(name, 0) for _, name in DURATION_BUCKETS},
    }
    return stats


def _bucket(seconds: float) -> str:
    for limit, name in DURATION_BUCKETS:
        if limit is None or seconds < limit:
            return name
    raise AssertionError("unreachable")


def card_yaml(spec: DatasetSpec, num_rows: int, data_bytes: int, layout: str = "loose") -> dict[str, Any]:
    """The card's YAML: the loader (configs, features) and the size of the data files.

    ``download_size`` is more than information: ``datasets`` keys the cache of a local folder by its base
    name and this YAML, not by the files' content, so without a content-dependent value here a folder
    rebuilt in place with other rows would keep loading the old rows. A sharded split names only its
    ZIP shards, so the loader lists a few hundred files, never one per clip.
    """
    pattern = f"{spec.split}/*.zip" if layout == "shards" else f"{spec.split}/**"
    return {
        "pretty_name": spec.pretty_name,
        "license": ANNOTATION_LICENSE,
        "language": ["en"],
        "task_categories": list(spec.task_categories),
        "tags": ["video", "reasoning", "knowledge", "videokr"],
        "size_categories": [size_category(num_rows)],
        "configs": [
            {"config_name": "default", "data_files": [{"split": spec.split, "path": pattern}]},
        ],
        "dataset_info": {
            "features": record_features(spec.kind)._to_yaml_list(),
            "download_size": data_bytes,
        },
    }


def _table(title: str, counts: dict[str, int], total: int) -> str:
    lines = [f"### {title}", "", "| value | rows | share |", "|---|---:|---:|"]
    lines += [f"| {value} | {count} | {100 * count / total:.1f} % |" for value, count in counts.items()]
    return "\n".join(lines)


def _fmt(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds:.1f} s"


def honest_summary(spec: DatasetSpec, stats: dict[str, Any]) -> str:
    """The spec's summary, without a claim that the clips are CC-licensed unless every clip is."""
    if stats.get("non_cc_clips"):
        return _CC_CLAIM.sub("", spec.summary)
    return spec.summary


def license_statement(stats: dict[str, Any]) -> str:
    """What the card says about clip licences: counted from the clips, never a blanket claim."""
    clips = stats["clips"]
    counts = stats.get("clip_licenses", {})
    listed = ", ".join(f"{name} ({count})" for name, count in counts.items())
    non_cc = stats.get("non_cc_clips", 0)
    if not clips:
        return "This repository holds no clips."
    if not non_cc:
        return f"All {clips} clips are under Creative Commons licences or public-domain tools: {listed}."
    return (
        f"**{non_cc} of the {clips} clips are not under a Creative Commons licence** (or have no known "
        f"licence); they were kept on request (`--allow-non-cc`). Clips by licence: {listed}. Check a "
        "clip's own licence before any use of it."
    )


def render_card(spec: DatasetSpec, stats: dict[str, Any], repo_id: str) -> str:
    yaml_header = card_yaml(spec, stats["rows"], stats["data_bytes"], stats.get("layout", "loose"))
    front = yaml.safe_dump(yaml_header, sort_keys=False, allow_unicode=True)
    total = max(stats["rows"], 1)
    summary = honest_summary(spec, stats)
    sections = [f"# {spec.pretty_name}", "", summary, "", spec.description, ""]
    sections += [
        "## Usage",
        "",
        "```python",
        "from datasets import load_dataset",
        "",
        f'ds = load_dataset("{repo_id}", split="{spec.split}")',
        "row = ds[0]",
        'decoder = row["video"]            # a torchcodec VideoDecoder, decoded lazily',
        "frame = decoder.get_frame_at(0)   # .data is a C×H×W uint8 tensor",
        "",
        "# streaming: rows arrive without downloading the whole repository first",
        f'stream = load_dataset("{repo_id}", split="{spec.split}", streaming=True)',
        "```",
        "",
        "Multiple-choice letters are implied by the order of `options` (A, B, …). Unknown values are null.",
        "",
        "## Statistics",
        "",
        f"Computed from the data in this repository: **{stats['rows']} rows** over **{stats['clips']} clips**"
        f" ({stats['rows'] / max(stats['clips'], 1):.2f} questions per clip).",
        "",
    ]
    for column, title in BREAKDOWNS.items():
        if column in stats:
            sections += [_table(title, stats[column], total), ""]
    duration = stats["duration_s"]
    sections += [
        "### Clip duration",
        "",
        "| clips | min | median | mean | max |",
        "|---:|---:|---:|---:|---:|",
        f"| {duration['clips_with_duration']} | {_fmt(duration['min'])} | {_fmt(duration['median'])} | "
        f"{_fmt(duration['mean'])} | {_fmt(duration['max'])} |",
        "",
        "| duration | clips |",
        "|---|---:|",
        *[f"| {name} | {count} |" for name, count in duration["buckets"].items()],
        "",
        "## Licenses and attribution",
        "",
        "The annotations are released under Apache-2.0. Every clip keeps its own license and attribution, "
        "given per row in `license`, `creator`, `source_url` and `attribution`; `ATTRIBUTION.md` summarises "
        "them by license. Reuse of a clip must follow its license.",
        "",
        license_statement(stats),
        "",
        "## Citation",
        "",
        "```bibtex",
        CITATION,
        "```",
        "",
    ]
    return f"---\n{front}---\n\n" + "\n".join(sections)


def render_attribution(spec: DatasetSpec, rows: list[dict[str, Any]]) -> str:
    """Clips counted by licence, then by creator within each licence: a page that stays readable at
    85,000 clips. The per-clip list is data, not prose: every row carries its clip's `license`,
    `creator`, `source_url` and `attribution`."""
    clips: dict[str, dict[str, Any]] = {}
    for row in rows:
        clips.setdefault(row["file_name"], row)
    by_license: dict[str, Counter[str]] = {}
    for clip in clips.values():
        by_license.setdefault(clip.get("license") or UNKNOWN, Counter())[clip.get("creator") or UNKNOWN] += 1
    lines = [f"# Attribution — {spec.pretty_name}", "", "| license | clips | creators |", "|---|---:|---:|"]
    lines += [f"| {name} | {sum(c.values())} | {len(c)} |" for name, c in sorted(by_license.items())]
    lines += [
        "",
        "Each clip's licence, creator, source URL and attribution text are in the data: the `license`, "
        "`creator`, `source_url` and `attribution` columns of every row (e.g. "
        "`load_dataset(...).select_columns([...])`).",
    ]
    for name, creators in sorted(by_license.items()):
        lines += ["", f"## {name}", "", "| creator | clips |", "|---|---:|"]
        ordered = sorted(creators.items(), key=lambda item: (-item[1], item[0]))
        lines += [f"| {creator.replace('|', '/')} | {count} |" for creator, count in ordered]
    return "\n".join(lines) + "\n"


def write_card_files(
    spec: DatasetSpec,
    out: Path,
    rows: list[dict[str, Any]],
    *,
    durations: dict[str, float | None],
    repo_id: str | None = None,
    layout: str = "loose",
) -> dict[str, Any]:
    """Write README.md, ATTRIBUTION.md and croissant.json into `out`; returns the statistics.

    `durations` maps each clip's `file_name` to its probed duration in seconds; `repo_id` is where the
    folder will be published (the card's usage snippets and Croissant URL name it).
    """
    repo_id = repo_id or f"<org>/{spec.name}"
    stats = compute_statistics(rows, durations)
    stats["data_bytes"] = sum(f.stat().st_size for f in (out / spec.split).rglob("*") if f.is_file())
    stats["layout"] = layout
    write_text_atomic(out / "README.md", render_card(spec, stats, repo_id))
    write_text_atomic(out / "ATTRIBUTION.md", render_attribution(spec, rows))
    write_croissant(
        out,
        name=spec.name,
        description=honest_summary(spec, stats),
        license=ANNOTATION_LICENSE,
        url=f"https://huggingface.co/datasets/{repo_id}",
        cite_as=CITATION,
        version="1.0.0",
        features=record_features(spec.kind),
        splits=[spec.split],
        layout=layout,
    )
    return stats
