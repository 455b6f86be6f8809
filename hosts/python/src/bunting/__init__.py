"""bunting server SDK: evaluate bunting feature flags in-process with the
same compiled engine (``bunting_core_abi.wasm``, run by wasmtime) as the edge,
the browser and every other host.

- :class:`BuntingClient` syncs an environment's snapshot (edge endpoint,
  Cloudflare KV, or the origin's directory publisher), evaluates locally and
  reports exposures and metric events.
- :class:`BuntingProvider` plugs it into the OpenFeature SDK.
"""

from ._wasm import module_path
from .client import BuntingClient, Snapshot, Status, flags_changed
from .errors import (
    BuntingError,
    EngineError,
    NotReady,
    PackedSnapshotError,
    PackedVersionMismatch,
    SchemaMismatch,
    SnapshotRejected,
    SourceError,
)
from .provider import BuntingProvider, to_engine_context
from .reporter import Counters
from .sources import DirectorySource, EdgeSource, KvSource, Source, encode_key

__version__ = "0.1.0"

__all__ = [
    "BuntingClient",
    "BuntingError",
    "BuntingProvider",
    "Counters",
    "DirectorySource",
    "EdgeSource",
    "EngineError",
    "KvSource",
    "NotReady",
    "PackedSnapshotError",
    "PackedVersionMismatch",
    "SchemaMismatch",
    "Snapshot",
    "SnapshotRejected",
    "Source",
    "SourceError",
    "Status",
    "encode_key",
    "flags_changed",
    "module_path",
    "to_engine_context",
]
