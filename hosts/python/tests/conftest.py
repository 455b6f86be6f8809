"""Shared test setup: where the engine module and native binaries are.

``BUNTING_TARGET_DIR`` names the cargo target directory holding
``wasm/bunting_core_abi.wasm`` (``cargo xtask wasm``),
``debug/examples/evaluate`` and ``debug/bunting``; it defaults to the
repository's ``target/``. ``BUNTING_CORE_WASM`` and ``BUNTING_BIN`` override
single files.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

import pytest

REPO = Path(__file__).resolve().parents[3]
TARGET = Path(os.environ.get("BUNTING_TARGET_DIR") or REPO / "target")

if not os.environ.get("BUNTING_CORE_WASM"):
    packaged = Path(__file__).resolve().parents[1] / "src" / "bunting" / "bunting_core_abi.wasm"
    if not packaged.is_file():
        os.environ["BUNTING_CORE_WASM"] = str(TARGET / "wasm" / "bunting_core_abi.wasm")


def seal(doc: dict[str, Any]) -> dict[str, Any]:
    """Gives a hand-written snapshot its real checksum. Test-only: asks the
    engine, whose checksum-mismatch error names the content's hash."""
    from bunting import SnapshotRejected, _wasm

    doc = {k: v for k, v in doc.items() if k != "checksum"}
    probe = {**doc, "checksum": "sha256:" + "0" * 64}
    try:
        _wasm.runtime().instance().load(json.dumps(probe).encode())
    except SnapshotRejected as e:
        m = re.search(r"hashes to (sha256:[0-9a-f]{64})", e.message + json.dumps(e.problems))
        assert m, e.message
        return {**doc, "checksum": m.group(1)}
    raise AssertionError("a wrong checksum was accepted")


def snapshot(version: int = 1, environment: str = "acme/web/production", **flags: Any) -> dict[str, Any]:
    """A sealed snapshot with one boolean flag ``f`` (on unless ``on=False``)
    and a 50/50 split flag ``split``."""
    on = flags.get("on", True)
    return seal(
        {
            "schemaVersion": 1,
            "environment": environment,
            "version": version,
            "generatedAt": "2026-11-25T00:00:00Z",
            "flags": [
                {
                    "key": "f",
                    "type": "boolean",
                    "variants": {"on": True, "off": False},
                    "offVariant": "off",
                    "fallthrough": {"variant": "on" if on else "off"},
                },
                {
                    "key": "split",
                    "type": "string",
                    "variants": {"a": "a", "b": "b"},
                    "offVariant": "a",
                    "fallthrough": {"rollout": [{"variant": "a", "weight": 50}, {"variant": "b", "weight": 50}]},
                },
            ],
        }
    )


class FakeServer:
    """A local HTTP server on 127.0.0.1 whose answers the test sets."""

    def __init__(self, handler: Callable[[str, str, dict[str, str], bytes], tuple[int, dict[str, str], bytes]]):
        self.handler = handler
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        outer = self

        class H(BaseHTTPRequestHandler):
            def _do(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                outer.requests.append((self.command, self.path, headers, body))
                status, rh, rb = outer.handler(self.command, self.path, headers, body)
                self.send_response(status)
                for k, v in rh.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(rb)))
                self.end_headers()
                self.wfile.write(rb)

            do_GET = do_POST = _do

            def log_message(self, *a: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def fake_server() -> Iterator[Callable[..., FakeServer]]:
    servers: list[FakeServer] = []

    def make(handler: Callable[..., tuple[int, dict[str, str], bytes]]) -> FakeServer:
        s = FakeServer(handler)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.close()
