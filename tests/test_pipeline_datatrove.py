"""The construction chain on datatrove against the loopback oracle: the drops each filter must make,
a release `videokr build` turns into a dataset that loads, every model request made once, a run killed
mid-stage and resumed ending where an uninterrupted one does, and the same output on Ray."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from videokr.pipeline.chain import RunConfig, run_chain
from videokr.pipeline.engine import rows_path
from videokr.pipeline.oracle import MODEL_STAGES, Faults, Oracle, OracleServer, SampleRun, prepare_sample_run

SECRET = "sk-videokr-test-not-a-real-key"
FAULTS = Faults(wrong_share=0.2, malformed_share=0.2, guessable_share=0.2)
STAGE_OF_CODE = {
    "irrelevant": "relevance",
    "visually_irrelevant": "visual-relevance",
    "unsafe": "safety",
    "invalid_example": "generate",
    "inconsistent": "verify",
    "video_independent": "filter-dependency",
    "unsupported_rationale": "filter-rationale",
}


@pytest.fixture(scope="module")
def sample_run(sample_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> SampleRun:
    return prepare_sample_run(sample_corpus, tmp_path_factory.mktemp("inputs"), clips=6)


def release_files(release: Path) -> dict[str, bytes]:
    """Every file of a release folder (the JSONL and the clips), by relative path."""
    files = sorted(p for p in release.rglob("*") if p.is_file())
    return {p.relative_to(release).as_posix(): p.read_bytes() for p in files}


def chain_outputs(work: Path) -> dict[str, bytes]:
    return {p.parent.name: p.read_bytes() for p in sorted(work.glob("*/rows.jsonl"))}


@pytest.fixture(scope="module")
def reference(sample_run: SampleRun, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One uninterrupted run on the local executor (2 tasks per stage), with what the server saw."""
    root = tmp_path_factory.mktemp("reference")
    before = os.environ.get("VIDEOKR_API_KEY")
    os.environ["VIDEOKR_API_KEY"] = SECRET  # the endpoint's key must reach no file of the run
    with OracleServer(Oracle(sample_run, FAULTS)) as server:
        config = RunConfig.from_dict(
            sample_run.config(
                root / "work",
                root / "release",
                server.base_url,
                executor={"type": "local", "tasks": 2, "workers": 1},
            )
        )
        try:
            reports = run_chain(config)
        finally:
            if before is None:
                del os.environ["VIDEOKR_API_KEY"]
            else:
                os.environ["VIDEOKR_API_KEY"] = before
    return {"root": root, "reports": {r["stage"]: r for r in reports}, "answered": dict(server.answered)}


def test_each_filter_drops_what_the_oracle_got_wrong_and_the_release_builds(
    sample_run: SampleRun, reference: dict[str, Any], tmp_path: Path
) -> None:
    from datasets import load_from_disk

    from videokr.cli import main

    reports = reference["reports"]
    expected = Oracle(sample_run, FAULTS).expected()
    assert all(expected[stage] for stage in MODEL_STAGES), "the faults must give every filter work"
    collect = reports["collect-local"]
    assert set(collect["dropped_ids"]["license"]) == set(sample_run.expected_collect_drops)
    for code, stage in STAGE_OF_CODE.items():
        assert set(reports[stage]["dropped_ids"].get(code, [])) == expected[stage], stage
        assert sum(reports[stage]["dropped"].values()) == len(expected[stage]), stage
    # Malformed replies were repaired, not dropped; tokens were counted per model.
    assert sum(m["repairs"] for r in reports.values() for m in r["models"].values()) > 0
    assert reports["verify"]["models"]["oracle"]["completion_tokens"] > 0
    assert set(reports["filter-dependency"]["models"]) == {"blind-b"}
    # Every request was made exactly once.
    assert set(reference["answered"].values()) == {1}
    leaked = [p for p in reference["root"].rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]
    assert not leaked

    release = reference["root"] / "release"
    kept = reports["filter-rationale"]["kept"]
    split = json.loads((release / "split.json").read_text())
    assert kept > 0 and split["sft_examples"] + split["rl_examples"] == kept
    built = tmp_path / "built"
    assert main(["build", "sft", "--source", str(release / "VideoKR-Train"), "--out", str(built)]) == 0
    dataset = load_from_disk(str(built)) if (built / "dataset_dict.json").exists() else None
    if dataset is None:
        from datasets import load_dataset

        dataset = load_dataset(str(built))
    rows = dataset["train"] if "train" in dataset else next(iter(dataset.values()))
    assert len(rows) == split["sft_examples"]
    think = rows[0]["think"] if "think" in rows.column_names else rows[0]["solution"]
    assert think


def _run_as_group(config: RunConfig) -> None:
    """The run as its own process group, as a shell or a scheduler starts a job."""
    os.setpgid(0, 0)
    run_chain(config)


def _count_cache_entries(cache: Path) -> int:
    return sum(1 for _ in cache.glob("*/*.json")) if cache.exists() else 0


def test_a_run_killed_mid_stage_resumes_without_asking_twice(
    sample_run: SampleRun, reference: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from videokr.cli import main

    total = len(reference["answered"])
    stop_after = total // 2  # well inside the chain, in a model stage
    config_file = tmp_path / "run.yaml"
    with OracleServer(Oracle(sample_run, FAULTS), hold_after=stop_after) as server:
        raw = sample_run.config(
            tmp_path / "work",
            tmp_path / "release",
            server.base_url,
            executor={"type": "local", "tasks": 2, "workers": 1},
        )
        config_file.write_text(yaml.safe_dump(raw), encoding="utf-8")
        # A forked process (the decoders are already imported here) killed with SIGKILL: no clean-up runs.
        process = multiprocessing.get_context("fork").Process(
            target=_run_as_group, args=(RunConfig.load(config_file),), daemon=True
        )
        process.start()
        try:
            deadline = time.monotonic() + 120
            cache = tmp_path / "work" / "cache"
            # Held requests are in flight; wait until every answered one is in the cache, then kill.
            while not (server.waiting > 0 and _count_cache_entries(cache) == stop_after):
                assert process.is_alive(), f"the run ended early (exit code {process.exitcode})"
                assert time.monotonic() < deadline, "the run never reached the held request"
                time.sleep(0.05)
        finally:
            assert process.pid is not None
            os.killpg(process.pid, signal.SIGKILL)  # the run and every process it started
            process.join()
        server.abandon()
        first = dict(server.answered)
        assert sum(first.values()) == stop_after
        unfinished = [s for s in MODEL_STAGES if not rows_path(tmp_path / "work", s).exists()]
        assert unfinished, "the kill must land before the last stage"

        assert main(["pipeline", "run", str(config_file)]) == 0
        both = dict(server.answered)

    assert "video_independent" in capsys.readouterr().out  # the drops table
    assert both == reference["answered"]  # the same requests, each made exactly once over both runs
    assert chain_outputs(tmp_path / "work") == chain_outputs(reference["root"] / "work")
    assert release_files(tmp_path / "release") == release_files(reference["root"] / "release")


def test_the_chain_on_ray_in_local_mode_writes_the_same_release(
    sample_run: SampleRun, reference: dict[str, Any], tmp_path: Path
) -> None:
    ray = pytest.importorskip("ray", reason="ray is an optional extra (pip install 'videokr[ray]')")
    if os.environ.get("VIDEOKR_TEST_RAY") != "1":
        # Every Ray task is a fresh worker process that imports the decoders: ~6 min on 2 shared cores.
        pytest.skip("the Ray run takes minutes on a small machine; set VIDEOKR_TEST_RAY=1 to run it")
    with OracleServer(Oracle(sample_run, FAULTS)) as server:
        config = RunConfig.from_dict(
            sample_run.config(
                tmp_path / "work",
                tmp_path / "release",
                server.base_url,
                executor={
                    "type": "ray",
                    "tasks": 2,
                    "workers": 2,
                    "cpus_per_task": 1,
                    "mem_per_cpu_gb": 0.5,
                    "init": {"num_cpus": 2},
                },
            )
        )
        try:
            run_chain(config)
        finally:
            ray.shutdown()
    assert chain_outputs(tmp_path / "work") == chain_outputs(reference["root"] / "work")
    assert release_files(tmp_path / "release") == release_files(reference["root"] / "release")


def test_a_run_config_missing_what_it_needs_is_one_clear_error(tmp_path: Path) -> None:
    from videokr.pipeline.chain import ConfigError

    good = {
        "work_dir": "run",
        "release_dir": "release",
        "bank": "bank.jsonl",
        "collect": {"folder": "clips", "manifest": "manifest.jsonl"},
        "seeds": "seeds.jsonl",
        "endpoint": {"base_url": "http://127.0.0.1:1/v1"},
        "models": {"default": "m", "filter-dependency": ["a", "b"]},
    }
    config = RunConfig.from_dict(good, base=tmp_path)
    assert config.bank == (tmp_path / "bank.jsonl").resolve() and config.executor == {"type": "local"}
    assert config.endpoint.server_url == "http://127.0.0.1:1"  # datatrove appends /v1/... itself
    for broken, message in (
        ({k: v for k, v in good.items() if k != "endpoint"}, "needs `endpoint`"),
        ({**good, "models": {"default": "m"}}, "at least two model names"),
        ({**good, "models": {"filter-dependency": ["a", "b"]}}, "no model for relevance"),
        ({**good, "executor": {"type": "kubernetes"}}, "expected one of local, slurm, ray"),
    ):
        with pytest.raises(ConfigError, match=message):
            RunConfig.from_dict(broken, base=tmp_path)


def test_an_overloaded_or_failing_endpoint_is_retried_not_fatal(
    sample_run: SampleRun, tmp_path: Path
) -> None:
    from datatrove.executor.local import LocalPipelineExecutor

    from videokr.pipeline.chain import chain_stages
    from videokr.pipeline.common import read_jsonl, write_jsonl
    from videokr.pipeline.engine import Endpoint, merge_outcomes, stage_pipeline

    candidates = [{**row, "description": ""} for row in read_jsonl(sample_run.manifest)]
    write_jsonl(tmp_path / "candidates.jsonl", candidates)
    with OracleServer(Oracle(sample_run, FAULTS)) as server:
        server.failures = [503, 500, 429]  # the runner itself retries none of these
        config = RunConfig.from_dict(
            sample_run.config(tmp_path / "work", tmp_path / "release", server.base_url)
        )
        stage = next(s for s in chain_stages(config) if s.name == "relevance")
        pipeline = stage_pipeline(
            stage,
            tmp_path / "candidates.jsonl",
            tmp_path / "work",
            endpoint=Endpoint(server.base_url, concurrency=1),
            cache_dir=tmp_path / "cache",
            progress=False,
            backoff_s=0.01,
        )
        LocalPipelineExecutor(pipeline, tasks=1, logging_dir=str(tmp_path / "logs")).run()
    report = merge_outcomes(tmp_path / "work", "relevance", tmp_path / "candidates.jsonl", stage.unit_id)
    assert report.models["oracle"]["retries"] == 3 and report.models["oracle"]["failures"] == 3
    assert set(report.dropped_ids.get("irrelevant", [])) == set(sample_run.offtopic)
    assert report.kept + sum(report.dropped.values()) == len(candidates)
