"""The leaderboard across two real lighteval runs: right rows and numbers, Markdown, CSV and a PNG."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from eval_fixtures import eval_repo, eval_rows, scripted_model, tiny_model_dir

from videokr.data.records import LETTERS, MULTIPLE_CHOICE
from videokr.evaluation.inputs import GenerationRequest
from videokr.evaluation.leaderboard import build_leaderboard, leaderboard_command
from videokr.evaluation.run import run_eval


@pytest.fixture(scope="module")
def runs(
    sample_corpus: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[list[Path], dict[str, float]]:
    """Two models: "oracle" answers every MC item right, "contrarian" none; each runs two tasks."""
    base = tmp_path_factory.getbasetemp()
    repo = eval_repo(sample_corpus, base / "eval-repo")
    model_dir = tiny_model_dir(base / "tiny-qwen2_5_vl")
    rows = {row["id"]: row for row in eval_rows(repo)}

    def answering(right: bool):
        def script(request: GenerationRequest) -> str:
            row = rows[request.item_id]
            if row["problem_type"] != MULTIPLE_CHOICE:
                return f"<answer>{row['answer']}</answer>"
            letter = row["answer"]
            if not right:
                letter = LETTERS[(LETTERS.index(letter) + 1) % len(row["options"])]
            return f"<answer>{letter}</answer>"

        return script

    dirs = []
    for name, right in (("org/contrarian", False), ("org/oracle", True)):
        out = tmp_path_factory.mktemp(name.split("/")[1])
        model = scripted_model(model_dir, tmp_path_factory.mktemp("lb-cache"), answering(right), name=name)
        run_eval(model, ["videokr_eval", "videokr_eval_text_only"], dataset=str(repo), output_dir=out)
        dirs.append(out)
    return dirs, {"oracle": 1.0, "contrarian": 0.0}


def test_leaderboard_rows_and_numbers(runs) -> None:
    dirs, expected = runs
    board = build_leaderboard(dirs)
    # Best first; settings that differ from the paper's name the row, so runs at other budgets stay apart.
    assert [row.label for row in board.rows] == ["oracle (max_frames=4)", "contrarian (max_frames=4)"]
    for row in board.rows:
        want = expected[row.model.split("/")[1]]
        for score in ("acc", "acc_official"):  # clean answer tags: the two readings agree
            assert row.estimate("videokr_eval", score).value == want
            assert row.estimate("videokr_eval_text_only", score).value == want
            for source in ("MMVU", "VideoMMMU", "SciVideoBench"):
                assert row.source(source, score).value == want
        assert row.estimate("videokr_eval_single_frame") is None  # not run: shown as "–", not 0
        assert row.judged() is False


def test_leaderboard_writes_markdown_csv_and_png(
    runs, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dirs, _ = runs
    assert leaderboard_command(dirs, out=tmp_path) == 0
    printed = capsys.readouterr().out
    table = (tmp_path / "leaderboard.md").read_text()
    assert printed.startswith(table)
    lines = [line for line in table.splitlines() if line.startswith("| ")]
    assert lines[0].startswith("| model | VideoKR-Eval (official scorer) | ours (robust) | MMVU |")
    assert lines[1].startswith(
        "| oracle (max_frames=4) | 100.0 [100.0, 100.0] | 100.0 | 100.0 | 100.0 | 100.0 | – | – | 100.0 |"
    )
    # Every cell under its own header: text only was run, the single-frame probe (and so the answerable
    # rate) was not.
    cells = dict(zip(lines[0].strip("| ").split(" | "), lines[1].strip("| ").split(" | "), strict=True))
    assert (cells["single frame"], cells["answerable (1 frame)"], cells["text only"]) == ("–", "–", "100.0")
    assert lines[2].startswith("| contrarian (max_frames=4) | 0.0 [0.0, 0.0] |")
    with (tmp_path / "leaderboard.csv").open() as handle:
        records = list(csv.DictReader(handle))
    assert [(r["label"], float(r["acc_official"]), float(r["acc"]), r["max_frames"]) for r in records] == [
        ("oracle (max_frames=4)", 1.0, 1.0, "4"),
        ("contrarian (max_frames=4)", 0.0, 0.0, "4"),
    ]
    png = (tmp_path / "leaderboard.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000


def _results_file(folder: Path, stamp: str, seed: int, max_frames: int, acc_official: float) -> None:
    """A results file as lighteval writes it, reduced to what the leaderboard reads."""
    import json

    folder.mkdir(parents=True, exist_ok=True)
    config = {"model_name": "org/m", "fps": 2.0, "max_frames": max_frames, "max_pixels": 100352, "seed": seed}
    metrics = {"acc_official": acc_official, "acc_official_ci_low": acc_official - 0.05}
    metrics |= {"acc_official_ci_high": acc_official + 0.05, "acc_official_n": 100.0, "acc": 0.5}
    data = {"config_general": {"model_config": config}, "results": {"videokr_eval|0": metrics}}
    (folder / f"results_{stamp}.json").write_text(json.dumps(data))


def test_runs_with_several_seeds_are_averaged_and_the_newest_run_per_seed_wins(tmp_path: Path) -> None:
    """The paper's protocol reports the mean of 3 runs: one row, mean ± standard deviation."""
    _results_file(tmp_path / "a", "2026-01-01T00-00-00", seed=0, max_frames=128, acc_official=0.5)
    _results_file(tmp_path / "a", "2026-01-01T00-00-01", seed=1, max_frames=128, acc_official=0.9)
    _results_file(tmp_path / "a", "2026-01-01T00-00-02", seed=1, max_frames=128, acc_official=0.6)  # rerun
    _results_file(tmp_path / "b", "2026-01-01T00-00-03", seed=2, max_frames=128, acc_official=0.7)
    _results_file(tmp_path / "b", "2026-01-01T00-00-04", seed=0, max_frames=32, acc_official=0.2)
    board = build_leaderboard([tmp_path])
    assert [row.label for row in board.rows] == ["m", "m (max_frames=32)"]
    paper, short = board.rows
    estimate = paper.estimate("videokr_eval", "acc_official")
    assert estimate.runs == 3 and estimate.value == pytest.approx(0.6)
    assert estimate.std == pytest.approx(0.1)  # sample standard deviation of 0.5, 0.6, 0.7
    assert paper.estimate("videokr_eval", "acc").value == pytest.approx(0.5)
    assert len(paper.files["videokr_eval"]) == 3
    assert short.estimate("videokr_eval", "acc_official").runs == 1
    cells = board.table()[0]
    assert cells[1] == "60.0 ± 10.0 [55.0, 65.0]"


def test_a_still_single_frame_run_is_its_own_row(tmp_path: Path) -> None:
    """A single frame held as a still video is another probe than the paper's image: never averaged
    into the paper's row, and labelled so."""
    _results_file(tmp_path / "a", "2026-01-01T00-00-00", seed=0, max_frames=128, acc_official=0.5)
    _results_file(tmp_path / "b", "2026-01-01T00-00-01", seed=1, max_frames=128, acc_official=0.9)
    still = tmp_path / "b" / "results_2026-01-01T00-00-01.json"
    data = json.loads(still.read_text())
    data["config_general"]["model_config"]["single_frame_as"] = "still"
    still.write_text(json.dumps(data))
    board = build_leaderboard([tmp_path])
    assert [row.label for row in board.rows] == ["m (single_frame_as=still)", "m"]
    assert [row.estimate("videokr_eval", "acc_official").runs for row in board.rows] == [1, 1]
