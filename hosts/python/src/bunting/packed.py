"""Values in the packed snapshot form (``bunting serve --kv-format packed``,
``bunting publish --packed``) from the KV and directory sources.

A packed value is ``BSNP``, the format version (``u16``, little-endian), a
digest byte (1: 32 digest bytes follow the header, 0: none), then the
document's length as an unsigned LEB128 int (0: no document, else its
length + 1). The document — the snapshot's published JSON text, byte for
byte — is the value's last bytes (the format: ``core/src/packed/mod.rs``). The
SDK takes that text and checks it exactly as a JSON value; the packed
tables before it are the edge's business, and only their digest is checked
here, to explain a document that is not UTF-8: a value cut at its tail
makes the header place the document inside the tables.

>>> snapshot_bytes(b'{"a": 1}')
b'{"a": 1}'
>>> snapshot_bytes(b"BSNP\\x01\\x00\\x00\\x09" + b"{\\"a\\": 1}")
b'{"a": 1}'
"""

from __future__ import annotations

import hashlib

from .errors import PackedSnapshotError, PackedVersionMismatch

#: The first bytes of every packed value.
MAGIC = b"BSNP"

#: The newest packed format version this package reads: it reads versions
#: 1 to this one, whose headers are alike (version 2 adds precompiled rule
#: conditions to the tables, which only the edge reads).
FORMAT_VERSION = 2


def snapshot_bytes(value: bytes) -> bytes:
    """The snapshot JSON of a KV or directory ``value``: the document a
    packed value carries, or ``value`` itself when it is not packed.

    Raises :class:`~bunting.errors.PackedVersionMismatch` for another format
    version and :class:`~bunting.errors.PackedSnapshotError` for a packed
    value without a document, cut short, or whose document is not UTF-8
    (``damaged`` when the tables then fail their digest: cut at the tail).
    """
    if not value.startswith(MAGIC):
        return value
    if len(value) < 7:
        raise PackedSnapshotError("truncated", "the packed snapshot ends early, inside its header")
    version = int.from_bytes(value[4:6], "little")
    if not 1 <= version <= FORMAT_VERSION:
        raise PackedVersionMismatch(
            "version",
            f"packed snapshot format version {version} is not one this package reads "
            f"(1 to {FORMAT_VERSION}); upgrade the package",
        )
    digest = value[6]
    if digest > 1:
        raise PackedSnapshotError(
            "corrupt", f"the packed snapshot's digest marker is {digest}, not 0 or 1"
        )
    at, n, shift = 7, 0, 0
    while True:  # the length: LEB128, at most 10 bytes
        if at >= len(value):
            raise PackedSnapshotError("truncated", "the packed snapshot ends early, inside its header")
        if shift > 63:
            raise PackedSnapshotError(
                "corrupt", "the packed snapshot's document length is over 64 bits"
            )
        b = value[at]
        at += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            break
    if n == 0:
        raise PackedSnapshotError(
            "no-document",
            "the packed snapshot carries no JSON document "
            "(the origin's publishers always pack one)",
        )
    length, tables = n - 1, at + 32 * digest
    if length > len(value) - tables:
        raise PackedSnapshotError(
            "truncated",
            f"the packed snapshot ends early: its document is {length} bytes, "
            f"{max(0, len(value) - tables)} follow its header",
        )
    document = value[len(value) - length :]
    try:
        document.decode("utf-8")
    except UnicodeDecodeError as e:
        # The tables run from the digest to the document: a value cut at its
        # tail moves where they end, which the digest notices.
        if digest == 1:
            sealed = value[at : at + 32]
            if hashlib.sha256(value[tables : len(value) - length]).digest() != sealed:
                raise PackedSnapshotError(
                    "damaged",
                    "the packed snapshot does not match its digest (cut short or damaged)",
                ) from e
        raise PackedSnapshotError(
            "encoding", "the packed snapshot's document is not UTF-8"
        ) from e
    return document
