"""Errors that name what is wrong and where, so a user can fix the input rather than debug us."""

from __future__ import annotations


class VideoKRError(Exception):
    """Base class for every error this project raises on bad input."""


class RecordError(VideoKRError, ValueError):
    """A row of a release file that cannot become a canonical record.

    Carries the file, 1-based line, row id and field so reports can list problems by id and a user can
    open the exact line.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        row_id: str | None = None,
        field: str | None = None,
    ) -> None:
        self.reason = message
        self.file = file
        self.line = line
        self.row_id = row_id
        self.field = field
        super().__init__(self._render())

    def _render(self) -> str:
        where = []
        if self.file is not None:
            where.append(f"{self.file}:{self.line}" if self.line is not None else str(self.file))
        if self.row_id is not None:
            where.append(f"id={self.row_id!r}")
        if self.field is not None:
            where.append(f"field={self.field!r}")
        prefix = " ".join(where)
        return f"{prefix}: {self.reason}" if prefix else self.reason


class VideoDecodeError(VideoKRError, RuntimeError):
    """A clip that is missing, corrupt, empty or cannot be sampled; names the file and the backend."""

    def __init__(self, path: object, reason: str, *, backend: str | None = None) -> None:
        self.path = str(path)
        self.reason = reason
        self.backend = backend
        via = f" (backend {backend})" if backend else ""
        super().__init__(f"{self.path}: {reason}{via}")
