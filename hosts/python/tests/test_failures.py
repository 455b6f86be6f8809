"""Sources, verification, fail-static refresh, provider events and the
exposure pipeline, against local HTTP servers on 127.0.0.1."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any, Callable

import pytest
from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.event import EventDetails, ProviderEvent
from openfeature.provider import ProviderStatus

from bunting import BuntingClient, BuntingProvider, encode_key
from conftest import snapshot

ENV = "acme/web/production"
KEY = "srv-test-key"


def wait_for(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


class Edge:
    """A fake edge snapshot endpoint: serves ``self.body`` with an ETag."""

    def __init__(self, make: Callable[..., Any]) -> None:
        self.body: bytes | None = json.dumps(snapshot(1)).encode()
        self.down = False
        self.server = make(self.handle)
        self.url = self.server.url

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        if self.down:
            return 503, {}, b'{"errorCode":"GENERAL","errorDetails":"no snapshot"}'
        if path != "/sdk/v1/snapshot" or headers.get("authorization") != f"Bearer {KEY}":
            return 401, {}, b'{"errorCode":"GENERAL","errorDetails":"bad key"}'
        assert self.body is not None
        try:
            etag = '"' + json.loads(self.body)["checksum"] + '"'
        except Exception:
            etag = '"garbage"'
        if headers.get("if-none-match") == etag:
            return 304, {"ETag": etag}, b""
        return 200, {"ETag": etag, "Content-Type": "application/json"}, self.body


class Ingest:
    """A fake origin ingest endpoint recording accepted batches."""

    def __init__(self, make: Callable[..., Any]) -> None:
        self.status = 202
        self.batches: list[dict[str, Any]] = []
        self.server = make(self.handle)
        self.url = self.server.url + "/api/v1/events"

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        if self.status == 202:
            self.batches.append(json.loads(body))
        return self.status, {}, b"{}"

    def exposures(self) -> list[dict[str, Any]]:
        return [e for b in self.batches if b["kind"] == "exposures" for e in b["exposures"]]


def edge_client(edge: Edge, **kw: Any) -> BuntingClient:
    kw.setdefault("poll_interval", 0.1)
    return BuntingClient.edge(edge.url, KEY, **kw)


def test_edge_source_etag_and_refresh(fake_server: Any) -> None:
    edge = Edge(fake_server)
    events: list[tuple[str, dict[str, Any]]] = []
    c = edge_client(edge)
    c.add_listener(lambda e, d: events.append((e, d)))
    assert c.start()
    assert c.status().status == "ready" and c.status().snapshot_version == 1
    assert c.evaluate("f", {"targetingKey": "u"})["value"] is True
    wait_for(lambda: any(r[2].get("if-none-match") for r in edge.server.requests))
    edge.body = json.dumps(snapshot(2, on=False)).encode()
    wait_for(lambda: c.status().snapshot_version == 2)
    assert c.evaluate("f", {"targetingKey": "u"})["value"] is False
    assert ("configuration_changed", {"flags_changed": ["f"]}) in events
    c.close()


@pytest.mark.parametrize(
    "bad,why",
    [
        (b"{not json", "not JSON"),
        (json.dumps({**snapshot(5), "checksum": "sha256:" + "1" * 64}).encode(), "checksum"),
        (json.dumps({k: v for k, v in snapshot(5).items() if k != "checksum"}).encode(), "no checksum"),
        (json.dumps(snapshot(0)).encode(), "older"),
        (json.dumps({**snapshot(5), "schemaVersion": 2}).encode(), "snapshot schema 2 is not the engine's 1"),
        (json.dumps(snapshot(5, environment="acme/web/staging")).encode(), "environment"),
    ],
    ids=["corrupt", "bad-checksum", "no-checksum", "older", "wrong-schema", "wrong-env"],
)
def test_bad_snapshot_rejected_last_good_kept(fake_server: Any, bad: bytes, why: str) -> None:
    edge = Edge(fake_server)
    c = edge_client(edge)
    stale = threading.Event()
    c.add_listener(lambda e, d: stale.set() if e == "stale" else None)
    assert c.start()
    edge.body = bad
    assert stale.wait(5)
    st = c.status()
    assert st.status == "stale" and st.snapshot_version == 1
    assert why in (st.last_error or ""), st.last_error
    assert c.evaluate("f", {"targetingKey": "u"})["value"] is True  # last good still serves
    # A good newer snapshot brings it back.
    edge.body = json.dumps(snapshot(7)).encode()
    wait_for(lambda: c.status().status == "ready" and c.status().snapshot_version == 7)
    c.close()


def test_source_down_at_start_uses_bootstrap(fake_server: Any, tmp_path: Path) -> None:
    edge = Edge(fake_server)
    edge.down = True
    boot = tmp_path / "bootstrap.json"
    boot.write_text(json.dumps(snapshot(3)))
    c = edge_client(edge, bootstrap_file=boot)
    provider = BuntingProvider(c)
    seen: list[ProviderEvent] = []
    api.add_handler(ProviderEvent.PROVIDER_STALE, lambda d: seen.append(ProviderEvent.PROVIDER_STALE))
    api.set_provider(provider, domain="bootstrap")
    client = api.get_client(domain="bootstrap")
    wait_for(lambda: client.get_provider_status() == ProviderStatus.STALE)
    st = c.status()
    assert st.from_bootstrap and st.snapshot_version == 3 and "503" in (st.last_error or "")
    assert client.get_boolean_value("f", False, EvaluationContext("u")) is True
    # The source comes back: READY, and the newer snapshot replaces the bootstrap.
    edge.down = False
    edge.body = json.dumps(snapshot(4, on=False)).encode()
    wait_for(lambda: client.get_provider_status() == ProviderStatus.READY and c.status().snapshot_version == 4)
    assert client.get_boolean_value("f", True, EvaluationContext("u")) is False
    api.shutdown()


def test_no_source_no_bootstrap_is_fatal(fake_server: Any) -> None:
    edge = Edge(fake_server)
    edge.down = True
    c = edge_client(edge)
    provider = BuntingProvider(c)
    errors: list[EventDetails] = []
    api.add_handler(ProviderEvent.PROVIDER_ERROR, errors.append)
    api.set_provider(provider, domain="fatal")
    client = api.get_client(domain="fatal")
    wait_for(lambda: client.get_provider_status() in (ProviderStatus.ERROR, ProviderStatus.FATAL))
    assert c.status().status == "error"
    d = client.get_boolean_details("f", True, EvaluationContext("u"))
    assert d.value is True and d.error_code is not None
    api.shutdown()


def test_provider_events_and_details(fake_server: Any) -> None:
    edge = Edge(fake_server)
    c = edge_client(edge)
    provider = BuntingProvider(c)
    changed: list[EventDetails] = []
    stale: list[EventDetails] = []
    api.set_provider_and_wait(provider, domain="events")
    client = api.get_client(domain="events")
    wait_for(lambda: client.get_provider_status() == ProviderStatus.READY)
    client.add_handler(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, changed.append)
    client.add_handler(ProviderEvent.PROVIDER_STALE, stale.append)
    d = client.get_string_details("split", "z", EvaluationContext("user-1"))
    assert d.reason == "SPLIT" and d.variant in ("a", "b") and d.value == d.variant
    assert client.get_string_details("nope", "z", EvaluationContext("u")).error_code.value == "FLAG_NOT_FOUND"
    assert client.get_integer_details("f", 3, EvaluationContext("u")).error_code.value == "TYPE_MISMATCH"
    edge.body = json.dumps(snapshot(2, on=False)).encode()
    wait_for(lambda: len(changed) == 1)
    assert changed[0].flags_changed == ["f"]
    edge.down = True
    wait_for(lambda: client.get_provider_status() == ProviderStatus.STALE)
    time.sleep(0.3)
    assert len(stale) == 1, "STALE is emitted once per transition"
    api.shutdown()


def test_kv_rest_source(fake_server: Any) -> None:
    body = {"v": json.dumps(snapshot(1)).encode()}
    seen: list[str] = []

    def kv(method: str, path: str, headers: dict[str, str], _: bytes) -> tuple[int, dict[str, str], bytes]:
        seen.append(path)
        if headers.get("authorization") != "Bearer cf-token":
            return 403, {}, b'{"success":false}'
        want = "/accounts/acc/storage/kv/namespaces/ns/values/" + encode_key(f"snapshot:{ENV}")
        if path != want:
            return 404, {}, b'{"success":false,"errors":[{"code":10009,"message":"key not found"}]}'
        return 200, {"Content-Type": "application/octet-stream"}, body["v"]

    server = fake_server(kv)
    c = BuntingClient.kv(
        account_id="acc", namespace_id="ns", api_token="cf-token", environment=ENV,
        api_base=server.url, poll_interval=0.1,
    )
    assert c.start() and c.status().snapshot_version == 1
    assert seen[0].endswith("snapshot%3Aacme%2Fweb%2Fproduction")
    body["v"] = json.dumps(snapshot(2, on=False)).encode()
    wait_for(lambda: c.status().snapshot_version == 2)
    assert c.evaluate("f", {"targetingKey": "u"})["value"] is False
    c.close()


def test_directory_source(tmp_path: Path) -> None:
    path = tmp_path / encode_key(f"snapshot:{ENV}")
    assert path.name == "snapshot%3Aacme%2Fweb%2Fproduction"
    path.write_text(json.dumps(snapshot(1)))
    c = BuntingClient.directory(tmp_path, ENV, poll_interval=0.05)
    assert c.start()
    tmp = tmp_path / "tmp"
    tmp.write_text(json.dumps(snapshot(2, on=False)))
    tmp.rename(path)
    wait_for(lambda: c.status().snapshot_version == 2)
    path.unlink()
    wait_for(lambda: c.status().status == "stale")
    assert c.evaluate("f", {"targetingKey": "u"})["value"] is False
    c.close()


def test_exposures_dedup_batch_and_flush_on_close(fake_server: Any) -> None:
    edge, ingest = Edge(fake_server), Ingest(fake_server)
    c = edge_client(edge, ingest_url=ingest.url, flush_interval=60, hash_secret="s3cret")
    assert c.start()
    for i in range(50):
        for _ in range(3):  # the same user twice more: deduplicated
            c.evaluate("split", {"targetingKey": f"user-{i}", "geo": {"country": "DE"}, "device": {"type": "mobile"}})
        c.evaluate("f", {"targetingKey": f"user-{i}"})  # STATIC: no exposure
    c.evaluate("split", {"targetingKey": True})  # a boolean key: no exposure
    c.evaluate("split", {})  # no key: no exposure (and an error)
    assert ingest.batches == []  # nothing sent before flush_at / flush_interval
    assert c.close()
    exp = ingest.exposures()
    assert len(exp) == 50
    st = c.status()
    assert st.counters.exposures_sent == 50 and st.counters.exposures_deduplicated == 100
    e = exp[0]
    assert e["flag"] == "split" and e["variant"] in ("a", "b") and e["environment"] == ENV
    assert e["snapshotVersion"] == 1 and e["country"] == "DE" and e["deviceType"] == "mobile"
    assert e["bucketingKeyHash"] == c.hash_keys(["user-0"])[0] and len(e["bucketingKeyHash"]) == 32
    auth = {r[2]["authorization"] for r in ingest.server.requests}
    assert auth == {f"Bearer {KEY}"}


def test_flush_at_and_batch_limit(fake_server: Any) -> None:
    edge, ingest = Edge(fake_server), Ingest(fake_server)
    c = edge_client(edge, ingest_url=ingest.url, flush_interval=60, flush_at=100)
    assert c.start()
    for i in range(1200):
        c.evaluate("split", {"targetingKey": f"n{i}"})
    wait_for(lambda: c.status().counters.exposures_sent >= 1100)
    c.close()
    assert c.status().counters.exposures_sent == 1200
    assert max(len(b["exposures"]) for b in ingest.batches) <= 500


def test_ingest_down_bounded_buffer_drops_counted(fake_server: Any) -> None:
    edge, ingest = Edge(fake_server), Ingest(fake_server)
    ingest.status = 503
    # No timed flush during the loop (a batch in flight would free room in
    # the queue at a moment that depends on the machine's speed).
    c = edge_client(edge, ingest_url=ingest.url, flush_interval=60, flush_at=1000, max_queued_exposures=100)
    assert c.start()
    for i in range(300):
        r = c.evaluate("split", {"targetingKey": f"u{i}"})
        assert r["reason"] == "SPLIT"  # evaluations unaffected
    assert c.flush(1) is False  # the origin is down
    st = c.status()
    assert st.counters.failed_requests >= 1
    assert st.exposures_pending == 100 and st.counters.exposures_dropped == 200
    assert "503" in (st.counters.last_ingest_error or "")
    # The origin comes back: the buffered (oldest) exposures are delivered.
    ingest.status = 202
    assert c.flush(5)
    assert c.status().counters.exposures_sent == 100
    assert {e["bucketingKeyHash"] for e in ingest.exposures()} == set(c.hash_keys([f"u{i}" for i in range(100)]))
    c.close()


def test_ingest_rejects_batch_4xx(fake_server: Any) -> None:
    edge, ingest = Edge(fake_server), Ingest(fake_server)
    ingest.status = 403
    c = edge_client(edge, ingest_url=ingest.url, flush_interval=60)
    assert c.start()
    c.evaluate("split", {"targetingKey": "u"})
    c.close()
    st = c.status()
    assert st.counters.exposures_rejected == 1 and st.exposures_pending == 0


def test_ingest_unreachable_close_is_bounded(fake_server: Any) -> None:
    edge = Edge(fake_server)
    c = edge_client(edge, ingest_url="http://127.0.0.1:9/api/v1/events", flush_interval=60)
    assert c.start()
    c.evaluate("split", {"targetingKey": "u"})
    assert c.close(timeout=1.0) is False
    assert c.status().exposures_pending == 1


def test_track_events(fake_server: Any) -> None:
    edge, ingest = Edge(fake_server), Ingest(fake_server)
    c = edge_client(edge, ingest_url=ingest.url, flush_interval=60)
    provider = BuntingProvider(c)
    api.set_provider(provider, domain="track")
    client = api.get_client(domain="track")
    wait_for(lambda: client.get_provider_status() == ProviderStatus.READY)
    from openfeature.track import TrackingEventDetails

    client.track("purchase", EvaluationContext("user-1"), TrackingEventDetails(value=9.5))
    c.track("signup", {"targetingKey": 42})
    with pytest.raises(ValueError):
        c.track("bad name!", {"targetingKey": "u"})
    client.track("bad name!", EvaluationContext("u"))  # logged, never raises
    api.shutdown()
    events = [e for b in ingest.batches if b["kind"] == "events" for e in b["events"]]
    assert [b["environment"] for b in ingest.batches if b["kind"] == "events"] == [ENV]
    assert [(e["name"], e.get("value")) for e in events] == [("purchase", 9.5), ("signup", None)]
    assert events[0]["targetingKeyHash"] == c.hash_keys(["user-1"])[0]
    assert len(events[0]["id"]) == 36


def test_threads_and_asyncio(fake_server: Any) -> None:
    import asyncio

    edge = Edge(fake_server)
    c = edge_client(edge)
    assert c.start()
    results: list[Any] = []

    def work() -> None:
        results.extend(c.evaluate("split", {"targetingKey": f"t{i}"})["variant"] for i in range(200))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 800 and set(results) == {"a", "b"}

    async def main() -> bool:
        assert c.evaluate("f", {"targetingKey": "u"})["value"] is True
        return await c.aclose()

    assert asyncio.run(main())
