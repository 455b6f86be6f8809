/**
 * The embedded engine: bunting-core compiled to WebAssembly by wasm-bindgen
 * (its Node build, copied into `dist/engine/` by `npm run build`), with the
 * types the rest of the package uses.
 *
 * The glue is CommonJS (it reads the `.wasm` next to it with `fs`), so it is
 * loaded with `createRequire`; Node, Deno and Bun all provide that.
 *
 * ```ts
 * import { Engine, schemaVersion } from "./engine.js";
 * const engine = new Engine(snapshotText);
 * engine.evaluate("checkout", { targetingKey: "u1" }, Date.now(), "boolean");
 * ```
 */
import { createRequire } from "node:module";

/** A JSON value, as flags serve them. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** The type a caller expects a flag to have (the engine checks it). */
export type FlagType = "boolean" | "string" | "number" | "object";

/** A flag's human metadata, as the snapshot states it. */
export interface FlagMetadata {
  description?: string;
  owner?: string;
  tags?: string[];
}

/** One evaluation, exactly as the engine returns it (`core/src/result.rs`). */
export interface Evaluation {
  /** Flag key. */
  key: string;
  /** Served value; absent on error (the caller's default applies). */
  value?: JsonValue;
  /** Served variant; absent on error. */
  variant?: string;
  /** `STATIC`, `TARGETING_MATCH`, `SPLIT`, `DISABLED`, `DEFAULT` or `ERROR`. */
  reason: string;
  /** OpenFeature error code when `reason` is `ERROR`. */
  errorCode?: string;
  /** Human explanation of the error. */
  errorMessage?: string;
  /** The matched targeting rule. */
  ruleId?: string;
  /** The prerequisite flag that did not serve its required variant. */
  prerequisiteFailed?: string;
  /** The flag's metadata (absent for unknown flags). */
  metadata?: FlagMetadata;
}

/** A snapshot loaded into the engine. */
export interface Engine {
  /** Evaluates one flag; `expectedType` makes a mismatch a `TYPE_MISMATCH` error. */
  evaluate(flag: string, context: unknown, nowMs: number, expectedType?: FlagType | null): Evaluation;
  /** Evaluates every flag of the snapshot. */
  evaluateAll(context: unknown, nowMs: number): Evaluation[];
  /** Releases the engine's WebAssembly memory now rather than at garbage collection. */
  free(): void;
  readonly version: number;
  readonly environment: string;
  readonly problems: unknown[];
}

/** Hashes targeting keys with a secret exactly as the edge does. */
export interface KeyHasher {
  /** 32 hex characters for a string or number key; undefined otherwise. */
  hash(key: unknown): string | undefined;
  free(): void;
}

/** The wasm-bindgen engine: the same methods, plus the JSON-text ones. */
interface RawEngine {
  evaluateJson(flag: string, context: string, nowMs: number, expectedType?: FlagType | null): string;
  evaluateAllJson(context: string, nowMs: number): string;
  free(): void;
  readonly version: number;
  readonly environment: string;
  readonly problems: unknown[];
}

interface Bindings {
  Engine: new (snapshot: string, lenient?: boolean | null) => RawEngine;
  KeyHasher: new (secret: string) => KeyHasher;
  schemaVersion(): number;
}

const bindings = createRequire(import.meta.url)("./engine/bunting_core.cjs") as Bindings;

/**
 * Loads a snapshot (JSON text). Strict unless `lenient`: throws on any
 * problem, a checksum mismatch included.
 *
 * Contexts and results cross the WebAssembly boundary as JSON text (V8's
 * native `JSON.stringify`/`JSON.parse` on this side, one serde_json pass on
 * the other), which measured about 1.7× faster per evaluation than
 * building JavaScript objects property by property through the boundary.
 */
class WasmEngine implements Engine {
  private readonly raw: RawEngine;

  constructor(snapshot: string, lenient?: boolean | null) {
    this.raw = new bindings.Engine(snapshot, lenient);
  }

  evaluate(flag: string, context: unknown, nowMs: number, expectedType?: FlagType | null): Evaluation {
    return JSON.parse(this.raw.evaluateJson(flag, contextJson(context), nowMs, expectedType ?? undefined)) as Evaluation;
  }

  evaluateAll(context: unknown, nowMs: number): Evaluation[] {
    return JSON.parse(this.raw.evaluateAllJson(contextJson(context), nowMs)) as Evaluation[];
  }

  free(): void {
    this.raw.free();
  }

  get version(): number {
    return this.raw.version;
  }

  get environment(): string {
    return this.raw.environment;
  }

  get problems(): unknown[] {
    return this.raw.problems;
  }
}

/** A context as JSON text; `undefined` (no context) is the JSON `null`. */
function contextJson(context: unknown): string {
  return JSON.stringify(context) ?? "null";
}

/** See {@link WasmEngine}. */
export const Engine: new (snapshot: string, lenient?: boolean | null) => Engine = WasmEngine;
/** See {@link KeyHasher}. */
export const KeyHasher = bindings.KeyHasher;

/** The snapshot schema version the embedded engine reads. */
export const ENGINE_SCHEMA_VERSION: number = bindings.schemaVersion();
