"""Run a training script and record, per process, the row ids each step's batch held.

``torchrun --nproc_per_node N tests/record_rows.py {sft,grpo} RECORD_DIR SCRIPT_ARGS…``: the script's
own `cli`, with the SFT collator (or GRPO's rollout) wrapped to append each batch's ids and the number of
processes training, one JSON object per line, to ``RECORD_DIR/rank-<process index>.jsonl``: what a
multi-process test reads back.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any


def record(kind: str, folder: Path) -> None:
    # The launcher's variable: asking Accelerate here would fix its process state before the script does.
    log = folder / f"rank-{os.environ.get('RANK', '0')}.jsonl"

    def write(rows: Any) -> None:
        from accelerate import PartialState  # set up by the trainer by now

        line = {"ids": [row["id"] for row in rows], "processes": PartialState().num_processes}
        with log.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(line) + "\n")

    if kind == "sft":
        from videokr.training.collator import VideoSFTCollator

        call = VideoSFTCollator.__call__

        def collate(self: Any, rows: Any) -> Any:
            write(rows)
            return call(self, rows)

        VideoSFTCollator.__call__ = collate  # type: ignore[method-assign]
    else:
        from videokr.training.grpo_trainer import VideoGRPOTrainer

        rollout = VideoGRPOTrainer._generate_and_score_completions

        def generate(self: Any, inputs: Any) -> Any:
            write(inputs)
            return rollout(self, inputs)

        VideoGRPOTrainer._generate_and_score_completions = generate  # type: ignore[method-assign]


if __name__ == "__main__":
    kind, folder, *args = sys.argv[1:]
    record(kind, Path(folder))
    if kind == "sft":
        from videokr.training.sft import cli
    else:
        from videokr.training.grpo import cli
    cli(args)
