"""The host client: syncs the environment's snapshot, evaluates locally
through the engine module, reports exposures and metric events.

>>> from bunting import BuntingClient                     # doctest: +SKIP
>>> client = BuntingClient.edge("https://flags.example.com", sdk_key="srv-…")
>>> client.start()
>>> client.evaluate("new-checkout", {"targetingKey": "user-1"}, expected_type="boolean")
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

from . import _wasm
from .errors import (
    BuntingError,
    EngineError,
    NotReady,
    SchemaMismatch,
    SnapshotRejected,
    SourceError,
)
from .packed import snapshot_bytes
from .reporter import Counters, Reporter
from .sources import DirectorySource, EdgeSource, FixedSource, KvSource, Source

log = logging.getLogger("bunting")

ExpectedType = Literal["boolean", "string", "number", "object"]
StatusName = Literal["not_ready", "ready", "stale", "error"]
#: ``ready``, ``stale``, ``error`` or ``configuration_changed``, with details.
Listener = Callable[[str, dict[str, Any]], None]

_generations = itertools.count(1)


@dataclass(frozen=True)
class Snapshot:
    """A verified snapshot as the client holds it."""

    generation: int
    raw: bytes
    version: int
    environment: str
    checksum: str
    #: flag key -> canonical JSON of the flag object (for flags_changed)
    flags: dict[str, str] = field(repr=False)


@dataclass
class Status:
    """What :meth:`BuntingClient.status` reports (``as_dict`` gives camelCase)."""

    status: StatusName
    environment: str | None
    snapshot_version: int | None
    source: str
    last_success_at: float | None
    last_attempt_at: float | None
    last_error: str | None
    consecutive_failures: int
    from_bootstrap: bool
    exposures_pending: int
    events_pending: int
    counters: Counters

    def as_dict(self) -> dict[str, Any]:
        def camel(s: str) -> str:
            head, *rest = s.split("_")
            return head + "".join(w.title() for w in rest)

        out = {camel(k): v for k, v in asdict(self).items() if k != "counters"}
        out.update({camel(k): v for k, v in asdict(self.counters).items()})
        return out


def _flag_map(doc: dict[str, Any]) -> dict[str, str]:
    flags = doc.get("flags")
    out: dict[str, str] = {}
    if isinstance(flags, list):
        for f in flags:
            if isinstance(f, dict) and isinstance(f.get("key"), str):
                out[f["key"]] = json.dumps(f, sort_keys=True, separators=(",", ":"))
    return out


def flags_changed(old: Snapshot | None, new: Snapshot) -> list[str]:
    """Keys whose flag object differs, plus added and removed keys."""
    before = old.flags if old else {}
    keys = set(before) | set(new.flags)
    return sorted(k for k in keys if before.get(k) != new.flags.get(k))


def _jsonable(value: Any) -> Any:
    """Context values as JSON: datetimes as RFC 3339 strings."""
    if hasattr(value, "isoformat") and callable(value.isoformat):
        text = value.isoformat()
        return text.replace("+00:00", "Z")
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


class BuntingClient:
    """Keeps one environment's snapshot current and evaluates against it.

    Exactly one ``source`` (see :mod:`bunting.sources`, or the ``edge``,
    ``kv`` and ``directory`` constructors). Call :meth:`start` once, then
    :meth:`evaluate` from any thread (or from asyncio code: evaluation is
    synchronous, local and takes microseconds), and :meth:`close` at exit.
    """

    def __init__(
        self,
        source: Source,
        *,
        sdk_key: str | None = None,
        environment: str | None = None,
        bootstrap_file: str | Path | None = None,
        poll_interval: float = 10.0,
        init_timeout: float = 5.0,
        request_timeout: float = 10.0,
        ingest_url: str | None = None,
        ingest_token: str | None = None,
        hash_secret: str | None = None,
        exposure_dedup_window: float = 300.0,
        exposure_dedup_capacity: int = 100_000,
        max_queued_exposures: int = 10_000,
        max_queued_events: int = 10_000,
        flush_interval: float = 2.0,
        flush_at: int = 100,
        close_timeout: float = 5.0,
        require_checksum: bool = True,
        lenient: bool = False,
        runtime: _wasm.Runtime | None = None,
    ) -> None:
        self.source = source
        #: Off only for hand-written snapshots (tests, fixtures): published
        #: snapshots always carry a checksum, and the engine verifies it.
        self.require_checksum = require_checksum
        #: Lenient loads keep valid flags of a snapshot with broken ones.
        self.lenient = lenient
        self.expected_environment = environment
        self.bootstrap_file = Path(bootstrap_file) if bootstrap_file else None
        self.poll_interval = poll_interval
        self.init_timeout = init_timeout
        self.request_timeout = request_timeout
        self.close_timeout = close_timeout
        self._runtime = runtime or _wasm.runtime()
        self._id = next(_generations)
        self._current: Snapshot | None = None
        self._lock = threading.Lock()  # guards state below, never held while evaluating
        self._status: StatusName = "not_ready"
        self._from_bootstrap = False
        self._last_success: float | None = None
        self._last_attempt: float | None = None
        self._last_error: str | None = None
        self._failures = 0
        self._listeners: list[Listener] = []
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self._hash_secret = hash_secret if hash_secret is not None else (sdk_key or "")
        self._reporter: Reporter | None = None
        self._counters = Counters()
        token = ingest_token or sdk_key
        if ingest_url:
            if not token:
                raise ValueError("ingest_url needs sdk_key or ingest_token to authenticate")
            self._reporter = Reporter(
                ingest_url=ingest_url,
                token=token,
                hash_keys=self.hash_keys,
                dedup_window=exposure_dedup_window,
                dedup_capacity=exposure_dedup_capacity,
                max_queued_exposures=max_queued_exposures,
                max_queued_events=max_queued_events,
                flush_interval=flush_interval,
                flush_at=flush_at,
                request_timeout=request_timeout,
            )
            self._counters = self._reporter.counters

    # -- constructors --------------------------------------------------------

    @classmethod
    def edge(cls, edge_url: str, sdk_key: str, **options: Any) -> BuntingClient:
        """Snapshots from the edge's ``/sdk/v1/snapshot`` (ETag polling)."""
        return cls(EdgeSource(edge_url, sdk_key), sdk_key=sdk_key, **options)

    @classmethod
    def from_snapshot(cls, snapshot: bytes | str | dict[str, Any], **options: Any) -> BuntingClient:
        """A client over one fixed snapshot (tests, offline tools): no refresh
        source; pass ``require_checksum=False`` for hand-written documents."""
        if isinstance(snapshot, dict):
            snapshot = json.dumps(snapshot)
        if isinstance(snapshot, str):
            snapshot = snapshot.encode()
        return cls(FixedSource(snapshot), **options)

    @classmethod
    def kv(
        cls,
        *,
        account_id: str,
        namespace_id: str,
        api_token: str,
        environment: str,
        api_base: str = "https://api.cloudflare.com/client/v4",
        **options: Any,
    ) -> BuntingClient:
        """Snapshots from Cloudflare KV through its REST API."""
        src = KvSource(account_id, namespace_id, api_token, environment, api_base)
        return cls(src, environment=environment, **options)

    @classmethod
    def directory(cls, directory: str | Path, environment: str, **options: Any) -> BuntingClient:
        """Snapshots from the origin's directory publisher (``--publish-dir``)."""
        src = DirectorySource(str(directory), environment)
        return cls(src, environment=environment, **options)

    # -- lifecycle -----------------------------------------------------------

    def add_listener(self, listener: Listener) -> None:
        """Calls ``listener(event, details)`` on ``ready``, ``stale``, ``error``
        and ``configuration_changed`` (details: ``flags_changed``, ``message``).
        Listeners run on the refresh thread and must not block."""
        self._listeners.append(listener)

    def _emit(self, event: str, **details: Any) -> None:
        for fn in list(self._listeners):
            try:
                fn(event, details)
            except Exception:  # a listener's bug must not stop refreshing
                log.exception("bunting listener failed on %s", event)

    def start(self) -> bool:
        """Fetches the first snapshot (bounded by ``init_timeout``), falls back
        to the bootstrap file, and starts background refresh. True if a
        snapshot is loaded (status ``ready``, or ``stale`` when it came from
        the bootstrap because the source failed)."""
        if self._poller is not None:
            return self._current is not None
        try:
            self._refresh(timeout=self.init_timeout, emit=False)
        except BuntingError as e:
            log.warning("bunting: initial fetch from %s failed: %s", self.source.describe(), e)
        if self._current is None and self.bootstrap_file is not None:
            try:
                raw = snapshot_bytes(self.bootstrap_file.read_bytes())
                self._accept(raw, emit=False)
                with self._lock:
                    self._from_bootstrap = True
                    self._status = "stale"
            except (OSError, BuntingError) as e:
                with self._lock:
                    self._last_error = f"bootstrap {self.bootstrap_file}: {e}"
        with self._lock:
            if self._current is None:
                self._status = "error"
        self._poller = threading.Thread(target=self._poll, name="bunting-refresh", daemon=True)
        self._poller.start()
        return self._current is not None

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_interval):
            try:
                self._refresh(timeout=self.request_timeout, emit=True)
            except BuntingError:
                pass  # recorded by _refresh
            except Exception as e:  # never let the refresh thread die
                log.exception("bunting: refresh failed unexpectedly")
                self._fail(f"unexpected: {e}", emit=True)

    def refresh(self) -> bool:
        """Polls the source once now; True if a new snapshot was swapped in."""
        return self._refresh(timeout=self.request_timeout, emit=True)

    def _refresh(self, timeout: float, emit: bool) -> bool:
        with self._lock:
            self._last_attempt = time.time()
        try:
            raw = self.source.fetch(timeout)
            changed = False if raw is None else self._accept(raw, emit=emit)
        except BuntingError as e:
            if isinstance(e, SnapshotRejected):
                forget = getattr(self.source, "forget", None)
                if forget:
                    forget()  # fetch it whole again next time
            self._fail(str(e), emit=emit)
            raise
        self._succeed(emit=emit)
        return changed

    def _fail(self, message: str, emit: bool) -> None:
        with self._lock:
            self._failures += 1
            self._last_error = message
            became_stale = self._status == "ready"
            if became_stale:
                self._status = "stale"
        log.warning("bunting: %s", message)
        if emit and became_stale:
            self._emit("stale", message=message)

    def _succeed(self, emit: bool) -> None:
        with self._lock:
            self._failures = 0
            self._last_success = time.time()
            self._from_bootstrap = False
            was = self._status
            self._status = "ready" if self._current is not None else was
        if emit and was in ("stale", "error") and self._current is not None:
            self._emit("ready")

    def _accept(self, raw: bytes, emit: bool) -> bool:
        """Verifies and swaps in a snapshot; False if it is the current one."""
        try:
            doc = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as e:
            raise SnapshotRejected(f"the snapshot is not JSON: {e}") from e
        if not isinstance(doc, dict):
            raise SnapshotRejected("the snapshot is not a JSON object")
        checksum = doc.get("checksum")
        if not isinstance(checksum, str) or not checksum:
            if self.require_checksum:
                raise SnapshotRejected(
                    "the snapshot has no checksum (published snapshots carry one)"
                )
            checksum = ""
        schema = doc.get("schemaVersion")
        engine_schema = self._runtime.schema_version
        if schema != engine_schema:
            raise SchemaMismatch(
                f"snapshot schema {schema} is not the engine's {engine_schema}; upgrade the package"
            )
        env = doc.get("environment")
        version = doc.get("version")
        if not isinstance(env, str) or isinstance(version, bool) or not isinstance(version, int):
            raise SnapshotRejected("the snapshot lacks a string environment or integer version")
        current = self._current
        want_env = self.expected_environment or (current.environment if current else None)
        if want_env is not None and env != want_env:
            raise SnapshotRejected(f"the snapshot is of environment {env!r}, not {want_env!r}")
        if current is not None:
            if (checksum and checksum == current.checksum) or version == current.version:
                return False
            if version < current.version:
                raise SnapshotRejected(
                    f"the snapshot's version {version} is older than the current {current.version}"
                )
        snap = Snapshot(next(_generations), bytes(raw), version, env, checksum, _flag_map(doc))
        self._ensure_loaded(snap)  # strict load: the engine verifies the checksum
        with self._lock:
            old, self._current = self._current, snap
        if emit and old is not None:
            self._emit("configuration_changed", flags_changed=flags_changed(old, snap))
        log.info("bunting: snapshot %s version %s in use", env, version)
        return True

    def _ensure_loaded(self, snap: Snapshot) -> tuple[_wasm.Instance, int]:
        inst = self._runtime.instance()
        slot = inst.loaded.get(self._id)
        if slot is not None and slot[0] == snap.generation:
            return inst, slot[1]
        handle, _ = inst.load(snap.raw, self.lenient)
        if slot is not None:
            inst.unload(slot[1])
        inst.loaded[self._id] = (snap.generation, handle)
        return inst, handle

    def close(self, timeout: float | None = None) -> bool:
        """Stops refreshing and flushes exposures and events (bounded by
        ``timeout``, default ``close_timeout``). True if everything was sent."""
        self._stop.set()
        if self._poller is not None:
            self._poller.join(1.0)
        if self._reporter is None:
            return True
        return self._reporter.close(self.close_timeout if timeout is None else timeout)

    def flush(self, timeout: float | None = None) -> bool:
        """Sends the queued exposures and events now."""
        if self._reporter is None:
            return True
        t = self.close_timeout if timeout is None else timeout
        return self._reporter.flush_once(time.monotonic() + t)

    async def aclose(self, timeout: float | None = None) -> bool:
        """:meth:`close` for asyncio code (runs in a worker thread)."""
        return await asyncio.to_thread(self.close, timeout)

    async def aflush(self, timeout: float | None = None) -> bool:
        """:meth:`flush` for asyncio code (runs in a worker thread)."""
        return await asyncio.to_thread(self.flush, timeout)

    async def astart(self) -> bool:
        """:meth:`start` for asyncio code (runs in a worker thread)."""
        return await asyncio.to_thread(self.start)

    def __enter__(self) -> BuntingClient:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- status ---------------------------------------------------------------

    @property
    def snapshot(self) -> Snapshot | None:
        """The snapshot in use."""
        return self._current

    def status(self) -> Status:
        """Health: status, snapshot, last success/attempt/error, counters."""
        pending = self._reporter.pending() if self._reporter else (0, 0)
        with self._lock:
            snap = self._current
            return Status(
                status=self._status,
                environment=snap.environment if snap else None,
                snapshot_version=snap.version if snap else None,
                source=self.source.describe(),
                last_success_at=self._last_success,
                last_attempt_at=self._last_attempt,
                last_error=self._last_error,
                consecutive_failures=self._failures,
                from_bootstrap=self._from_bootstrap,
                exposures_pending=pending[0],
                events_pending=pending[1],
                counters=Counters(**asdict(self._counters)),
            )

    # -- evaluation -------------------------------------------------------------

    def _answer(self, request: dict[str, Any]) -> tuple[Any, Snapshot]:
        snap = self._current
        if snap is None:
            raise NotReady("no snapshot is loaded yet")
        if "nowMs" not in request:
            request["nowMs"] = int(time.time() * 1000)
        body = json.dumps(request, separators=(",", ":"), default=_jsonable).encode()
        inst, handle = self._ensure_loaded(snap)
        reply = json.loads(inst.eval_raw(handle, body))
        if "badRequest" in reply:
            raise EngineError(f"the engine rejected the request: {reply['badRequest']}")
        return reply.get("one", reply.get("all")), snap

    def evaluate(
        self,
        flag: str,
        context: Any,
        *,
        expected_type: ExpectedType | None = None,
        now_ms: int | None = None,
    ) -> dict[str, Any]:
        """Evaluates one flag: the engine's evaluation object (``key``,
        ``value``, ``variant``, ``reason``, ``errorCode``, ``errorMessage``,
        ``ruleId``, ``metadata`` …). Never touches the network; records an
        exposure when the evaluation assigns a split. Raises NotReady before
        the first snapshot and EngineError if the engine traps."""
        req: dict[str, Any] = {"flag": flag, "context": context}
        if expected_type is not None:
            req["expectedType"] = expected_type
        if now_ms is not None:
            req["nowMs"] = now_ms
        result, snap = self._answer(req)
        if self._reporter is not None and result.get("reason") == "SPLIT":
            self._reporter.exposure(result, context, snap.environment, snap.version)
        return result  # type: ignore[no-any-return]

    def evaluate_all(self, context: Any, *, now_ms: int | None = None) -> list[dict[str, Any]]:
        """Evaluates every flag in one engine call (exposures as evaluate)."""
        req: dict[str, Any] = {"context": context}
        if now_ms is not None:
            req["nowMs"] = now_ms
        results, snap = self._answer(req)
        if self._reporter is not None:
            for r in results:
                if r.get("reason") == "SPLIT":
                    self._reporter.exposure(r, context, snap.environment, snap.version)
        return results  # type: ignore[no-any-return]

    def hash_keys(self, keys: list[Any]) -> list[str | None]:
        """The keyed hashes (with ``hash_secret``) the edge would report."""
        return self._runtime.instance().hash_keys(self._hash_secret, keys)

    def track(self, name: str, context: Any, value: float | None = None) -> None:
        """Queues a metric event for the origin (``[A-Za-z0-9_.:-]{1,128}``
        names; the context needs a targetingKey). Raises ValueError for bad
        input; a full queue drops and counts instead."""
        if self._reporter is None:
            raise BuntingError("track needs ingest_url")
        env = self._current.environment if self._current else self.expected_environment
        if env is None:
            raise NotReady("track needs a loaded snapshot or a configured environment")
        self._reporter.event(name, context, value, env)


__all__ = [
    "BuntingClient",
    "DirectorySource",
    "EdgeSource",
    "KvSource",
    "Snapshot",
    "SourceError",
    "Status",
    "flags_changed",
]
