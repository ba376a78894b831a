"""Finding candidate videos: a local folder with a licence manifest, or the YouTube Data API.

Both adapters emit the same candidate row (``id``, ``path`` or ``source_url``, ``title``, ``creator``,
``license``, ``attribution``, ``duration_s``, and the query that found it), and both apply the same two
hard rules before anything else spends compute on a clip: the licence must pass `licenses.py`, and the
clip must be at most 30 minutes long (the paper's cap; longer lectures overflow any frame budget).

The YouTube adapter asks ``search.list`` for CC-licensed videos (``videoLicense=creativeCommon``), then
``videos.list`` for the duration and the licence as the video itself states it (search filters are not a
guarantee), and keeps the top results per keyword. Its HTTP layer is a small injectable function, so the
tests drive it against a loopback fake. Downloading uses yt-dlp when it is installed and says so when not.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from videokr.data.release import VIDEO_SUFFIXES
from videokr.errors import VideoDecodeError, VideoKRError
from videokr.pipeline.client import ModelClient
from videokr.pipeline.common import Outcome, StageReport, ledger_path, read_jsonl, run_stage
from videokr.pipeline.licenses import attribution, evaluate_license

MAX_DURATION_S = 30 * 60
YOUTUBE_API = "https://www.googleapis.com/youtube/v3"
RESULTS_PER_KEYWORD = 10
_ISO_DURATION = re.compile(
    r"^P(?:(?P<d>\d+)D)?(?:T(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$"
)

HttpGet = Callable[[str], dict[str, Any]]


def _candidate(
    video_id: str,
    *,
    license_raw: str | None,
    duration_s: float | None,
    title: str | None,
    creator: str | None,
    source_url: str | None,
    extra: Mapping[str, Any],
) -> tuple[dict[str, Any] | None, str | None]:
    """(row, None) when the clip may be used, (None, reason) when it may not."""
    decision = evaluate_license(license_raw)
    if not decision.accepted:
        return None, f"license: {decision.reason}"
    if duration_s is None:
        return None, "duration: unknown"
    if duration_s > MAX_DURATION_S:
        return None, f"duration: {duration_s:.0f} s is over {MAX_DURATION_S} s"
    assert decision.license is not None
    row = {
        "id": video_id,
        "title": title,
        "creator": creator,
        "source_url": source_url,
        "license": decision.license,
        "attribution": attribution(title, creator, source_url, decision.license),
        "duration_s": round(float(duration_s), 3),
        **extra,
    }
    return row, None


# --------------------------------------------------------------------------------------------- local


def local_units(folder: str | Path, manifest: str | Path) -> list[dict[str, Any]]:
    """One unit per clip file or manifest row (their union, sorted by file name): ``file`` and ``entry``."""
    folder = Path(folder)
    entries = {row["file"]: row for row in read_jsonl(manifest)}
    files = sorted(
        p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES
    )
    return [{"file": name, "entry": entries.get(name)} for name in sorted(set(files) | set(entries))]


def local_candidate(folder: str | Path, unit: dict[str, Any]) -> Outcome:
    """One unit of `local_units`: a candidate row, or the reason the clip may not be used."""
    from videokr.vision.decode import probe

    name, entry = unit["file"], unit["entry"]
    video_id = str((entry or {}).get("id") or Path(name).stem)
    if entry is None:
        return Outcome(dropped=[(video_id, "license: unknown: no manifest entry")])
    path = Path(folder) / name
    if not path.exists():
        return Outcome(dropped=[(video_id, "missing: listed in the manifest but not in the folder")])
    try:
        duration = probe(path).duration
    except VideoDecodeError as exc:
        return Outcome(dropped=[(video_id, f"unreadable: {exc.reason}")])
    known = {"file", "id", "license", "title", "creator", "source_url"}
    row, reason = _candidate(
        video_id,
        license_raw=entry.get("license"),
        duration_s=duration,
        title=entry.get("title"),
        creator=entry.get("creator"),
        source_url=entry.get("source_url"),
        extra={"path": str(path.resolve()), **{k: v for k, v in entry.items() if k not in known}},
    )
    return Outcome(kept=[row]) if row else Outcome(dropped=[(video_id, str(reason))])


def collect_local(
    folder: str | Path, manifest: str | Path, out: str | Path, *, progress: bool = True
) -> StageReport:
    """Candidates from clips under `folder`, described by a JSONL `manifest`.

    Manifest rows: ``file`` (path relative to `folder`), ``license``, and optionally ``id``, ``title``,
    ``creator``, ``source_url`` and any extra fields (e.g. ``kp_id``), which are carried along. A clip
    without a manifest row is dropped as unlicensed; a manifest row without a clip is dropped as missing.
    """
    return run_stage(
        "collect-local",
        local_units(folder, manifest),
        lambda unit: unit["file"],
        lambda unit: local_candidate(folder, unit),
        out,
        workers=2,
        progress=progress,
    )


# --------------------------------------------------------------------------------------------- youtube


def parse_iso_duration(text: str) -> float | None:
    """Seconds in an ISO 8601 duration as the Data API writes it (``PT1H2M3S``); None if unparsable."""
    match = _ISO_DURATION.match(text or "")
    if not match or not any(match.groupdict().values()):
        return None
    d, h, m, s = (float(match.group(k) or 0) for k in "dhms")
    return d * 86400 + h * 3600 + m * 60 + s


def urllib_get(url: str, timeout: float = 30) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return json.loads(response.read().decode("utf-8"))
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", "replace")[:300]
        raise VideoKRError(f"YouTube Data API: HTTP {exc.code}: {detail}") from None


class YouTubeSearch:
    """The two Data API calls the pipeline needs; `get` fetches a URL and returns the decoded JSON."""

    def __init__(self, api_key: str, *, base_url: str = YOUTUBE_API, get: HttpGet = urllib_get) -> None:
        self.api_key = api_key
        self.base_url = base_url.rstrip("/")
        self.get = get

    def _url(self, endpoint: str, **params: Any) -> str:
        return f"{self.base_url}/{endpoint}?" + urllib.parse.urlencode({**params, "key": self.api_key})

    def search(self, keyword: str, max_results: int = RESULTS_PER_KEYWORD) -> list[dict[str, Any]]:
        """Up to `max_results` CC-licensed videos for `keyword`, in relevance order, with details."""
        found = self.get(
            self._url(
                "search",
                part="snippet",
                q=keyword,
                type="video",
                videoLicense="creativeCommon",
                maxResults=max_results,
                relevanceLanguage="en",
            )
        )
        ids = [item["id"]["videoId"] for item in found.get("items", []) if item.get("id", {}).get("videoId")]
        if not ids:
            return []
        details = self.get(self._url("videos", part="snippet,contentDetails,status", id=",".join(ids)))
        by_id = {item["id"]: item for item in details.get("items", [])}
        return [by_id[i] for i in ids if i in by_id]


def collect_youtube(
    search: YouTubeSearch,
    queries: str | Path,
    out: str | Path,
    *,
    per_keyword: int = RESULTS_PER_KEYWORD,
    progress: bool = True,
) -> StageReport:
    """Candidates for every query row (``id``, ``kp_id``, ``keyword``); a video found twice is kept once."""
    rows = read_jsonl(queries)
    # Videos kept by finished units (the ledger, not the rows file: a unit cut short is redone whole).
    seen: set[str] = {i for entry in read_jsonl(ledger_path(Path(out))) for i in entry["kept"]}

    def work(query: dict[str, Any]) -> Outcome:
        outcome = Outcome()
        for item in search.search(query["keyword"], per_keyword):
            video_id = item["id"]
            snippet, status = item.get("snippet", {}), item.get("status", {})
            row, reason = _candidate(
                video_id,
                license_raw=status.get("license"),
                duration_s=parse_iso_duration(item.get("contentDetails", {}).get("duration", "")),
                title=snippet.get("title"),
                creator=snippet.get("channelTitle"),
                source_url=f"https://www.youtube.com/watch?v={video_id}",
                extra={
                    "description": snippet.get("description", ""),
                    "kp_id": query.get("kp_id"),
                    "keyword": query["keyword"],
                },
            )
            if row is None:
                outcome.dropped.append((video_id, str(reason)))
            elif video_id in seen:
                outcome.dropped.append((video_id, "duplicate: found by an earlier keyword"))
            else:
                seen.add(video_id)
                outcome.kept.append(row)
        return outcome

    # One worker: `seen` makes the result depend on order, and the API quota, not CPU, is the limit.
    return run_stage("collect-youtube", rows, lambda q: q["id"], work, out, workers=1, progress=progress)


RELEVANCE_PROMPT = (
    "Knowledge point: {knowledge_point} ({subject}).\nVideo title: {title}\nVideo description: "
    "{description}\n\nWould this video visibly show the knowledge point (a demonstration, experiment, "
    'procedure or phenomenon), not just talk about it?\nReply with JSON only: {{"relevant": true|false, '
    '"reason": "..."}}'
)


def _check_relevance(value: Any) -> None:
    if not isinstance(value, dict) or not isinstance(value.get("relevant"), bool):
        raise ValueError('expected {"relevant": true|false}')


def relevance_unit(client: ModelClient, points: dict[str, dict[str, Any]], row: dict[str, Any]) -> Outcome:
    """One candidate against its knowledge point (`points` by id): kept, with the point's subject fields."""
    point = points.get(row.get("kp_id") or "")
    if point is None:
        return Outcome(dropped=[(row["id"], "no_knowledge_point: kp_id not in the bank")])
    prompt = RELEVANCE_PROMPT.format(
        knowledge_point=point["knowledge_point"],
        subject=point["subject"],
        title=row.get("title") or "",
        description=(row.get("description") or "")[:1500],
    )
    verdict = client.chat_json([{"role": "user", "content": prompt}], check=_check_relevance)
    if not verdict["relevant"]:
        return Outcome(dropped=[(row["id"], f"irrelevant: {verdict.get('reason', '')}")])
    enriched = {k: point[k] for k in ("discipline", "subject", "knowledge_point")}
    return Outcome(kept=[{**row, **enriched}])


def judge_relevance(
    client: ModelClient,
    candidates: str | Path,
    bank: str | Path,
    out: str | Path,
    *,
    workers: int = 4,
    progress: bool = True,
) -> StageReport:
    """The metadata relevance judge: keep candidates whose title and description fit their knowledge point."""
    points = {row["id"]: row for row in read_jsonl(bank)}
    return run_stage(
        "relevance",
        read_jsonl(candidates),
        lambda r: r["id"],
        lambda row: relevance_unit(client, points, row),
        out,
        clients=[client],
        workers=workers,
        progress=progress,
    )


def download_youtube(video_id: str, out_dir: str | Path) -> Path:
    """Fetch one video as MP4 with yt-dlp (an optional dependency); returns the file path."""
    try:
        import yt_dlp  # type: ignore[import-not-found]
    except ImportError:
        raise VideoKRError("downloading needs yt-dlp, which is not installed (pip install yt-dlp)") from None
    out_dir = Path(out_dir)
    target = out_dir / f"{video_id}.mp4"
    if target.exists():
        return target
    options = {
        "format": "bv*[ext=mp4][height<=720]+ba[ext=m4a]/b[ext=mp4]/b",
        "outtmpl": str(out_dir / "%(id)s.%(ext)s"),
        "merge_output_format": "mp4",
        "quiet": True,
    }
    with yt_dlp.YoutubeDL(options) as ydl:
        ydl.download([f"https://www.youtube.com/watch?v={video_id}"])
    return target
