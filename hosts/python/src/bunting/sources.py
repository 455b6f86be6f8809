"""Where snapshots come from: the edge's snapshot endpoint, Cloudflare KV's
REST API, or the origin's directory publisher.

A source's ``fetch(timeout)`` returns the snapshot bytes, or ``None`` when
the source says nothing changed since the last successful fetch (an ETag
304, an unchanged file). It raises :class:`~bunting.errors.SourceError` on
any failure. Sources only move bytes; the client verifies them. The KV and
directory sources also read the packed form (``bunting serve --kv-format
packed``) and return the JSON it carries (:mod:`bunting.packed`); a packed
value they cannot read is a :class:`~bunting.errors.PackedSnapshotError`.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from .errors import SourceError
from .packed import snapshot_bytes

USER_AGENT = "bunting-server-sdk-python"


class Source(Protocol):
    """A snapshot source."""

    #: ``edge``, ``kv`` or ``directory`` (reported by ``status()``).
    kind: str

    def fetch(self, timeout: float) -> bytes | None:
        """New snapshot bytes, ``None`` if unchanged; raises SourceError."""
        ...

    def describe(self) -> str:
        """Where it reads, for status and errors (no secrets)."""
        ...


def _get(url: str, headers: dict[str, str], timeout: float) -> tuple[int, bytes, dict[str, str]]:
    req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, **headers})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - http(s) only
            return resp.status, resp.read(), {k.lower(): v for k, v in resp.headers.items()}
    except urllib.error.HTTPError as e:
        body = b""
        try:
            body = e.read()
        except Exception:
            pass
        return e.code, body, {k.lower(): v for k, v in (e.headers or {}).items()}
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        raise SourceError(f"GET {url}: {reason}") from e


def _status_error(url: str, status: int, body: bytes) -> SourceError:
    text = body[:300].decode("utf-8", "replace").strip()
    return SourceError(f"GET {url}: HTTP {status}" + (f": {text}" if text else ""))


@dataclass
class EdgeSource:
    """``GET {edge_url}/sdk/v1/snapshot`` with a server SDK key and ETags."""

    edge_url: str
    sdk_key: str
    kind: str = "edge"
    etag: str | None = field(default=None, repr=False)

    def url(self) -> str:
        return self.edge_url.rstrip("/") + "/sdk/v1/snapshot"

    def describe(self) -> str:
        return f"edge {self.url()}"

    def fetch(self, timeout: float) -> bytes | None:
        headers = {"Authorization": f"Bearer {self.sdk_key}", "Accept": "application/json"}
        if self.etag:
            headers["If-None-Match"] = self.etag
        status, body, resp_headers = _get(self.url(), headers, timeout)
        if status == 304:
            return None
        if status != 200:
            raise _status_error(self.url(), status, body)
        self.etag = resp_headers.get("etag")
        return body

    def forget(self) -> None:
        """Drop the ETag (after a body was rejected, fetch it whole again)."""
        self.etag = None


@dataclass
class KvSource:
    """Cloudflare KV REST: the value of ``snapshot:<environment>``.

    KV has no ETag: every poll downloads the value; the client skips the load
    when its checksum equals the current snapshot's.
    """

    account_id: str
    namespace_id: str
    api_token: str
    environment: str
    api_base: str = "https://api.cloudflare.com/client/v4"
    kind: str = "kv"

    def url(self) -> str:
        key = urllib.parse.quote(f"snapshot:{self.environment}", safe="")
        return (
            f"{self.api_base.rstrip('/')}/accounts/{self.account_id}"
            f"/storage/kv/namespaces/{self.namespace_id}/values/{key}"
        )

    def describe(self) -> str:
        return f"kv {self.url()}"

    def fetch(self, timeout: float) -> bytes | None:
        status, body, _ = _get(self.url(), {"Authorization": f"Bearer {self.api_token}"}, timeout)
        if status != 200:
            raise _status_error(self.url(), status, body)
        return snapshot_bytes(body)


def encode_key(key: str) -> str:
    """The directory publisher's file name for a KV key: every byte but
    ``A-Za-z0-9-_.~`` as ``%XX`` (uppercase hex).

    >>> encode_key("snapshot:acme/web/production")
    'snapshot%3Aacme%2Fweb%2Fproduction'
    """
    return urllib.parse.quote(key, safe="-_.~")


@dataclass
class DirectorySource:
    """The origin's directory publisher (``bunting serve --publish-dir DIR``):
    the file ``DIR/<encode_key("snapshot:<environment>")>``, written
    atomically. Polls the file's (mtime, size, inode) and reads it when they
    change."""

    directory: str
    environment: str
    kind: str = "directory"
    _stamp: tuple[int, int, int] | None = field(default=None, repr=False)

    def path(self) -> Path:
        return Path(self.directory) / encode_key(f"snapshot:{self.environment}")

    def describe(self) -> str:
        return f"directory {self.path()}"

    def fetch(self, timeout: float) -> bytes | None:
        path = self.path()
        try:
            st = os.stat(path)
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
            if stamp == self._stamp:
                return None
            data = path.read_bytes()
        except OSError as e:
            raise SourceError(f"cannot read {path}: {e.strerror or e}") from e
        data = snapshot_bytes(data)  # before the stamp: a refused file is read again
        self._stamp = stamp
        return data

    def forget(self) -> None:
        self._stamp = None


@dataclass
class FixedSource:
    """One snapshot held in memory (tests, offline tools): served once."""

    data: bytes = field(repr=False)
    kind: str = "fixed"
    _served: bool = field(default=False, repr=False)

    def describe(self) -> str:
        return "fixed snapshot"

    def fetch(self, timeout: float) -> bytes | None:
        if self._served:
            return None
        self._served = True
        return self.data

    def forget(self) -> None:
        self._served = False
