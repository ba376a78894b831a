"""The command line answers bad input with one line naming it and a non-zero status, never a traceback."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from videokr.cli import build_parser, main


def test_validate_passes_the_sample_release_and_lists_bad_rows_by_id(
    sample_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sft = sample_corpus / "VideoKR-Train" / "VideoKR-COT-201K.jsonl"
    assert main(["validate", "sft", str(sft)]) == 0
    assert "64 rows parsed, 0 rejected" in capsys.readouterr().out

    bad = tmp_path / "bad.jsonl"
    rows = [json.loads(line) for line in sft.read_text().splitlines()[:3]]
    rows[1]["solution"] = "<answer>Z</answer>"
    bad.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert main(["validate", "sft", str(bad)]) == 1
    out = capsys.readouterr().out
    assert "2 rows parsed, 1 rejected" in out and f"id={rows[1]['id']!r}" in out


def test_validate_names_the_line_that_is_not_utf8(
    sample_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sft = sample_corpus / "VideoKR-Train" / "VideoKR-COT-201K.jsonl"
    lines = sft.read_bytes().splitlines(keepends=True)[:4]
    lines[2] = lines[2].replace(b'"question": "', b'"question": "\xff', 1)
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b"".join(lines))
    assert main(["validate", "sft", str(bad)]) == 1
    captured = capsys.readouterr()
    assert "3 rows parsed, 1 rejected" in captured.out
    assert f"{bad}:3: not valid UTF-8" in captured.out and "Traceback" not in captured.err


def test_build_into_another_datasets_folder_is_one_line_and_touches_nothing(
    sample_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "built"
    (out / ".videokr").mkdir(parents=True)
    (out / ".videokr" / "build.json").write_text(
        '{"dataset": "VideoKR-SFT-201K", "kind": "sft", "clips": {}}'
    )
    (out / "README.md").write_text("the SFT card\n")
    argv = ["build", "rl", "--source", str(sample_corpus), "--out", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("videokr build: error: --out ") and err.count("\n") == 1
    assert "already holds the VideoKR-SFT-201K dataset (sft)" in err
    assert (out / "README.md").read_text() == "the SFT card\n"
    assert sorted(p.name for p in out.rglob("*")) == [".videokr", "README.md", "build.json"]

    source = sample_corpus / "VideoKR-Eval"
    assert main(["build", "eval", "--source", str(source), "--out", str(source)]) == 2
    assert "is not empty" in capsys.readouterr().err


def test_build_has_the_licence_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["build", "--help"])
    out = capsys.readouterr().out
    assert "--allow-non-cc" in out and "Creative Commons" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["validate", "rl", "missing.jsonl"], "missing.jsonl"),
        (["build", "eval", "--source", "nowhere", "--out", "out"], "nowhere: no such file or folder"),
        (["publish", ".", "--repo-id", "org/name", "--dry-run"], "README.md"),
    ],
)
def test_bad_input_is_one_clear_line(
    argv: list[str],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") <= 2


def test_build_from_the_wrong_release_folder_says_what_it_looked_for(
    sample_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    train_only = tmp_path / "train"
    shutil.copytree(sample_corpus / "VideoKR-Train", train_only)
    assert main(["build", "eval", "--source", str(train_only), "--out", str(tmp_path / "out")]) == 2
    assert "no VideoKR_eval.jsonl here or two levels below" in capsys.readouterr().err


def _command_paths(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = [prefix]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                paths += _command_paths(sub, (*prefix, name))
    return paths


@pytest.mark.parametrize("path", _command_paths(build_parser()), ids=lambda p: " ".join(p) or "videokr")
def test_every_command_has_working_help(path: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*path, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "usage: videokr" in out
    # Help is written for users: no module docstrings (reST literals, function names) leak into it.
    assert "``" not in out and "add_pipeline_commands" not in out


def test_help_does_not_import_the_heavy_stack() -> None:
    """`videokr --help` answers instantly: building the parser imports no torch, lighteval or nltk."""
    code = (
        "import sys; from videokr.cli import build_parser; build_parser(); "
        "heavy = ('torch', 'lighteval', 'transformers', 'nltk', 'datasets'); "
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_an_unexpected_error_is_one_line_unless_debug(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import videokr.cli as cli_module

    def broken(args: argparse.Namespace) -> int:
        raise RuntimeError("the sampler fell over")

    monkeypatch.setattr(cli_module, "_sample", broken)
    assert main(["sample", str(tmp_path / "s")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "RuntimeError: the sampler fell over" in err and "--debug" in err
    with pytest.raises(RuntimeError, match="fell over"):
        main(["--debug", "sample", str(tmp_path / "s")])
