"""Exposures and metric events: deduplicated, queued in bounded memory and
sent in batches to the origin's ``POST /api/v1/events`` by a daemon thread.

Nothing here ever blocks or fails an evaluation: recording is a dict lookup
and a deque append under a lock; hashing the targeting keys (through the
engine) and HTTP happen on the flusher thread.
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any, Callable

from .sources import USER_AGENT

#: Most records in one request (the origin's batch limit).
MAX_BATCH = 500
EVENT_NAME = re.compile(r"^[A-Za-z0-9_.:\-]{1,128}$")


@dataclass
class Counters:
    """Exposure and event counters (cumulative since the client started)."""

    exposures_queued: int = 0
    exposures_sent: int = 0
    exposures_dropped: int = 0
    exposures_deduplicated: int = 0
    exposures_rejected: int = 0
    events_queued: int = 0
    events_sent: int = 0
    events_dropped: int = 0
    events_rejected: int = 0
    failed_requests: int = 0
    last_ingest_error: str | None = None


def targeting_key(context: Any) -> str | int | float | None:
    """The context's ``targetingKey`` if it is a string or a number."""
    if not isinstance(context, dict):
        return None
    key = context.get("targetingKey")
    if isinstance(key, bool) or not isinstance(key, (str, int, float)):
        return None
    return key


def _nested_str(context: dict[str, Any], outer: str, inner: str) -> str | None:
    obj = context.get(outer)
    if isinstance(obj, dict) and isinstance(obj.get(inner), str):
        return obj[inner]
    return None


class Reporter:
    """The bounded queues and their flusher thread."""

    def __init__(
        self,
        *,
        ingest_url: str,
        token: str,
        hash_keys: Callable[[list[Any]], list[str | None]],
        dedup_window: float = 300.0,
        dedup_capacity: int = 100_000,
        max_queued_exposures: int = 10_000,
        max_queued_events: int = 10_000,
        flush_interval: float = 2.0,
        flush_at: int = 100,
        request_timeout: float = 10.0,
        max_backoff: float = 60.0,
    ) -> None:
        self.ingest_url = ingest_url
        self._token = token
        self._hash_keys = hash_keys
        self.dedup_window = dedup_window
        self.dedup_capacity = dedup_capacity
        self.max_exposures = max_queued_exposures
        self.max_events = max_queued_events
        self.flush_interval = flush_interval
        self.flush_at = flush_at
        self.request_timeout = request_timeout
        self.max_backoff = max_backoff
        self.counters = Counters()
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._send_lock = threading.Lock()
        self._exposures: deque[dict[str, Any]] = deque()
        self._events: deque[dict[str, Any]] = deque()
        self._seen: OrderedDict[tuple[str, str, str], float] = OrderedDict()
        self._closed = False
        self._failures = 0
        self._retry_at = 0.0
        self._thread = threading.Thread(target=self._run, name="bunting-flusher", daemon=True)
        self._thread.start()

    # -- recording (evaluation path) ---------------------------------------

    def exposure(
        self, evaluation: dict[str, Any], context: Any, environment: str, version: int | None
    ) -> None:
        """Records the exposure of one evaluation, if it is one."""
        if evaluation.get("reason") != "SPLIT" or not evaluation.get("variant"):
            return
        key = targeting_key(context)
        if key is None:
            return
        now = time.time()
        flag, variant = evaluation["key"], evaluation["variant"]
        dedup = (json.dumps(key), flag, variant)
        record: dict[str, Any] = {
            "flag": flag,
            "variant": variant,
            "environment": environment,
            "time": int(now * 1000),
            "_key": key,
        }
        if evaluation.get("ruleId"):
            record["ruleId"] = evaluation["ruleId"]
        if version is not None:
            record["snapshotVersion"] = version
        country = _nested_str(context, "geo", "country")
        if country is not None:
            record["country"] = country
        device = _nested_str(context, "device", "type")
        if device is not None:
            record["deviceType"] = device
        with self._lock:
            seen = self._seen.get(dedup)
            if seen is not None and now - seen < self.dedup_window:
                self.counters.exposures_deduplicated += 1
                return
            if len(self._exposures) >= self.max_exposures:
                self.counters.exposures_dropped += 1
                return
            self._seen[dedup] = now
            self._seen.move_to_end(dedup)
            while len(self._seen) > self.dedup_capacity:
                self._seen.popitem(last=False)
            self._exposures.append(record)
            self.counters.exposures_queued += 1
            if len(self._exposures) >= self.flush_at:
                self._wake.notify()

    def event(self, name: str, context: Any, value: float | None, environment: str) -> None:
        """Queues a metric event; raises ValueError for a bad name or no key."""
        if not EVENT_NAME.match(name):
            raise ValueError(f"event name {name!r} must match [A-Za-z0-9_.:-]{{1,128}}")
        key = targeting_key(context)
        if key is None:
            raise ValueError("track needs a context with a string or number targetingKey")
        now = int(time.time() * 1000)
        record: dict[str, Any] = {
            "name": name,
            "timestamp": now,
            "receivedAt": now,
            "id": str(uuid.uuid4()),
            "_key": key,
            "_env": environment,
        }
        if value is not None:
            record["value"] = float(value)
        with self._lock:
            if len(self._events) >= self.max_events:
                self.counters.events_dropped += 1
                return
            self._events.append(record)
            self.counters.events_queued += 1
            if len(self._events) >= self.flush_at:
                self._wake.notify()

    def pending(self) -> tuple[int, int]:
        with self._lock:
            return len(self._exposures), len(self._events)

    # -- sending -----------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._lock:
                if self._closed:
                    return
                backoff = self._retry_at - time.monotonic()
                full = len(self._exposures) >= self.flush_at or len(self._events) >= self.flush_at
                if backoff > 0:
                    self._wake.wait(backoff)
                elif not full:  # a notify sent while we were sending is not lost
                    self._wake.wait(self.flush_interval)
                if self._closed:
                    return
            if time.monotonic() >= self._retry_at:
                self.flush_once()

    def flush_once(self, deadline: float | None = None) -> bool:
        """Sends everything queued, batch by batch; False if a batch failed."""
        with self._send_lock:
            for queue, kind in ((self._exposures, "exposures"), (self._events, "events")):
                while True:
                    if deadline is not None and time.monotonic() >= deadline:
                        return False
                    with self._lock:
                        batch = [queue.popleft() for _ in range(min(MAX_BATCH, len(queue)))]
                    if not batch:
                        break
                    if not self._send(kind, batch, deadline):
                        return False
            return True

    def _send(self, kind: str, batch: list[dict[str, Any]], deadline: float | None) -> bool:
        try:
            hashes = self._hash_keys([r["_key"] for r in batch])
        except Exception as e:  # the engine failed: keep the batch for later
            self._requeue(kind, batch, f"hashing targeting keys failed: {e}")
            return False
        if kind == "exposures":
            records = [
                {**{k: v for k, v in r.items() if not k.startswith("_")}, "bucketingKeyHash": h}
                for r, h in zip(batch, hashes)
            ]
            bodies = [({"kind": "exposures", "exposures": records}, batch)]
        else:
            by_env: dict[str, list[tuple[dict[str, Any], dict[str, Any]]]] = {}
            for r, h in zip(batch, hashes):
                rec = {k: v for k, v in r.items() if not k.startswith("_")}
                rec["targetingKeyHash"] = h
                by_env.setdefault(r["_env"], []).append((rec, r))
            bodies = [
                (
                    {"kind": "events", "environment": env, "events": [p[0] for p in pairs]},
                    [p[1] for p in pairs],
                )
                for env, pairs in by_env.items()
            ]
        for body, originals in bodies:
            timeout = self.request_timeout
            if deadline is not None:
                timeout = max(0.05, min(timeout, deadline - time.monotonic()))
            status, detail = self._post(body, timeout)
            n = len(originals)
            if status == 202 or (status is not None and 200 <= status < 300):
                with self._lock:
                    if kind == "exposures":
                        self.counters.exposures_sent += n
                    else:
                        self.counters.events_sent += n
                    self._failures = 0
                    self._retry_at = 0.0
                continue
            if status is not None and 400 <= status < 500 and status not in (408, 429):
                with self._lock:
                    self.counters.failed_requests += 1
                    self.counters.last_ingest_error = f"HTTP {status}: {detail}"
                    if kind == "exposures":
                        self.counters.exposures_rejected += n
                    else:
                        self.counters.events_rejected += n
                continue
            why = f"HTTP {status}: {detail}" if status is not None else detail
            self._requeue(kind, originals, why)
            return False
        return True

    def _requeue(self, kind: str, batch: list[dict[str, Any]], why: str) -> None:
        """Puts a failed batch back in front (oldest kept; the newest beyond the
        bound are dropped and counted) and schedules a retry with backoff."""
        with self._lock:
            self.counters.failed_requests += 1
            self.counters.last_ingest_error = why
            self._failures += 1
            backoff = min(self.max_backoff, self.flush_interval * (2 ** min(self._failures - 1, 10)))
            self._retry_at = time.monotonic() + backoff
            queue, bound = (
                (self._exposures, self.max_exposures)
                if kind == "exposures"
                else (self._events, self.max_events)
            )
            queue.extendleft(reversed(batch))
            extra = len(queue) - bound
            for _ in range(max(0, extra)):
                queue.pop()
            if extra > 0:
                if kind == "exposures":
                    self.counters.exposures_dropped += extra
                else:
                    self.counters.events_dropped += extra

    def _post(self, body: dict[str, Any], timeout: float) -> tuple[int | None, str]:
        data = json.dumps(body, separators=(",", ":")).encode()
        req = urllib.request.Request(
            self.ingest_url,
            data=data,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "Authorization": f"Bearer {self._token}",
                "User-Agent": USER_AGENT,
            },
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310
                return resp.status, ""
        except urllib.error.HTTPError as e:
            try:
                text = e.read()[:300].decode("utf-8", "replace")
            except Exception:
                text = ""
            return e.code, text
        except (urllib.error.URLError, OSError, ValueError) as e:
            return None, f"POST {self.ingest_url}: {getattr(e, 'reason', e)}"

    def close(self, timeout: float) -> bool:
        """Stops the thread and sends what is queued, within ``timeout`` s."""
        deadline = time.monotonic() + timeout
        with self._lock:
            self._closed = True
            self._wake.notify_all()
        ok = self.flush_once(deadline)
        self._thread.join(max(0.0, deadline - time.monotonic()))
        return ok
