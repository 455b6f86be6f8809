"""Differential test: the Python host (wasmtime) against native bunting-core
(``target/debug/examples/evaluate``, built by ``cargo build -p bunting-core
--example evaluate``) on seeded random contexts."""

from __future__ import annotations

import json
import os
import random
import subprocess
from pathlib import Path
from typing import Any

import pytest

from bunting import BuntingClient
from conftest import REPO, TARGET
from test_conformance import same

NATIVE = Path(os.environ.get("BUNTING_EVALUATE_BIN") or TARGET / "debug" / "examples" / "evaluate")
SNAPSHOTS = [REPO / "wasm-host" / "tests" / "data" / "prop_snapshot.json", REPO / "examples" / "demo-snapshot.json"]
CONTEXTS = int(os.environ.get("BUNTING_DIFF_CONTEXTS", "1200"))
NOWS = [1_767_225_600_000, 1_771_155_000_000, 1_773_532_799_999]



@pytest.fixture(autouse=True)
def _built() -> None:
    """Never skipped: a missing binary fails, so `cargo xtask test` cannot pass without it."""
    assert NATIVE.is_file(), f"{NATIVE} is not built (cargo build -p bunting-core --example evaluate)"

TEXT = ["", "alice", "bob", "mallory", "Ünïcødé", "user-1", "user-12", "user-2", "zed", "ALICE@EXAMPLE.COM",
        "jane.doe@acme.io", "x@bunting.dev", "Bob@Bunting.Dev", "US", "CA", "DE", "FR", "JP", "free", "pro",
        "team", "enterprise", "vip", "admin", "early-access", "mobile", "desktop", "1.0.0", "2.1", "v3.0.1",
        "3.0.0-beta"]
VERSIONS = ["1.0.0", "1.9.9", "2", "2.0", "2.1", "2.1.0", "2.1.0-beta.1", "2.10.3", "v3.0.1", "3.0.0",
            "3.0.0-rc.1", "3.1", "10.0.0+build.5", "banana", "", "1.2.3.4"]


def text(r: random.Random) -> str:
    roll = r.random()
    if roll < 0.6:
        return r.choice(TEXT)
    if roll < 0.85:
        return "".join(r.choice("abcdefghijklmnopqrstuvwxyz.@") for _ in range(r.randint(0, 14)))
    return "".join(chr(r.randint(0x20, 0x2FF)) for _ in range(r.randint(0, 8)))


def junk(r: random.Random, depth: int = 0) -> Any:
    roll = r.randint(0, 6 if depth < 2 else 4)
    makers = [
        lambda: None,
        lambda: r.random() < 0.5,
        lambda: r.randint(-10**12, 10**12),
        lambda: r.uniform(-1e6, 1e6),
        lambda: text(r),
        lambda: [junk(r, depth + 1) for _ in range(r.randint(0, 2))],
        lambda: {text(r)[:3] or "k": junk(r, depth + 1) for _ in range(r.randint(0, 2))},
    ]
    return makers[roll]()


def attr(r: random.Random, good: Any) -> Any:
    roll = r.random()
    if roll < 0.67:
        return good() if callable(good) else good
    if roll < 0.89:
        return KeyError  # missing
    return junk(r)


def context(r: random.Random) -> dict[str, Any]:
    country = lambda: r.choice(["US", "CA", "MX", "DE", "FR", "IT", "ES", "NL", "JP", "BR"]) if r.random() < 0.8 else text(r)[:3]
    version = lambda: r.choice(VERSIONS) if r.random() < 0.75 else f"{r.randint(0, 11)}.{r.randint(0, 11)}.{r.randint(0, 11)}"
    fields = {
        "targetingKey": (lambda: text(r)) if r.random() < 0.8 else (lambda: f"user-{r.randint(0, 99999)}"),
        "country": country,
        "app": lambda: {"version": version()} if r.random() < 0.95 else version(),
        "age": lambda: r.choice([r.randint(0, 110), r.uniform(0, 110), "young", "42", None, True, 17.999, 65]),
        "email": lambda: f"{text(r)[:6] or 'a'}@{r.choice(['example.com', 'EXAMPLE.COM', 'bunting.dev', 'Bunting.Dev', 'acme.io'])}",
        "plan": lambda: r.choice(["free", "pro", "team", "enterprise", "Free", ""]),
        "tags": lambda: [r.choice(["vip", "admin", "early-access", "beta", "x"]) for _ in range(r.randint(0, 3))] if r.random() < 0.7 else "vip",
        "signupDate": lambda: r.randint(1_700_000_000_000, 1_780_000_000_000) if r.random() < 0.5 else r.choice(
            ["2024-12-31T23:59:59Z", "2025-06-01T00:00:00Z", "2025-06-01T01:00:00+02:00", "not a date", "2025-02-30T00:00:00Z"]),
        "org": lambda: {"id": r.choice([r.randint(0, 499), f"org-{r.randint(0, 999)}", r.uniform(0, 10)])},
        "account": lambda: text(r),
        "beta": lambda: r.random() < 0.5,
        "device": lambda: {"type": r.choice(["mobile", "desktop"])} if r.random() < 0.5 else r.choice(["mobile", "desktop"]),
        "score": lambda: r.uniform(-1, 200),
        "name": lambda: text(r),
    }
    out: dict[str, Any] = {}
    for k, gen in fields.items():
        if k == "targetingKey" and r.random() < 0.1:
            v = KeyError if r.random() < 0.5 else junk(r)
        else:
            v = attr(r, gen)
        if v is not KeyError:
            out[k] = v
    return out


def diff(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    keys = set(a) | set(b)
    return [f"{k}: python {a.get(k)!r} native {b.get(k)!r}" for k in sorted(keys) if not same(a.get(k), b.get(k))]


@pytest.mark.parametrize("path", SNAPSHOTS, ids=lambda p: p.name)
def test_matches_native(path: Path, tmp_path: Path) -> None:
    rng = random.Random(20261202)
    contexts = {f"c{i}": context(rng) for i in range(CONTEXTS)}
    ctx_file = tmp_path / "contexts.json"
    ctx_file.write_text(json.dumps(contexts))
    client = BuntingClient.from_snapshot(path.read_bytes(), require_checksum=False)
    assert client.start(), client.status().last_error
    compared = 0
    for now in NOWS:
        out = subprocess.run([str(NATIVE), str(path), str(ctx_file), str(now)], capture_output=True, check=True, timeout=300)
        native = json.loads(out.stdout)
        for name, ctx in contexts.items():
            mine = client.evaluate_all(ctx, now_ms=now)
            theirs = native[name]
            assert [e["key"] for e in mine] == [e["key"] for e in theirs]
            for m, t in zip(mine, theirs):
                assert not diff(m, t), (name, ctx, m["key"], diff(m, t))
                compared += 1
            if name < "c2":  # single-flag path too, for a slice of the contexts
                for t in theirs:
                    single = client.evaluate(t["key"], ctx, now_ms=now)
                    assert not diff(single, t), (name, t["key"], diff(single, t))
    assert compared >= 1000 * len(NOWS)
    print(f"{path.name}: {len(contexts)} contexts x {len(NOWS)} times, {compared} evaluations identical to native")
