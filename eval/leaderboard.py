"""Leaderboard across VideoKR-Eval runs (Markdown, CSV, PNG), without the ``videokr`` command:

    python eval/leaderboard.py results/ other_results/ --out leaderboard/

Same as ``videokr leaderboard``; the code is `videokr.evaluation.leaderboard`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from videokr.evaluation.leaderboard import leaderboard_command


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results_dirs", type=Path, nargs="+", metavar="RESULTS_DIR")
    parser.add_argument(
        "--out", type=Path, default=None, help="output folder (default: the first RESULTS_DIR)"
    )
    args = parser.parse_args(argv)
    return leaderboard_command(args.results_dirs, out=args.out)


if __name__ == "__main__":
    sys.exit(main())
