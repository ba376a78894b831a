"""lighteval's own command line, made usable offline: ``python -m videokr.evaluation.lighteval_cli …``.

It takes exactly the arguments of the ``lighteval`` command (``custom``, ``tasks``, …). The only
difference: before lighteval builds its task registry, `ensure_registry_importable` stands in for the
built-in task module that downloads a file at import (see `videokr.evaluation.compat`). The plain
``lighteval`` command cannot get this from our task file, because lighteval imports its built-in tasks
before it reads ``--custom-tasks``.
"""

from __future__ import annotations

import os

from videokr.data.local import refresh_shared_cache
from videokr.evaluation.compat import ensure_registry_importable


def main() -> None:
    ensure_registry_importable()
    from videokr.evaluation.tasks import DATASET_ENV

    # lighteval loads a local dataset folder through the shared datasets cache, which may hold another
    # folder's rows under the same name (see `videokr.data.local`).
    if location := os.environ.get(DATASET_ENV):
        refresh_shared_cache(location)
    from lighteval.__main__ import app

    app(prog_name="lighteval")


if __name__ == "__main__":
    main()
