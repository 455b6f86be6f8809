"""Errors raised by the bunting client."""

from __future__ import annotations

from typing import Any


class BuntingError(Exception):
    """Base class of every bunting error."""


class EngineError(BuntingError):
    """The engine module is missing, invalid, or a call into it trapped."""


class SnapshotRejected(BuntingError):
    """A snapshot was not accepted (the last good one stays in use).

    ``problems`` lists the engine's validation problems, when it found any.
    """

    def __init__(self, message: str, problems: list[Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.problems = problems or []


class SchemaMismatch(SnapshotRejected):
    """The snapshot's ``schemaVersion`` is not the embedded engine's."""


class SourceError(BuntingError):
    """Fetching a snapshot from the source failed (network, HTTP status, I/O)."""


class PackedSnapshotError(SourceError):
    """A packed value (KV or directory source) the SDK cannot take the
    snapshot's JSON out of. ``problem`` says why: ``version``,
    ``no-document``, ``truncated``, ``corrupt``, ``encoding`` or
    ``damaged``."""

    def __init__(self, problem: str, message: str) -> None:
        super().__init__(message)
        self.problem = problem
        self.message = message


class PackedVersionMismatch(PackedSnapshotError):
    """A packed value is of a format version this package does not read."""


class NotReady(BuntingError):
    """The client has no snapshot yet (initialization failed or is pending)."""
