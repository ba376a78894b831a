"""Croissant 1.1 metadata (`croissant.json`) for a built videofolder, derived from the card's features.

Why we write our own: the Hub's auto-generated Croissant skips `datasets.Video` columns, so the clips —
the point of the dataset — would be invisible to Croissant tools.

What it describes, per split: the `<split>/metadata.parquet` FileObject (with its sha256, so a
consumer can tell a stale copy), a FileSet of the split's clips, and a RecordSet whose fields map the
parquet columns one to one. Field names and types come from the `datasets.Features` that also write the
card's `dataset_info.features`, and the parquet's own schema is checked against those features before
anything is written, so the Croissant cannot disagree with the card or with the data.

The `video` field is the clip's path, not its bytes. The spec-level alternative, a field reading the
clip from the FileSet and joined to the rows on `file_name`, validates statically, but mlcroissant
1.1.1 cannot read any field of a `video/mp4` FileSet (its reader has no MP4 branch and raises), and a
join pulls that FileSet into every read of the record set: no record of the split could be loaded. So
`video` maps the parquet's `file_name` column (a path relative to `<split>/`, exactly what the
videofolder loader resolves), says so in its description, and the clips stay listed as a FileSet.
"""

from __future__ import annotations

import copy
import datetime
import fnmatch
import hashlib
import io
import itertools
import json
import re
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

import datasets
import pyarrow.parquet as pq

from videokr.atomic import write_text_atomic
from videokr.data.shards import SHARD_GLOB
from videokr.errors import VideoKRError

CROISSANT_1_1 = "http://mlcommons.org/croissant/1.1"
# Version of this mapping (Croissant `sdVersion`: the metadata's version, distinct from the data's).
# Bump it whenever the JSON this module writes for the same inputs changes.
SD_VERSION = "1.0.0"
PARQUET = "application/x-parquet"
ZIP = "application/zip"
MP4 = "video/mp4"
METADATA_FILE = "metadata.parquet"
# The videofolder column `load_dataset` turns into the Video feature; paths are relative to <split>/.
FILE_NAME_COLUMN = "file_name"
# Clips live one folder below `videos/` (`videos/NNN/<clip>.mp4`: hash-sharded, see `videokr.data.hub`).
CLIP_GLOB = "videos/*/*.mp4"
_SPLIT_NAME = re.compile(r"^\w+(\.\w+)*$")

# The @context mlcroissant 1.1.1 treats as standard for Croissant 1.1, plus `sdVersion` from the 1.1
# spec's context (without it `sdVersion` would expand to schema.org and be ignored). Schema.org is
# https here, as in mlcroissant and the Hub's own files: mlcroissant does not recognise http types.
CONTEXT: dict[str, Any] = {
    "@language": "en",
    "@vocab": "https://schema.org/",
    "arrayShape": "cr:arrayShape",
    "citeAs": "cr:citeAs",
    "column": "cr:column",
    "conformsTo": "dct:conformsTo",
    "containedIn": "cr:containedIn",
    "cr": "http://mlcommons.org/croissant/",
    "data": {"@id": "cr:data", "@type": "@json"},
    "dataType": {"@id": "cr:dataType", "@type": "@vocab"},
    "dct": "http://purl.org/dc/terms/",
    "description": {"@container": "@language"},
    "equivalentProperty": "cr:equivalentProperty",
    "examples": {"@id": "cr:examples", "@type": "@json"},
    "extract": "cr:extract",
    "field": "cr:field",
    "fileObject": "cr:fileObject",
    "fileProperty": "cr:fileProperty",
    "fileSet": "cr:fileSet",
    "format": "cr:format",
    "includes": "cr:includes",
    "isArray": "cr:isArray",
    "isLiveDataset": "cr:isLiveDataset",
    "jsonPath": "cr:jsonPath",
    "key": "cr:key",
    "md5": "cr:md5",
    "name": {"@container": "@language"},
    "parentField": "cr:parentField",
    "path": "cr:path",
    "rai": "http://mlcommons.org/croissant/RAI/",
    "recordSet": "cr:recordSet",
    "references": "cr:references",
    "regex": "cr:regex",
    "repeated": "cr:repeated",
    "replace": "cr:replace",
    "samplingRate": "cr:samplingRate",
    "sc": "https://schema.org/",
    "sdVersion": "cr:sdVersion",
    "separator": "cr:separator",
    "source": "cr:source",
    "subField": "cr:subField",
    "transform": "cr:transform",
}


class CroissantError(VideoKRError, ValueError):
    """A Croissant that cannot be written or does not validate; the message names the file at fault."""


def croissant_metadata(
    repo_dir: Path,
    *,
    name: str,
    description: str,
    license: str,
    url: str,
    cite_as: str,
    version: str,
    features: datasets.Features,
    splits: list[str],
    date_published: str | None = None,
    layout: str = "loose",
) -> dict[str, Any]:
    """The Croissant 1.1 JSON-LD for the videofolder at `repo_dir`, as a dict.

    A sharded split (`layout="shards"`, see `videokr.data.shards`) is described as a FileSet of ZIP
    archives with the metadata parquet and the clips as FileSets contained in them.

    Reads each split's `metadata.parquet` (schema and sha256) and nothing else: the same folder and
    arguments always give the same dict. `date_published` (ISO date) is optional because there is no
    deterministic default; mlcroissant only warns when it is absent.
    """
    repo_dir = Path(repo_dir)
    if not splits:
        raise CroissantError(f"{repo_dir}: no splits given")
    if len(set(splits)) != len(splits):
        raise CroissantError(f"{repo_dir}: duplicate split names in {splits}")
    columns = _columns(features)
    has_video = any(kind == "video" for _, kind in columns)
    distribution: list[dict[str, Any]] = []
    record_sets: list[dict[str, Any]] = []
    for split in splits:
        if not _SPLIT_NAME.match(split):
            raise CroissantError(f"{repo_dir}: split name {split!r} is not a valid Hub split name")
        describe = _sharded_distribution if layout == "shards" else _loose_distribution
        file_id, clips_id, entries = describe(repo_dir, split, features, has_video)
        distribution += entries
        record_set: dict[str, Any] = {
            "@type": "cr:RecordSet",
            "@id": split,
            "name": split,
            "description": f"Questions of the {split} split, one record per row of {file_id}.",
        }
        if "id" in features:
            record_set["key"] = {"@id": f"{split}/id"}
        record_set["field"] = [
            _field(split, column, features[column], kind, file_id, clips_id, layout)
            for column, kind in columns
        ]
        record_sets.append(record_set)

    metadata: dict[str, Any] = {
        "@context": copy.deepcopy(CONTEXT),  # callers may edit the dict; never the module's context
        "@type": "sc:Dataset",
        "name": name,
        "description": description,
        "conformsTo": CROISSANT_1_1,
        "citeAs": cite_as,
        "license": license,
        "url": url,
        "version": version,
        "sdVersion": SD_VERSION,
        "isLiveDataset": False,
    }
    if date_published is not None:
        try:
            datetime.date.fromisoformat(date_published)
        except ValueError as error:
            raise CroissantError(f"date_published {date_published!r} is not an ISO date") from error
        metadata["datePublished"] = date_published
    metadata["distribution"] = distribution
    metadata["recordSet"] = record_sets
    _check_unique_ids(repo_dir, metadata)
    return metadata


def _loose_distribution(
    repo_dir: Path, split: str, features: datasets.Features, has_video: bool
) -> tuple[str, str, list[dict[str, Any]]]:
    """The split's `metadata.parquet` FileObject (with sha256) and the FileSet of its loose clips."""
    parquet = repo_dir / split / METADATA_FILE
    if not parquet.is_file():
        raise CroissantError(f"{parquet}: missing; build split {split!r} before writing its Croissant")
    _check_schema(parquet, features)
    file_id, clips_id = f"{split}/{METADATA_FILE}", f"{split}/videos"
    entries: list[dict[str, Any]] = [
        {
            "@type": "cr:FileObject",
            "@id": file_id,
            "name": file_id,
            "description": f"The {split} split, one row per question"
            + (f", with the clip's path in `{FILE_NAME_COLUMN}`." if has_video else "."),
            "contentUrl": file_id,
            "contentSize": f"{parquet.stat().st_size} B",
            "encodingFormat": PARQUET,
            "sha256": _sha256(parquet),
        }
    ]
    if has_video:
        entries.append(
            {
                "@type": "cr:FileSet",
                "@id": clips_id,
                "name": clips_id,
                "description": f"The {split} split's clips, one MP4 per clip, shared by the questions "
                f"whose `{FILE_NAME_COLUMN}` names it (relative to `{split}/`).",
                "encodingFormat": MP4,
                "includes": f"{split}/{CLIP_GLOB}",
            }
        )
    return file_id, clips_id, entries


def _sharded_distribution(
    repo_dir: Path, split: str, features: datasets.Features, has_video: bool
) -> tuple[str, str, list[dict[str, Any]]]:
    """The split's ZIP shards, and the metadata parquets and clips they contain."""
    shards = sorted((repo_dir / split).glob(SHARD_GLOB))
    if not shards:
        raise CroissantError(f"{repo_dir / split}: no {SHARD_GLOB}; build split {split!r} first")
    with zipfile.ZipFile(shards[0]) as archive, archive.open(METADATA_FILE) as meta:
        schema = pq.read_schema(io.BytesIO(meta.read()))
    _check_schema_of(f"{shards[0]}!{METADATA_FILE}", schema, features)
    archives_id, file_id, clips_id = f"{split}/shards", f"{split}/{METADATA_FILE}", f"{split}/videos"
    entries: list[dict[str, Any]] = [
        {
            "@type": "cr:FileSet",
            "@id": archives_id,
            "name": archives_id,
            "description": f"The {split} split in ZIP shards, each holding the rows of its clips "
            f"(`{METADATA_FILE}`) and the clips themselves (stored, not compressed).",
            "encodingFormat": ZIP,
            "includes": f"{split}/{SHARD_GLOB}",
        },
        {
            "@type": "cr:FileSet",
            "@id": file_id,
            "name": file_id,
            "description": "Each shard's rows, one per question"
            + (f", with the clip's path inside the shard in `{FILE_NAME_COLUMN}`." if has_video else "."),
            "containedIn": {"@id": archives_id},
            "encodingFormat": PARQUET,
            "includes": METADATA_FILE,
        },
    ]
    if has_video:
        entries.append(
            {
                "@type": "cr:FileSet",
                "@id": clips_id,
                "name": clips_id,
                "description": f"The clips inside each shard, one MP4 per clip, shared by the questions "
                f"whose `{FILE_NAME_COLUMN}` names it.",
                "containedIn": {"@id": archives_id},
                "encodingFormat": MP4,
                "includes": "videos/*.mp4",
            }
        )
    return file_id, clips_id, entries


def write_croissant(
    repo_dir: Path,
    *,
    name: str,
    description: str,
    license: str,
    url: str,
    cite_as: str,
    version: str,
    features: datasets.Features,
    splits: list[str],
    date_published: str | None = None,
    layout: str = "loose",
) -> Path:
    """Write `repo_dir/croissant.json` (see `croissant_metadata`) atomically; returns its path.

    Same inputs, same bytes: key order is fixed by construction and nothing time-dependent goes in, so a
    rebuild does not produce a spurious diff or a new upload.
    """
    repo_dir = Path(repo_dir)
    metadata = croissant_metadata(
        repo_dir,
        name=name,
        description=description,
        license=license,
        url=url,
        cite_as=cite_as,
        version=version,
        features=features,
        splits=splits,
        date_published=date_published,
        layout=layout,
    )
    text = json.dumps(metadata, indent=2, ensure_ascii=False) + "\n"
    return write_text_atomic(repo_dir / "croissant.json", text)


def validate_croissant(path: Path, *, records: int = 3) -> list[str]:
    """Validate `path` with mlcroissant and read the first `records` records of every RecordSet.

    Returns mlcroissant's warnings (sorted); raises `CroissantError` naming the file on any error.
    Static validation alone would pass a Croissant whose parquet is missing or stale (mlcroissant only
    opens files when records are read), so reading a few records proves the column mapping and the
    sha256 against the real file. Because mlcroissant cannot follow a clip path, the clips of the
    records read are checked here: each must exist and match a FileSet's `includes`.
    """
    import mlcroissant as mlc

    path = Path(path)
    if not path.is_file():
        raise CroissantError(f"{path}: no such Croissant file")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CroissantError(f"{path}: not valid JSON ({error})") from error
    if not isinstance(document, dict):
        raise CroissantError(f"{path}: the top level is not a JSON object")
    folder = path.parent
    _check_local_files(path, document)
    try:
        dataset = mlc.Dataset(jsonld=path)
    except mlc.ValidationError as error:
        raise CroissantError(f"{path}: mlcroissant validation failed:\n{error}") from error
    warnings = sorted(dataset.metadata.ctx.issues.warnings)
    for record_set in document.get("recordSet", []):
        record_set_id = record_set["@id"]
        if any("fileSet" in field.get("source", {}) for field in record_set.get("field", [])):
            # Sharded: rows in a parquet inside ZIP shards, which mlcroissant 1.1 cannot read ("None of
            # the provided encoding formats: application/zip ... returned a valid pandas dataframe").
            # Static validation only; the build's own check loads those rows with `datasets`.
            continue
        try:
            rows = list(itertools.islice(dataset.records(record_set_id), records))
        except Exception as error:
            raise CroissantError(
                f"{path}: mlcroissant could not read record set {record_set_id!r}: {_causes(error)}"
            ) from error
        _check_clip_paths(path, folder, document, record_set, rows)
    return warnings


def _columns(features: datasets.Features) -> list[tuple[str, str]]:
    """Each feature with how it maps: 'value', 'list' or 'video'; anything else is refused, by name."""
    out: list[tuple[str, str]] = []
    for column, feature in features.items():
        if isinstance(feature, datasets.Video):
            out.append((column, "video"))
        elif isinstance(feature, datasets.Value):
            _value_type(column, feature)
            out.append((column, "value"))
        elif isinstance(feature, (datasets.List, datasets.LargeList)) and isinstance(
            feature.feature, datasets.Value
        ):
            _value_type(column, feature.feature)
            out.append((column, "list"))
        else:
            raise CroissantError(f"column {column!r}: no Croissant mapping for feature {feature!r}")
    videos = [column for column, kind in out if kind == "video"]
    if len(videos) > 1:
        raise CroissantError(f"a videofolder has one `{FILE_NAME_COLUMN}` column, not videos {videos}")
    if FILE_NAME_COLUMN in features:
        raise CroissantError(f"`{FILE_NAME_COLUMN}` is the videofolder's path column, not a feature")
    return out


def _value_type(column: str, feature: datasets.Value) -> str:
    """The schema.org data type of a scalar feature."""
    dtype = feature.dtype
    if dtype in ("string", "large_string"):
        return "sc:Text"
    if dtype.startswith("float"):
        return "sc:Float"
    if dtype.startswith(("int", "uint")):
        return "sc:Integer"
    if dtype == "bool":
        return "sc:Boolean"
    raise CroissantError(f"column {column!r}: no Croissant data type for dtype {dtype!r}")


def _field(
    split: str, column: str, feature: Any, kind: str, file_id: str, clips_id: str, layout: str = "loose"
) -> dict[str, Any]:
    """One RecordSet field, read from the split's parquet (or, sharded, from every shard's)."""
    source_column = FILE_NAME_COLUMN if kind == "video" else column
    field: dict[str, Any] = {"@type": "cr:Field", "@id": f"{split}/{column}", "name": column}
    if kind == "video":
        field["description"] = (
            f"The question's clip, as a path relative to the `{split}/` folder (the videofolder "
            f"`{FILE_NAME_COLUMN}` column): the file is `{split}/` + this value, one of the FileSet "
            f"`{clips_id}`. `datasets.load_dataset` decodes it as a `datasets.Video` feature."
        )
        field["dataType"] = "sc:Text"
    elif kind == "list":
        field["dataType"] = _value_type(column, feature.feature)
        field["isArray"] = True
        field["arrayShape"] = "-1"
    else:
        field["dataType"] = _value_type(column, feature)
    source = "fileSet" if layout == "shards" else "fileObject"
    field["source"] = {source: {"@id": file_id}, "extract": {"column": source_column}}
    return field


def _check_schema(parquet: Path, features: datasets.Features) -> None:
    """Refuse a parquet whose columns or types differ from the features the card declares."""
    try:
        schema = pq.read_schema(parquet)
    except Exception as error:
        raise CroissantError(f"{parquet}: cannot read the parquet schema ({error})") from error
    _check_schema_of(str(parquet), schema, features)


def _check_schema_of(parquet: str, schema: Any, features: datasets.Features) -> None:
    schema = schema.remove_metadata()
    actual = datasets.Features.from_arrow_schema(schema)
    expected = {
        (FILE_NAME_COLUMN if isinstance(feature, datasets.Video) else column): (
            datasets.Value("string") if isinstance(feature, datasets.Video) else feature
        )
        for column, feature in features.items()
    }
    missing = [column for column in expected if column not in actual]
    if missing:
        raise CroissantError(f"{parquet}: missing column(s) {missing} that the features declare")
    for column, feature in expected.items():
        if actual[column] != feature:
            raise CroissantError(
                f"{parquet}: column {column!r} is {actual[column]!r} but the features say {feature!r}"
            )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _check_unique_ids(repo_dir: Path, metadata: dict[str, Any]) -> None:
    """JSON-LD merges nodes that share an @id, so a clash would silently corrupt the graph."""
    ids = [node["@id"] for node in metadata["distribution"]]
    for record_set in metadata["recordSet"]:
        ids.append(record_set["@id"])
        ids.extend(field["@id"] for field in record_set["field"])
    clashes = sorted({i for i in ids if ids.count(i) > 1})
    if clashes:
        raise CroissantError(f"{repo_dir}: Croissant @id(s) used twice: {clashes}")


def _check_local_files(path: Path, document: dict[str, Any]) -> None:
    """Name a missing local FileObject up front; mlcroissant would only fail mid-read, less clearly."""
    for node in document.get("distribution", []):
        url = node.get("contentUrl")
        local = node.get("@type") == "cr:FileObject" and isinstance(url, str) and "://" not in url
        if local and not (path.parent / url).is_file():
            raise CroissantError(f"{path}: FileObject {node.get('@id')!r} points to {url}, which is missing")


def _check_clip_paths(
    path: Path,
    folder: Path,
    document: dict[str, Any],
    record_set: dict[str, Any],
    rows: list[dict[str, Any]],
) -> None:
    """The records' clip paths resolve to files that the split's FileSet includes."""
    globs = [
        pattern
        for node in document.get("distribution", [])
        if node.get("@type") == "cr:FileSet"
        for pattern in _as_list(node.get("includes"))
    ]
    for field in record_set.get("field", []):
        source = field.get("source", {})
        if source.get("extract", {}).get("column") != FILE_NAME_COLUMN:
            continue
        file_id = source.get("fileObject", {}).get("@id")
        parquet_url = next(
            (n.get("contentUrl") for n in document.get("distribution", []) if n.get("@id") == file_id), None
        )
        if not isinstance(parquet_url, str):
            continue
        base = PurePosixPath(parquet_url).parent
        for row in rows:
            value = row.get(field["@id"])
            if value is None:
                continue
            clip = (base / (value.decode() if isinstance(value, bytes) else str(value))).as_posix()
            if not (folder / clip).is_file():
                raise CroissantError(f"{path}: field {field['@id']!r} points to {clip}, which is missing")
            if not any(fnmatch.fnmatchcase(clip, pattern) for pattern in globs):
                raise CroissantError(f"{path}: {clip} is in no FileSet (includes: {globs})")


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _causes(error: BaseException) -> str:
    """mlcroissant wraps the real failure (e.g. a sha256 mismatch) in a generic one: show the chain."""
    messages: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        messages.append(f"{type(current).__name__}: {current}")
        current = current.__cause__ or current.__context__
    return " <- ".join(messages)
