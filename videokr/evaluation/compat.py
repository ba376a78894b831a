"""Make lighteval's task registry importable offline, without touching the installed package.

lighteval 0.13 builds its registry by importing every built-in task module, and one of them
(``lighteval.tasks.tasks.tiny_benchmarks``) downloads ``tinyBenchmarks.pkl`` from GitHub *at import time*
unless the file already sits next to the module. Offline that import raises, and with it every
``Registry(...)``, so no task at all (ours included) can be loaded. The pickle is only an existence check
there (the metric later reads a different, relative path), so nothing we run needs it.

`ensure_registry_importable` runs before we build a registry: when the pickle is absent and the real
module cannot be imported (offline, or the download fails), it registers an empty stand-in module under
the same name. The registry then simply finds no TinyBenchmarks tasks in this process; no file is
written anywhere and the installed lighteval is left as it is.

Offline, the IFEval task module (``lighteval.tasks.tasks.ifeval.instructions_utils``) also tries
``nltk.download("punkt")`` / ``("punkt_tab")`` at import, and nltk prints two "Error loading punkt"
messages for a resource none of our tasks use. `ensure_registry_importable` imports that module first
with ``nltk.download`` answering "not available" quietly; the registry then finds it already imported.

A third import-time side effect: ``lighteval.pipeline`` imports lighteval's transformers model module,
which calls ``torch.set_grad_enabled(False)`` when imported, switching autograd off for the rest of the
importing thread. A training step run later in the same process then fails ("does not require grad").
`import_pipeline` imports it and puts the grad mode back.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import sys
import types
from pathlib import Path

__all__ = ["TINY_BENCHMARKS_MODULE", "ensure_registry_importable", "import_pipeline"]

logger = logging.getLogger(__name__)

TINY_BENCHMARKS_MODULE = "lighteval.tasks.tasks.tiny_benchmarks"
#: Built-in task modules that call ``nltk.download`` when imported.
NLTK_AT_IMPORT_MODULES = ("lighteval.tasks.tasks.ifeval.instructions_utils",)


def _offline() -> bool:
    return any(
        os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"} for name in _OFFLINE_VARS
    )


_OFFLINE_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")


def _pickle_present() -> bool:
    spec = importlib.util.find_spec(TINY_BENCHMARKS_MODULE)
    if spec is None or spec.origin is None:
        return True  # nothing to import, nothing to fail
    return (Path(spec.origin).parent / "tinyBenchmarks.pkl").is_file()


def ensure_registry_importable() -> bool:
    """Make ``Registry(...)`` safe to build in this process; True when the stand-in was installed.

    Online with the download working, the real module is imported (and lighteval caches the pickle as
    it always does). In offline mode (``HF_HUB_OFFLINE`` and friends) no download is attempted at all.
    """
    if _offline():
        _import_without_nltk_downloads(NLTK_AT_IMPORT_MODULES)
    if TINY_BENCHMARKS_MODULE in sys.modules or _pickle_present():
        return False
    if not _offline():
        try:
            importlib.import_module(TINY_BENCHMARKS_MODULE)
            return False
        except Exception as error:  # any failure of the download makes the whole registry unusable
            sys.modules.pop(TINY_BENCHMARKS_MODULE, None)
            logger.warning(
                "lighteval's TinyBenchmarks tasks are unavailable (%s); continuing without them", error
            )
    stand_in = types.ModuleType(TINY_BENCHMARKS_MODULE)
    stand_in.__doc__ = "Stand-in for lighteval's TinyBenchmarks tasks: their data cannot be fetched here."
    stand_in.TASKS_TABLE = []
    sys.modules[TINY_BENCHMARKS_MODULE] = stand_in
    return True


def _import_without_nltk_downloads(modules: tuple[str, ...]) -> None:
    """Import `modules` with ``nltk.download`` returning False silently (offline it can only fail, loudly)."""
    import nltk

    download = nltk.download
    nltk.download = lambda *_args, **_kwargs: False
    try:
        for name in modules:
            if name in sys.modules or importlib.util.find_spec(name) is None:
                continue
            try:
                importlib.import_module(name)
            except Exception as error:  # the registry will raise it again, with lighteval's context
                sys.modules.pop(name, None)
                logger.debug("pre-importing %s failed: %s", name, error)
    finally:
        nltk.download = download


def import_pipeline() -> types.ModuleType:
    """``lighteval.pipeline``, without leaving autograd switched off (see the module docstring)."""
    import torch

    enabled = torch.is_grad_enabled()
    try:
        return importlib.import_module("lighteval.pipeline")
    finally:
        torch.set_grad_enabled(enabled)
