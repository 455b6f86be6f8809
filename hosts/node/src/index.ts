/**
 * `@bunting/server-sdk`: bunting's feature flags evaluated in-process by the
 * same compiled engine as the edge, kept in sync from the edge, Cloudflare KV
 * or the origin's directory publisher, with exposures and metric events sent
 * to the origin, and an OpenFeature provider on top. See README.md.
 */
export { BuntingClient, toEngineContext } from "./client.js";
export type { BuntingOptions, ClientEvents, ClientStatus, EvaluateOptions, HealthStatus } from "./client.js";
export { BuntingProvider, flagMetadata, resolution } from "./provider.js";
export { Engine, KeyHasher, ENGINE_SCHEMA_VERSION } from "./engine.js";
export type { Evaluation, FlagMetadata, FlagType, JsonValue } from "./engine.js";
export { accept, changedFlags, SnapshotError } from "./snapshot.js";
export type { Acceptance, LoadedSnapshot, SnapshotProblem } from "./snapshot.js";
export { DirectorySource, EdgeSource, KvSource, SourceError, encodeKey } from "./sources.js";
export { PACKED_FORMAT_VERSION, PackedSnapshotError, packedDocument } from "./packed.js";
export type { PackedProblem } from "./packed.js";
export type { DirectorySourceOptions, Fetched, KvSourceOptions, SnapshotSource } from "./sources.js";
export { MAX_BATCH } from "./exposures.js";
export type { EventRecord, ExposureRecord, ReporterCounters } from "./exposures.js";
