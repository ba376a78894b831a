"""How the training scripts start: parse the recipe and the command line, run, and fail in one line.

A user's mistake (a missing dataset, a checkpoint that is not there, an option the scripts refuse) is
one ERROR line naming it and the fix, then exit status 2; a traceback would bury that line under the
trainer's and accelerate's frames. ``VIDEOKR_DEBUG=1`` re-raises instead, for the traceback.
(``--debug`` is taken: it is a `transformers.TrainingArguments` field.)
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from trl import TrlParser

from videokr.errors import VideoKRError

__all__ = ["DEBUG_ENV", "run_script"]

DEBUG_ENV = "VIDEOKR_DEBUG"
logger = logging.getLogger("videokr.training")


def run_script(main: Callable[..., None], dataclasses: Sequence[type], args: list[str] | None = None) -> None:
    """``main(*parsed)`` for ``--config <recipe>`` plus overrides; user errors end the process, one line."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    debug = os.environ.get(DEBUG_ENV, "").strip().lower() in {"1", "true", "yes"}
    try:
        parsed: Any = TrlParser(tuple(dataclasses)).parse_args_and_config(args)
        main(*parsed)
    except (VideoKRError, ValueError, FileNotFoundError) as error:
        if debug:
            raise
        logger.error("%s (%s=1 shows the traceback)", error, DEBUG_ENV)
        sys.exit(2)
