"""End to end: a real origin (``bunting serve`` with ``--publish-dir``), a
flag + server SDK key + experiment created through its HTTP API, the provider
reading the directory publisher's files, a flag change reaching it, and its
exposures appearing in the experiment's results.

``BUNTING_BIN`` picks the binary (default ``$BUNTING_TARGET_DIR/debug/bunting``).
Ingest is authenticated with the server SDK key, as in production: the
origin accepts it on ``POST /api/v1/events`` for its own environment.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.event import EventDetails, ProviderEvent
from openfeature.provider import ProviderStatus

from bunting import BuntingClient, BuntingProvider
from conftest import TARGET
from test_failures import wait_for

BIN = Path(os.environ.get("BUNTING_BIN") or TARGET / "debug" / "bunting")
ADMIN, SECRET = "e2e-admin-token", "e2e-ingest-secret"



@pytest.fixture(autouse=True)
def _built() -> None:
    """Never skipped: a missing binary fails, so `cargo xtask test` cannot pass without it."""
    assert BIN.is_file(), f"{BIN} is not built (cargo build -p bunting-origin --bin bunting)"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Origin:
    def __init__(self, publish_dir: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [str(BIN), "serve", "--listen", f"127.0.0.1:{self.port}", "--database-url", "sqlite::memory:",
             "--admin-token", ADMIN, "--ingest-secret", SECRET, "--publish-dir", str(publish_dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, "RUST_LOG": "warn"},
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{self.base}/readyz", timeout=1) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the origin did not start")
            time.sleep(0.05)

    def api(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> tuple[Any, str | None]:
        req = urllib.request.Request(
            f"{self.base}/api/v1{path}", method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"Bearer {ADMIN}", **({"Content-Type": "application/json"} if body is not None else {}), **(headers or {})},
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                text = r.read()
                return (json.loads(text) if text else None), r.headers.get("ETag")
        except urllib.error.HTTPError as e:
            raise AssertionError(f"{method} {path}: {e.code} {e.read()[:500]!r}") from None

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def test_flag_change_and_exposures_through_the_origin(tmp_path: Path) -> None:
    origin = Origin(tmp_path)
    try:
        p = "/orgs/acme/projects/web"
        env = f"{p}/environments/production"
        origin.api("POST", "/orgs", {"key": "acme", "name": "Acme"})
        origin.api("POST", "/orgs/acme/projects", {"key": "web", "name": "Web"})
        origin.api("POST", f"{p}/environments", {"key": "production", "name": "Production"})
        origin.api("POST", f"{p}/flags", {"key": "checkout", "flagType": "boolean",
                                          "variants": {"on": True, "off": False}, "offVariant": "off"})
        cfg = f"{p}/flags/checkout/environments/production"
        _, etag = origin.api("GET", cfg)
        origin.api("PUT", cfg, {"enabled": True, "rules": [], "fallthrough": {"rollout": [
            {"variant": "on", "weight": 50}, {"variant": "off", "weight": 50}]}}, {"If-Match": etag or ""})
        origin.api("POST", f"{p}/metrics", {"key": "purchased", "kind": "conversion", "event": "purchase"})
        x, _ = origin.api("POST", f"{env}/experiments", {"key": "one-page", "flag": "checkout", "control": "off",
                                                        "primaryMetric": "purchased"})
        origin.api("POST", f"{env}/experiments/one-page/start", None, {"If-Match": f'"{x["version"]}"'})
        key, _ = origin.api("POST", f"{env}/sdk-keys", {"kind": "server", "name": "python"})
        sdk_key = key["secret"]

        client = BuntingClient.directory(
            tmp_path, "acme/web/production", sdk_key=sdk_key, poll_interval=0.1,
            ingest_url=f"{origin.base}/api/v1/events",
            flush_interval=0.2,
        )
        provider = BuntingProvider(client)
        changed: list[EventDetails] = []
        api.set_provider(provider, domain="e2e")
        of = api.get_client(domain="e2e")
        of.add_handler(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, changed.append)
        wait_for(lambda: of.get_provider_status() == ProviderStatus.READY, 15)

        # The publisher may write the environment's earlier versions first.
        wait_for(lambda: of.get_boolean_details("checkout", False, EvaluationContext("user-0")).reason == "SPLIT", 15)
        variants = {}
        for i in range(200):
            d = of.get_boolean_details("checkout", False, EvaluationContext(f"user-{i}"))
            assert d.reason == "SPLIT", d
            variants[f"user-{i}"] = d.variant
        assert set(variants.values()) == {"on", "off"}
        of.track("purchase", EvaluationContext("user-1"))

        # Kill switch through the API: the provider sees it via the published file.
        _, etag = origin.api("GET", cfg)
        origin.api("PUT", cfg, {"enabled": False, "rules": [], "fallthrough": {"rollout": [
            {"variant": "on", "weight": 50}, {"variant": "off", "weight": 50}]}}, {"If-Match": etag or ""})
        wait_for(lambda: of.get_boolean_details("checkout", True, EvaluationContext("user-1")).reason == "DISABLED", 15)
        wait_for(lambda: any("checkout" in (c.flags_changed or []) for c in changed), 5)

        assert client.flush(10), client.status().counters
        st = client.status()
        assert st.counters.exposures_sent == 200 and st.counters.exposures_rejected == 0, st

        def users() -> int:
            res, _ = origin.api("GET", f"{env}/experiments/one-page/results")
            return sum(a["users"] for a in res["arms"])

        wait_for(lambda: users() == 200, 15)
        res, _ = origin.api("GET", f"{env}/experiments/one-page/results")
        per_arm = {a["variant"]: a["users"] for a in res["arms"]}
        assert per_arm == {v: list(variants.values()).count(v) for v in ("on", "off")}
        api.shutdown()
    finally:
        origin.stop()
