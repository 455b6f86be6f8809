"""Packed values through the KV source (a fake Cloudflare KV REST API on
127.0.0.1) and the directory source (a real file): the checked-in fixture
``tests/conformance/packed/`` (``cases.json``) is accepted and evaluates as
its JSON does; every refused value it lists is refused with a
:class:`PackedSnapshotError`, the last good snapshot serving."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from bunting import (
    BuntingClient,
    PackedSnapshotError,
    PackedVersionMismatch,
    SourceError,
    encode_key,
)
from bunting.packed import snapshot_bytes
from conftest import REPO

FIXTURE = REPO / "tests" / "conformance" / "packed"
CASES: dict[str, Any] = json.loads((FIXTURE / "cases.json").read_text())
ENV: str = CASES["environment"]
JSON_TEXT = (FIXTURE / CASES["snapshot"]).read_bytes()
PACKED = (FIXTURE / CASES["packed"]).read_bytes()
VERSION: int = json.loads(JSON_TEXT)["version"]
NOW_MS = 1_796_000_000_000  # 2026-11-30: a fixed clock for schedules


def answers(client: BuntingClient) -> list[list[dict[str, Any]]]:
    return [client.evaluate_all(ctx, now_ms=NOW_MS) for ctx in CASES["contexts"]]


@pytest.fixture(scope="module")
def json_answers() -> list[list[dict[str, Any]]]:
    c = BuntingClient.from_snapshot(JSON_TEXT)
    assert c.start()
    try:
        return answers(c)
    finally:
        c.close()


def kv_client(fake_server: Any, value: dict[str, bytes]) -> BuntingClient:
    def kv(method: str, path: str, headers: dict[str, str], _: bytes) -> tuple[int, dict[str, str], bytes]:
        assert path.endswith("/values/" + encode_key(f"snapshot:{ENV}"))
        return 200, {"Content-Type": "application/octet-stream"}, value["v"]

    server = fake_server(kv)
    return BuntingClient.kv(
        account_id="acc", namespace_id="ns", api_token="t", environment=ENV,
        api_base=server.url, poll_interval=3600,
    )


def dir_client(tmp_path: Path, value: dict[str, bytes]) -> tuple[BuntingClient, Any]:
    path = tmp_path / encode_key(f"snapshot:{ENV}")

    def write() -> None:  # the publisher's atomic replacement
        tmp = tmp_path / "tmp"
        tmp.write_bytes(value["v"])
        os.replace(tmp, path)

    write()
    return BuntingClient.directory(tmp_path, ENV, poll_interval=3600), write


def check_source(client: BuntingClient, value: dict[str, bytes], publish: Any, expected: Any) -> None:
    """The packed fixture serves as its JSON does; each refused value is
    refused, the fixture's snapshot serving throughout."""
    assert client.start(), client.status().last_error
    st = client.status()
    assert (st.status, st.snapshot_version) == ("ready", VERSION)
    assert answers(client) == expected
    for case in CASES["refused"]:
        value["v"] = (FIXTURE / case["file"]).read_bytes()
        publish()
        with pytest.raises(PackedSnapshotError) as err:
            client.refresh()
        assert isinstance(err.value, SourceError), "a fetch error"
        assert err.value.problem == case["problem"], case["name"]
        assert case["message"] in str(err.value), (case["name"], str(err.value))
        if case["problem"] == "version":
            assert isinstance(err.value, PackedVersionMismatch)
        st = client.status()
        assert (st.status, st.snapshot_version) == ("stale", VERSION), case["name"]
        assert st.last_error == str(err.value)
        assert answers(client) == expected, case["name"]
    # Published as JSON again: the same version, nothing to load, READY.
    value["v"] = JSON_TEXT
    publish()
    assert client.refresh() is False
    assert client.status().status == "ready"
    client.close()


def test_kv_source_reads_packed_values(fake_server: Any, json_answers: Any) -> None:
    value = {"v": PACKED}
    check_source(kv_client(fake_server, value), value, lambda: None, json_answers)


def test_directory_source_reads_packed_files(tmp_path: Path, json_answers: Any) -> None:
    value = {"v": PACKED}
    client, write = dir_client(tmp_path, value)
    check_source(client, value, write, json_answers)


def test_a_refused_packed_file_is_read_again_on_the_next_poll(tmp_path: Path) -> None:
    """The directory source records a file's identity only once it read it,
    so a refused file keeps being refused (and the status stale)."""
    value = {"v": PACKED}
    client, write = dir_client(tmp_path, value)
    assert client.start()
    value["v"] = (FIXTURE / "version-3.bsnp").read_bytes()
    write()
    for _ in range(2):
        with pytest.raises(PackedVersionMismatch):
            client.refresh()
    assert client.status().status == "stale"
    client.close()


def test_the_reader_on_its_own() -> None:
    assert snapshot_bytes(JSON_TEXT) is JSON_TEXT
    assert snapshot_bytes(PACKED) == JSON_TEXT
    with pytest.raises(PackedSnapshotError, match="ends early"):
        snapshot_bytes(b"BSNP\x01\x00")
    with pytest.raises(PackedSnapshotError, match="over 64 bits"):
        snapshot_bytes(b"BSNP\x01\x00\x00" + b"\xff" * 11)
    with pytest.raises(PackedSnapshotError, match="digest marker"):
        snapshot_bytes(b"BSNP\x01\x00\x07\x01")
    # A length that reaches into the header (or the digest) is past the end.
    with pytest.raises(PackedSnapshotError, match="ends early"):
        snapshot_bytes(b"BSNP\x01\x00\x01\x03" + b"x" * 33)


def test_packed_bootstrap_file_serves_as_its_json(
    tmp_path: Path, json_answers: list[list[dict[str, Any]]]
) -> None:
    """A packed bootstrap file (a copy of a KV value) is read as the JSON it
    carries when the source is down at start."""
    boot = tmp_path / "snapshot.bsnp"
    boot.write_bytes(PACKED)
    # Nothing listens on port 9 of the loopback (discard): the source is down.
    c = BuntingClient.edge(
        "http://127.0.0.1:9", "k", bootstrap_file=boot, poll_interval=3600, init_timeout=2
    )
    try:
        assert c.start(), c.status().last_error
        st = c.status()
        assert (st.status, st.from_bootstrap, st.snapshot_version) == ("stale", True, VERSION)
        assert answers(c) == json_answers
    finally:
        c.close()
