/**
 * Accepting a fetched snapshot: the checks every host makes before swapping
 * it in (COMMON design, "Lifecycle, verification, fail-static"), and the
 * flag diff that CONFIGURATION_CHANGED carries.
 *
 * ```ts
 * const outcome = accept(text, { current, expectedEnvironment: "acme/web/production" });
 * if (outcome.kind === "loaded") swap(outcome.snapshot);
 * ```
 */
import { Engine, ENGINE_SCHEMA_VERSION } from "./engine.js";

/** Why a snapshot was refused. */
export type SnapshotProblem =
  | "syntax" // not JSON, or not an object
  | "checksum" // no `checksum` field (the engine checks its value)
  | "schema" // a schema version the embedded engine does not read
  | "environment" // another environment than the configured / current one
  | "older" // a version below the one being served
  | "invalid"; // the engine refused it (checksum mismatch, broken flag, …)

/** A refused snapshot. The client keeps serving the last good one. */
export class SnapshotError extends Error {
  override name = "SnapshotError";
  constructor(
    readonly problem: SnapshotProblem,
    message: string,
  ) {
    super(message);
  }
}

/** A snapshot in service. */
export interface LoadedSnapshot {
  readonly engine: Engine;
  readonly environment: string;
  readonly version: number;
  readonly checksum: string;
  /** Flag key → the flag object's JSON, to tell which flags changed. */
  readonly flags: ReadonlyMap<string, string>;
}

export type Acceptance =
  | { kind: "loaded"; snapshot: LoadedSnapshot }
  /** Same version as the one in service: nothing to do. */
  | { kind: "unchanged" };

export interface AcceptOptions {
  /** The snapshot in service, if any. */
  current?: LoadedSnapshot | undefined;
  /** The environment the client was configured for, if any. */
  expectedEnvironment?: string | undefined;
  /** Lenient load: broken flags evaluate to `PARSE_ERROR` (the checksum is still verified). */
  lenient?: boolean;
}

/**
 * Checks `text` and loads it into a new engine, or says why not. The order
 * is: JSON object, `checksum` present, `schemaVersion`, environment, version
 * (older: refused; equal: unchanged), then the engine's strict load, which
 * verifies the checksum against the content.
 */
export function accept(text: string, { current, expectedEnvironment, lenient = false }: AcceptOptions = {}): Acceptance {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new SnapshotError("syntax", `snapshot is not JSON: ${(e as Error).message}`);
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) {
    throw new SnapshotError("syntax", "snapshot is not a JSON object");
  }
  const d = doc as Record<string, unknown>;
  if (typeof d.checksum !== "string" || d.checksum === "") {
    throw new SnapshotError("checksum", "snapshot has no checksum (published snapshots always carry one)");
  }
  if (d.schemaVersion !== ENGINE_SCHEMA_VERSION) {
    throw new SnapshotError(
      "schema",
      `snapshot schema ${JSON.stringify(d.schemaVersion)} is not the engine's ${ENGINE_SCHEMA_VERSION}; upgrade the package`,
    );
  }
  if (typeof d.environment !== "string") {
    throw new SnapshotError("syntax", "snapshot has no environment");
  }
  const wanted = expectedEnvironment ?? current?.environment;
  if (wanted !== undefined && d.environment !== wanted) {
    throw new SnapshotError("environment", `snapshot is for environment ${JSON.stringify(d.environment)}, not ${JSON.stringify(wanted)}`);
  }
  if (typeof d.version !== "number" || !Number.isSafeInteger(d.version) || d.version < 0) {
    throw new SnapshotError("syntax", "snapshot has no valid version");
  }
  if (current !== undefined) {
    if (d.version < current.version) {
      throw new SnapshotError("older", `snapshot version ${d.version} is older than the one in service (${current.version})`);
    }
    if (d.version === current.version) return { kind: "unchanged" };
  }
  let engine: Engine;
  try {
    engine = new Engine(text, lenient);
  } catch (e) {
    throw new SnapshotError("invalid", e instanceof Error ? e.message : String(e));
  }
  const flags = new Map<string, string>();
  if (Array.isArray(d.flags)) {
    for (const f of d.flags as Array<{ key?: unknown }>) {
      if (typeof f?.key === "string") flags.set(f.key, JSON.stringify(f));
    }
  }
  return {
    kind: "loaded",
    snapshot: { engine, environment: d.environment, version: d.version, checksum: d.checksum, flags },
  };
}

/** Keys of the flags added, removed or changed (flag JSON differs) between two snapshots. */
export function changedFlags(before: LoadedSnapshot | undefined, after: LoadedSnapshot): string[] {
  const out: string[] = [];
  for (const [key, json] of after.flags) {
    if (before?.flags.get(key) !== json) out.push(key);
  }
  if (before) {
    for (const key of before.flags.keys()) if (!after.flags.has(key)) out.push(key);
  }
  return out.sort();
}
