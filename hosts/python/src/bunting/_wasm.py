"""The bunting engine (``bunting_core_abi.wasm``) run through wasmtime.

The module is compiled once per process (and, when a cache directory is
writable, once per machine: the compiled artifact is serialized and keyed by
the module's SHA-256 and the wasmtime version). Every thread gets its own
instance (a wasmtime store is not thread-safe); a snapshot is loaded lazily
into a thread's instance the first time that thread evaluates it.

Memory protocol (see ``core/src/abi.rs``): write JSON into a buffer from
``bunting_alloc(len)``, call the export, read the reply designated by the
returned packed ``u64`` (``ptr << 32 | len``), free both buffers.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import tempfile
import threading
from importlib import resources
from pathlib import Path
from typing import Any

import wasmtime

from .errors import EngineError, SnapshotRejected

MODULE_ENV = "BUNTING_CORE_WASM"
CACHE_ENV = "BUNTING_CACHE_DIR"
MODULE_FILE = "bunting_core_abi.wasm"

#: Fuel given to one call: far above any real evaluation (a large evaluate-all
#: uses a few million units), low enough that a pathological rule traps in
#: well under a second instead of hanging the host.
CALL_FUEL = 2_000_000_000
#: Loading a large snapshot parses and compiles every rule: more fuel.
LOAD_FUEL = 50_000_000_000

_EXPORTS = {
    "bunting_alloc": (["i32"], ["i32"]),
    "bunting_free": (["i32", "i32"], []),
    "bunting_load": (["i32", "i32", "i32"], ["i64"]),
    "bunting_eval": (["i32", "i32", "i32"], ["i64"]),
    "bunting_unload": (["i32"], []),
    "bunting_hash_keys": (["i32", "i32"], ["i64"]),
    "bunting_schema_version": ([], ["i32"]),
}


def module_path() -> Path:
    """The ``.wasm`` file used: ``$BUNTING_CORE_WASM`` or the packaged copy."""
    env = os.environ.get(MODULE_ENV)
    if env:
        return Path(env)
    packaged = Path(str(resources.files("bunting").joinpath(MODULE_FILE)))
    if packaged.is_file():
        return packaged
    raise EngineError(
        f"the bunting engine module was not found: no {packaged} and ${MODULE_ENV} is unset; "
        "build it with `cargo xtask wasm` and copy target/wasm/bunting_core_abi.wasm "
        f"into the package, or point ${MODULE_ENV} at it"
    )


def _cache_dir() -> Path | None:
    env = os.environ.get(CACHE_ENV)
    if env == "":
        return None  # explicitly disabled
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "bunting"


def _wasmtime_version() -> str:
    try:
        from importlib.metadata import version

        return version("wasmtime")
    except Exception:  # pragma: no cover - metadata missing in odd installs
        return "unknown"


class Runtime:
    """A compiled engine module; shared by every client of the process."""

    def __init__(self, path: Path | None = None) -> None:
        path = path or module_path()
        try:
            wasm = path.read_bytes()
        except OSError as e:
            raise EngineError(f"cannot read the engine module {path}: {e}") from e
        config = wasmtime.Config()
        config.consume_fuel = True
        self.engine = wasmtime.Engine(config)
        self.path = path
        self.cached = False
        self.module = self._compile(wasm)
        self._check()
        self._local = threading.local()
        self.schema_version = self.instance().schema_version()

    def _compile(self, wasm: bytes) -> wasmtime.Module:
        key = hashlib.sha256(wasm).hexdigest()[:32]
        cache = _cache_dir()
        file = None
        if cache is not None:
            file = cache / f"bunting-core-{key}-wasmtime-{_wasmtime_version()}-fuel.cwasm"
            if file.is_file():
                try:
                    module = wasmtime.Module.deserialize_file(self.engine, str(file))
                    self.cached = True
                    return module
                except Exception:
                    pass  # stale or corrupt artifact: compile again below
        try:
            module = wasmtime.Module(self.engine, wasm)
        except wasmtime.WasmtimeError as e:
            raise EngineError(f"cannot compile the engine module {self.path}: {e}") from e
        if file is not None:
            try:
                file.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(dir=file.parent, prefix=".tmp-")
                with os.fdopen(fd, "wb") as out:
                    out.write(module.serialize())
                os.replace(tmp, file)
            except OSError:
                pass  # a read-only home only costs the compile next time
        return module

    def _check(self) -> None:
        if self.module.imports:
            names = ", ".join(f"{i.module}::{i.name}" for i in self.module.imports)
            raise EngineError(
                f"the engine module imports {names}; build bunting-core with "
                "`--features abi` and without `js` (`cargo xtask wasm`)"
            )
        exports = {e.name: e.type for e in self.module.exports}
        for name, (params, results) in _EXPORTS.items():
            ty = exports.get(name)
            ok = isinstance(ty, wasmtime.FuncType) and (
                [str(p) for p in ty.params] == params and [str(r) for r in ty.results] == results
            )
            if not ok:
                raise EngineError(
                    f"the engine module does not export `{name}` as "
                    f"({', '.join(params)}) -> ({', '.join(results)}); is it an old build?"
                )
        if not isinstance(exports.get("memory"), wasmtime.MemoryType):
            raise EngineError("the engine module exports no memory")

    def instance(self) -> Instance:
        """This thread's instance (created on first use)."""
        inst: Instance | None = getattr(self._local, "instance", None)
        if inst is None or inst.poisoned:
            inst = Instance(self)
            self._local.instance = inst
        return inst


_RUNTIME: Runtime | None = None
_RUNTIME_LOCK = threading.Lock()


def runtime() -> Runtime:
    """The process-wide runtime (compiled on first call)."""
    global _RUNTIME
    if _RUNTIME is None:
        with _RUNTIME_LOCK:
            if _RUNTIME is None:
                _RUNTIME = Runtime()
    return _RUNTIME


class _FastCall:
    """Calls an export of i32 parameters through wasmtime's C API directly.

    ``wasmtime.Func.__call__`` re-reads the function type and boxes every
    value on each call, which costs ~200 µs per evaluation (four calls);
    this reuses preallocated argument arrays. Falls back to ``Func.__call__``
    if wasmtime's private FFI module ever changes shape.
    """

    def __init__(self, store: wasmtime.Store, func: wasmtime.Func, nparams: int, nresults: int) -> None:
        from wasmtime import _ffi as ffi

        self._ffi = ffi
        # The raw ctypes function (skips a Python wrapper per call).
        self._call = getattr(ffi, "_wasmtime_func_call", ffi.wasmtime_func_call)
        self._ctx = store._context()
        self._func = ctypes.byref(func._func)
        self._n, self._nr = nparams, nresults
        self._params = (ffi.wasmtime_val_t * max(1, nparams))()
        for i in range(nparams):
            self._params[i].kind = ffi.WASMTIME_I32.value
        self._results = (ffi.wasmtime_val_t * max(1, nresults))()
        self._is_i64 = False

    def __call__(self, *args: int) -> int | None:
        ffi = self._ffi
        params = self._params
        for i, a in enumerate(args):
            params[i].of.i32 = a
        trap = ctypes.POINTER(ffi.wasm_trap_t)()
        err = self._call(self._ctx, self._func, params, self._n, self._results, self._nr, ctypes.byref(trap))
        if err:
            raise wasmtime.WasmtimeError._from_ptr(err)
        if trap:
            raise wasmtime.Trap._from_ptr(trap)
        if not self._nr:
            return None
        r = self._results[0]
        return int(r.of.i64 if r.kind == ffi.WASMTIME_I64.value else r.of.i32)


def _fast(store: wasmtime.Store, func: wasmtime.Func) -> Any:
    ty = func.type(store)
    try:
        return _FastCall(store, func, len(ty.params), len(ty.results))
    except Exception:  # pragma: no cover - wasmtime internals moved
        return lambda *args: func(store, *args)


class Instance:
    """One instance of the module in its own store (one per thread)."""

    def __init__(self, rt: Runtime) -> None:
        self.store = wasmtime.Store(rt.engine)
        inst = wasmtime.Instance(self.store, rt.module, [])
        ex = inst.exports(self.store)
        self._memory: wasmtime.Memory = ex["memory"]  # type: ignore[assignment]
        self._alloc: wasmtime.Func = ex["bunting_alloc"]  # type: ignore[assignment]
        self._free: wasmtime.Func = ex["bunting_free"]  # type: ignore[assignment]
        self._load: wasmtime.Func = ex["bunting_load"]  # type: ignore[assignment]
        self._eval: wasmtime.Func = ex["bunting_eval"]  # type: ignore[assignment]
        self._unload: wasmtime.Func = ex["bunting_unload"]  # type: ignore[assignment]
        self._hash: wasmtime.Func = ex["bunting_hash_keys"]  # type: ignore[assignment]
        self._schema: wasmtime.Func = ex["bunting_schema_version"]  # type: ignore[assignment]
        self._calls = {
            id(f): _fast(self.store, f)
            for f in (self._alloc, self._free, self._load, self._eval, self._unload, self._hash, self._schema)
        }
        self.poisoned = False
        #: snapshot generation -> handle loaded in this instance
        self.loaded: dict[int, int] = {}

    def _call(self, name: str, func: wasmtime.Func, fuel: int | None, *args: int) -> Any:
        """Calls an export; ``fuel`` refills the budget (None: keep what is left)."""
        if self.poisoned:
            raise EngineError("this thread's engine instance trapped earlier")
        if fuel is not None:
            self.store.set_fuel(fuel)
        try:
            return self._calls[id(func)](*args)
        except (wasmtime.Trap, wasmtime.WasmtimeError) as e:
            self.poisoned = True
            raise EngineError(f"the engine call `{name}` trapped: {e}") from e

    def _exchange(
        self, name: str, func: wasmtime.Func, fuel: int, data: bytes,
        pre: tuple[int, ...] = (), post: tuple[int, ...] = (),
    ) -> bytes:
        n = len(data)
        ptr = self._call("bunting_alloc", self._alloc, fuel, n)  # one budget per exchange
        if n:
            if ptr + n > self._memory.data_len(self.store):
                raise EngineError(f"bunting_alloc({n}) returned {ptr:#x}, outside memory")
            base = ctypes.addressof(self._memory.data_ptr(self.store).contents)
            ctypes.memmove(base + ptr, data, n)
        packed = self._call(name, func, None, *pre, ptr, n, *post) & 0xFFFF_FFFF_FFFF_FFFF
        rptr, rlen = packed >> 32, packed & 0xFFFF_FFFF
        if rptr + rlen > self._memory.data_len(self.store):
            raise EngineError(f"reply of {rlen} bytes at {rptr:#x} lies outside memory")
        base = ctypes.addressof(self._memory.data_ptr(self.store).contents)
        reply = ctypes.string_at(base + rptr, rlen)
        self._call("bunting_free", self._free, CALL_FUEL, rptr, rlen)
        self._call("bunting_free", self._free, None, ptr, n)
        return reply

    def schema_version(self) -> int:
        return int(self._call("bunting_schema_version", self._schema, CALL_FUEL))

    def load(self, snapshot: bytes, lenient: bool = False) -> tuple[int, list[Any]]:
        """Loads a snapshot: (handle, problems); rejects with SnapshotRejected."""
        raw = self._exchange(
            "bunting_load", self._load, LOAD_FUEL, snapshot, post=(1 if lenient else 0,)
        )
        reply = json.loads(raw)
        if "ok" in reply:
            return int(reply["ok"]["handle"]), list(reply["ok"].get("problems", []))
        err = reply.get("error", {})
        raise SnapshotRejected(str(err.get("message", reply)), list(err.get("problems", [])))

    def unload(self, handle: int) -> None:
        self._call("bunting_unload", self._unload, CALL_FUEL, handle)

    def eval_raw(self, handle: int, request: bytes) -> bytes:
        """Raw ``EvalReply`` bytes for raw ``EvalRequest`` bytes."""
        return self._exchange("bunting_eval", self._eval, CALL_FUEL, request, pre=(handle,))

    def hash_keys(self, secret: str, keys: list[Any]) -> list[str | None]:
        req = json.dumps({"secret": secret, "keys": keys}).encode()
        reply = json.loads(self._exchange("bunting_hash_keys", self._hash, CALL_FUEL, req))
        if "hashes" not in reply:
            raise EngineError(f"the engine rejected a hash request: {reply}")
        return list(reply["hashes"])
