"""The whole conformance suite (tests/conformance/*.json, format in
core/src/conformance.rs) through the OpenFeature provider: single-flag cases
through the client's typed get_*_details, all-flag cases through
BuntingClient.evaluate_all (the OpenFeature Python SDK has no evaluate-all)."""

from __future__ import annotations

import json
import math
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from openfeature import api
from openfeature.evaluation_context import EvaluationContext

from bunting import BuntingClient, BuntingProvider
from conftest import REPO

FIXTURES = sorted((REPO / "tests" / "conformance").glob("*.json"))
DEFAULT = object()


def now_ms(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def same(a: Any, b: Any) -> bool:
    """JSON equality, numbers by value (1 == 1.0), bools not numbers."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=0, abs_tol=0) or a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def check(expect: dict[str, Any], got: dict[str, Any]) -> list[str]:
    diffs = []
    for name in ("value", "variant", "reason", "errorCode", "ruleId", "prerequisiteFailed"):
        if name in ("ruleId", "prerequisiteFailed") and name not in expect:
            continue
        if not same(got.get(name), expect.get(name)):
            diffs.append(f"{name}: expected {expect.get(name)!r}, got {got.get(name)!r}")
    return diffs


def of_context(ctx: Any) -> EvaluationContext | None:
    """Engine context -> OpenFeature context (None if it cannot be one)."""
    if not isinstance(ctx, dict):
        return None
    tk = ctx.get("targetingKey")
    attrs = dict(ctx)
    if isinstance(tk, str) and tk:
        del attrs["targetingKey"]
        return EvaluationContext(targeting_key=tk, attributes=attrs)
    # A numeric (or otherwise typed) key travels as the attribute, and so does
    # "" (the SDK's context merge turns an empty targeting_key into None).
    return EvaluationContext(attributes=attrs)


def cases() -> list[Any]:
    out = []
    for path in FIXTURES:
        fixture = json.loads(path.read_text())
        for case in fixture["cases"]:
            out.append(pytest.param(path.name, fixture, case, id=f"{path.stem}:{case['name']}"))
    return out


_clients: dict[str, BuntingClient] = {}


def client_for(name: str, fixture: dict[str, Any]) -> BuntingClient:
    if name not in _clients:
        c = BuntingClient.from_snapshot(
            fixture["snapshot"], require_checksum=False, lenient=fixture.get("lenient", False)
        )
        assert c.start(), c.status().last_error
        _clients[name] = c
    return _clients[name]


TYPED = {
    "boolean": ("get_boolean_details", False),
    "string": ("get_string_details", ""),
    "number": ("get_float_details", 0.0),
    "object": ("get_object_details", {}),
}


def flag_type(fixture: dict[str, Any], key: str) -> str:
    for f in fixture["snapshot"].get("flags", []):
        if isinstance(f, dict) and f.get("key") == key and f.get("type") in TYPED:
            return str(f["type"])
    return "boolean"


@pytest.mark.parametrize("name,fixture,case", cases())
def test_case(name: str, fixture: dict[str, Any], case: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    client = client_for(name, fixture)
    now = now_ms(case["now"])
    if "flag" not in case:
        got = client.evaluate_all(case["context"], now_ms=now)
        by_key = {e["key"]: e for e in got}
        assert set(by_key) == set(case["expectAll"]), sorted(by_key)
        problems = [f"{k}: {d}" for k, e in case["expectAll"].items() for d in check(e, by_key[k])]
        assert not problems, problems
        return

    ctx = of_context(case["context"])
    if ctx is None:
        # An OpenFeature context is always an object; a non-object context
        # can only reach the engine through BuntingClient directly.
        got = client.evaluate(case["flag"], case["context"], expected_type=case.get("expectedType"), now_ms=now)
        assert not check(case["expect"], got), check(case["expect"], got)
        return

    # Pin the evaluation time the provider uses.
    original = client.evaluate
    monkeypatch.setattr(
        client, "evaluate", lambda flag, c, *, expected_type=None, now_ms=None: original(flag, c, expected_type=expected_type, now_ms=now)
    )
    provider = BuntingProvider(client)
    # openfeature-sdk 0.10 initializes a provider in a background thread:
    # evaluating before it is ready answers PROVIDER_NOT_READY.
    api.set_provider_and_wait(provider, domain=f"conformance-{name}-{id(case)}")
    of_client = api.get_client(domain=f"conformance-{name}-{id(case)}")
    typ = case.get("expectedType") or flag_type(fixture, case["flag"])
    method, default = TYPED[typ]
    details = getattr(of_client, method)(case["flag"], default, ctx)
    got = {
        "value": None if details.error_code else details.value,
        "variant": details.variant,
        "reason": details.reason.value if hasattr(details.reason, "value") else details.reason,
        "errorCode": details.error_code.value if details.error_code else None,
    }
    problems = check({k: v for k, v in case["expect"].items() if k not in ("ruleId", "prerequisiteFailed")}, got)
    if details.error_code:
        assert details.value == default, "the SDK default is returned on error"
    # ruleId / prerequisiteFailed are not OpenFeature fields: check them on the raw evaluation.
    raw = original(case["flag"], case["context"], expected_type=typ if case.get("expectedType") else None, now_ms=now)
    for extra in ("ruleId", "prerequisiteFailed"):
        if extra in case["expect"] and raw.get(extra) != case["expect"][extra]:
            problems.append(f"{extra}: expected {case['expect'][extra]!r}, got {raw.get(extra)!r}")
    if raw.get("metadata") is not None:
        assert dict(details.flag_metadata) == raw["metadata"]
    assert not problems, problems
