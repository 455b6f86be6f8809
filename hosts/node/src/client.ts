/**
 * The host client: keeps an environment's snapshot in an embedded engine
 * (fetched from one source, verified, refreshed in the background,
 * fail-static), evaluates locally, and reports exposures and metric events.
 * The OpenFeature provider (`provider.ts`) is a thin layer over it.
 *
 * ```ts
 * const client = new BuntingClient({ sdkKey: process.env.BUNTING_SDK_KEY, edgeUrl: "https://flags.example.com",
 *   ingestUrl: "https://bunting.example.com/api/v1/events" });
 * await client.start();
 * client.evaluate("new-checkout", { targetingKey: "user-1" }, { expectedType: "boolean" }).value;
 * await client.close();
 * ```
 */
import { readFile } from "node:fs/promises";
import { KeyHasher, type Evaluation, type FlagType, type JsonValue } from "./engine.js";
import { Reporter, emptyCounters, unref, type ReporterCounters } from "./exposures.js";
import { snapshotText } from "./packed.js";
import { accept, changedFlags, type LoadedSnapshot } from "./snapshot.js";
import { DirectorySource, EdgeSource, KvSource, type KvSourceOptions, type SnapshotSource } from "./sources.js";

/** Options of {@link BuntingClient}. Exactly one of `edgeUrl`, `kv`, `directory` (or `source`) picks the snapshot source. */
export interface BuntingOptions {
  /**
   * The environment's server SDK key: authenticates the edge source and the
   * exposures sent to the origin, and is the default `hashSecret`.
   */
  sdkKey?: string;
  /** Source 1: the edge worker's base URL (`GET {edgeUrl}/sdk/v1/snapshot`). Needs `sdkKey`. */
  edgeUrl?: string;
  /** Source 2: Cloudflare KV through its REST API. */
  kv?: KvSourceOptions;
  /** Source 3: the origin's directory publisher (`bunting serve --publish-dir DIR`). */
  directory?: { path: string; environment: string };
  /** Any other source (tests, custom transports). */
  source?: SnapshotSource;
  /** A snapshot file to start from when the source fails at start (offline starts): its JSON, or its packed form (a copy of a KV value or a publish-directory file). */
  bootstrapFile?: string;
  /** The environment snapshots must be for (`<org>/<project>/<env>`); default: the first one loaded. */
  environment?: string;
  /** Background refresh period. Default 10 000 ms. */
  pollIntervalMs?: number;
  /** How long `start()` waits for the source before falling back to the bootstrap file. Default 5 000 ms. */
  initTimeoutMs?: number;
  /** Bound of each HTTP request of a refresh or a flush. Default 10 000 ms. */
  requestTimeoutMs?: number;
  /** The origin's `…/api/v1/events`. Without it no exposures nor events are recorded. */
  ingestUrl?: string;
  /** Bearer token for `ingestUrl` instead of `sdkKey` (e.g. the origin's ingest secret). */
  ingestToken?: string;
  /** Secret of the targeting-key hash; set it to the edge's `KEY_HASH_SECRET` (or its `INGEST_SECRET` when it has none) so host and edge users join. Default: `sdkKey`. */
  hashSecret?: string;
  /** One exposure per (targetingKey, flag, variant) within this window. Default 300 000 ms. */
  exposureDedupWindowMs?: number;
  /** Entries the dedup map holds before forgetting the oldest. Default 100 000. */
  exposureDedupMaxEntries?: number;
  /** Queued exposures; more are dropped and counted. Default 10 000. */
  maxQueuedExposures?: number;
  /** Queued metric events; more are dropped and counted. Default 10 000. */
  maxQueuedEvents?: number;
  /** Background flush period. Default 2 000 ms. */
  flushIntervalMs?: number;
  /** Queue length that triggers a flush before the period ends. Default 100. */
  flushAt?: number;
  /** How long `close()` may spend flushing. Default 5 000 ms. */
  closeTimeoutMs?: number;
  /** The `fetch` to use (default: the global one). */
  fetch?: typeof globalThis.fetch;
  /**
   * Load snapshots leniently: a flag the engine cannot compile evaluates to
   * `PARSE_ERROR` instead of refusing the whole snapshot. Default false
   * (published snapshots always compile).
   */
  lenient?: boolean;
  /** The clock of evaluations and exposures, in Unix ms. Default `Date.now`. */
  clock?: () => number;
}

/** `not_ready` before start, `ready`, `stale` (serving the last good snapshot; the source fails), `error` (nothing to serve). */
export type ClientStatus = "not_ready" | "ready" | "stale" | "error";

/** What `status()` reports. */
export interface HealthStatus extends ReporterCounters {
  status: ClientStatus;
  environment: string | null;
  snapshotVersion: number | null;
  /** `edge`, `kv`, `directory` (or a custom source's name). */
  source: string;
  /** Where the snapshot in service came from: the source, or the bootstrap file. */
  loadedFrom: "source" | "bootstrap" | null;
  lastSuccessAt: number | null;
  lastAttemptAt: number | null;
  lastError: string | null;
  consecutiveFailures: number;
  exposuresPending: number;
  eventsPending: number;
}

/** Events a client emits. */
export interface ClientEvents {
  /** A snapshot is served and the source answers (after start, or on recovery). */
  ready: () => void;
  /** A new snapshot was swapped in; `flagsChanged` = keys added, removed or changed. */
  configurationChanged: (flagsChanged: string[]) => void;
  /** The source fails; the last good snapshot is still served. Once per transition. */
  stale: (message: string) => void;
  /** No snapshot could be loaded at all. Once per transition. */
  error: (message: string) => void;
}

/** Per-evaluation options. */
export interface EvaluateOptions {
  /** Makes a flag of another type a `TYPE_MISMATCH` error. */
  expectedType?: FlagType;
  /** Evaluation time in Unix ms (schedules, time conditions). Default: now. */
  now?: number;
}

const DEFAULTS = {
  pollIntervalMs: 10_000,
  initTimeoutMs: 5_000,
  requestTimeoutMs: 10_000,
  exposureDedupWindowMs: 300_000,
  exposureDedupMaxEntries: 100_000,
  maxQueuedExposures: 10_000,
  maxQueuedEvents: 10_000,
  flushIntervalMs: 2_000,
  flushAt: 100,
  closeTimeoutMs: 5_000,
  lenient: false,
  clock: Date.now,
};

/**
 * The context the engine sees: an OpenFeature context is JSON already,
 * except for dates, which become RFC 3339 strings. Copies only when it
 * finds one.
 */
export function toEngineContext(value: unknown): unknown {
  if (value instanceof Date) return value.toISOString();
  if (typeof value !== "object" || value === null) return value;
  if (Array.isArray(value)) {
    let out: unknown[] | undefined;
    value.forEach((v, i) => {
      const c = toEngineContext(v);
      if (c !== v) (out ??= value.slice())[i] = c;
    });
    return out ?? value;
  }
  let out: Record<string, unknown> | undefined;
  for (const [k, v] of Object.entries(value)) {
    const c = toEngineContext(v);
    if (c !== v) (out ??= { ...(value as Record<string, unknown>) })[k] = c;
  }
  return out ?? value;
}

function notReady(flag: string): Evaluation {
  return { key: flag, reason: "ERROR", errorCode: "PROVIDER_NOT_READY", errorMessage: "no snapshot loaded yet" };
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export class BuntingClient {
  private readonly o: BuntingOptions & typeof DEFAULTS;
  private readonly source: SnapshotSource;
  private readonly reporter: Reporter | undefined;
  private readonly hasher: InstanceType<typeof KeyHasher> | undefined;
  private readonly listeners: { [K in keyof ClientEvents]: Set<ClientEvents[K]> } = {
    ready: new Set(),
    configurationChanged: new Set(),
    stale: new Set(),
    error: new Set(),
  };
  private current: LoadedSnapshot | undefined;
  /** The source's tag (ETag, file identity) of the snapshot in service. */
  private tag: string | undefined;
  private state: ClientStatus = "not_ready";
  private loadedFrom: "source" | "bootstrap" | null = null;
  private lastSuccessAt: number | null = null;
  private lastAttemptAt: number | null = null;
  private lastError: string | null = null;
  private consecutiveFailures = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private refreshing: Promise<void> | undefined;
  private starting: Promise<void> | undefined;
  private closed = false;

  constructor(options: BuntingOptions) {
    this.o = { ...DEFAULTS, ...Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) };
    const fetchFn = this.o.fetch ?? globalThis.fetch.bind(globalThis);
    const chosen = [this.o.edgeUrl, this.o.kv, this.o.directory, this.o.source].filter((s) => s !== undefined).length;
    if (chosen !== 1) throw new TypeError("give exactly one snapshot source: edgeUrl, kv, directory or source");
    if (this.o.edgeUrl !== undefined) {
      if (!this.o.sdkKey) throw new TypeError("the edge source needs sdkKey (a server SDK key)");
      this.source = new EdgeSource(this.o.edgeUrl, this.o.sdkKey, fetchFn);
    } else if (this.o.kv !== undefined) {
      this.source = new KvSource(this.o.kv, fetchFn);
    } else if (this.o.directory !== undefined) {
      this.source = new DirectorySource(this.o.directory);
    } else {
      this.source = this.o.source!;
    }
    const hashSecret = this.o.hashSecret ?? this.o.sdkKey;
    if (hashSecret !== undefined) this.hasher = new KeyHasher(hashSecret);
    if (this.o.ingestUrl !== undefined) {
      const token = this.o.ingestToken ?? this.o.sdkKey;
      if (!token) throw new TypeError("ingestUrl needs sdkKey or ingestToken");
      if (!this.hasher) throw new TypeError("ingestUrl needs sdkKey or hashSecret");
      this.reporter = new Reporter({
        ingestUrl: this.o.ingestUrl,
        token,
        hasher: this.hasher,
        dedupWindowMs: this.o.exposureDedupWindowMs,
        dedupMaxEntries: this.o.exposureDedupMaxEntries,
        maxQueuedExposures: this.o.maxQueuedExposures,
        maxQueuedEvents: this.o.maxQueuedEvents,
        flushIntervalMs: this.o.flushIntervalMs,
        flushAt: this.o.flushAt,
        requestTimeoutMs: this.o.requestTimeoutMs,
        fetch: fetchFn,
      });
    }
  }

  /** Subscribes to an event; returns the unsubscribe function. */
  on<K extends keyof ClientEvents>(event: K, listener: ClientEvents[K]): () => void {
    this.listeners[event].add(listener);
    return () => this.listeners[event].delete(listener);
  }

  /**
   * Fetches the first snapshot (at most `initTimeoutMs`), falling back to the
   * bootstrap file, and starts the background refresh. Resolves when a
   * snapshot is served (status `ready`, or `stale` if it is the bootstrap's);
   * rejects when there is none (status `error`; the refresh keeps trying and
   * emits `ready` when one arrives). Idempotent.
   */
  start(): Promise<void> {
    this.starting ??= this.init();
    return this.starting;
  }

  private async init(): Promise<void> {
    const failure = await this.refreshOnce(AbortSignal.timeout(this.o.initTimeoutMs), false);
    if (failure !== undefined && this.current === undefined && this.o.bootstrapFile !== undefined) {
      try {
        const outcome = accept(snapshotText(await readFile(this.o.bootstrapFile)), { expectedEnvironment: this.o.environment, lenient: this.o.lenient });
        if (outcome.kind === "loaded") {
          this.current = outcome.snapshot;
          this.loadedFrom = "bootstrap";
        }
      } catch (e) {
        this.lastError = `${failure}; bootstrap file ${this.o.bootstrapFile}: ${message(e)}`;
      }
    }
    this.scheduleRefresh();
    if (this.current === undefined) {
      this.state = "error";
      this.emit("error", this.lastError ?? "no snapshot");
      throw new Error(`bunting: no snapshot to serve: ${this.lastError}`);
    }
    this.state = failure === undefined ? "ready" : "stale";
    this.emit("ready");
    if (failure !== undefined) this.emit("stale", failure);
  }

  /** Fetches from the source now (the background refresh does this every `pollIntervalMs`). */
  refresh(): Promise<void> {
    this.refreshing ??= this.refreshOnce(AbortSignal.timeout(this.o.requestTimeoutMs), true)
      .then(() => undefined)
      .finally(() => {
        this.refreshing = undefined;
      });
    return this.refreshing;
  }

  /** One fetch and, if it brings a new snapshot, one swap. Returns the failure, if any. */
  private async refreshOnce(signal: AbortSignal, transitions: boolean): Promise<string | undefined> {
    this.lastAttemptAt = Date.now();
    let failure: string | undefined;
    let changed: string[] | undefined;
    try {
      const fetched = await this.source.fetch(this.current === undefined ? undefined : this.tag, signal);
      if (fetched.kind === "snapshot") {
        // Same version as in service (e.g. KV, which has no ETag): "unchanged", no engine load.
        const outcome = accept(fetched.text, { current: this.current, expectedEnvironment: this.o.environment, lenient: this.o.lenient });
        if (outcome.kind === "loaded") changed = this.swap(outcome.snapshot);
        this.tag = fetched.tag;
      }
      this.loadedFrom = "source";
    } catch (e) {
      failure = message(e);
    }
    if (this.closed) return failure;
    if (failure === undefined) {
      this.lastSuccessAt = Date.now();
      this.lastError = null;
      this.consecutiveFailures = 0;
      if (transitions && this.state !== "ready") {
        this.state = "ready";
        this.emit("ready");
      }
      if (changed !== undefined && changed.length > 0) this.emit("configurationChanged", changed);
    } else {
      this.lastError = failure;
      this.consecutiveFailures++;
      if (transitions && this.state === "ready") {
        this.state = "stale";
        this.emit("stale", failure);
      }
    }
    return failure;
  }

  /** Puts `next` in service; returns the flags that changed (none for the first snapshot). */
  private swap(next: LoadedSnapshot): string[] {
    const previous = this.current;
    this.current = next;
    // Evaluations are synchronous: none is running on the old engine now.
    if (previous === undefined) return []; // a first snapshot is READY, not a change
    previous.engine.free();
    return changedFlags(previous, next);
  }

  private scheduleRefresh(): void {
    if (this.closed) return;
    this.timer = setTimeout(() => {
      void this.refresh().finally(() => this.scheduleRefresh());
    }, this.o.pollIntervalMs);
    unref(this.timer);
  }

  private emit<K extends keyof ClientEvents>(event: K, ...args: Parameters<ClientEvents[K]>): void {
    for (const listener of this.listeners[event]) {
      try {
        (listener as (...a: unknown[]) => void)(...args);
      } catch {
        // A listener's failure is its own.
      }
    }
  }

  /** Evaluates one flag locally; records an exposure if the evaluation is one. Never throws, never waits. */
  evaluate(flag: string, context: unknown, options: EvaluateOptions = {}): Evaluation {
    const snapshot = this.current;
    if (snapshot === undefined) return notReady(flag);
    const now = options.now ?? this.o.clock();
    const ctx = toEngineContext(context);
    let result: Evaluation;
    try {
      result = snapshot.engine.evaluate(flag, ctx, now, options.expectedType ?? null);
    } catch (e) {
      return { key: flag, reason: "ERROR", errorCode: "INVALID_CONTEXT", errorMessage: message(e) };
    }
    this.reporter?.exposure(result, ctx, snapshot.environment, snapshot.version, now);
    return result;
  }

  /** Evaluates every flag locally (one engine call); records the exposures among them. */
  evaluateAll(context: unknown, options: Pick<EvaluateOptions, "now"> = {}): Evaluation[] {
    const snapshot = this.current;
    if (snapshot === undefined) return [];
    const now = options.now ?? this.o.clock();
    const ctx = toEngineContext(context);
    let results: Evaluation[];
    try {
      results = snapshot.engine.evaluateAll(ctx, now);
    } catch (e) {
      return [...snapshot.flags.keys()].map((key) => ({ key, reason: "ERROR", errorCode: "INVALID_CONTEXT", errorMessage: message(e) }));
    }
    if (this.reporter !== undefined) {
      for (const r of results) this.reporter.exposure(r, ctx, snapshot.environment, snapshot.version, now);
    }
    return results;
  }

  /**
   * Queues a metric event (`purchase`, `signup`…) for `context.targetingKey`,
   * sent to the origin with the exposures. Throws a TypeError for a bad name
   * or a context without a targeting key; without `ingestUrl` it does nothing.
   */
  track(name: string, context: unknown, value?: number): void {
    if (this.reporter === undefined) return;
    const environment = this.current?.environment ?? this.o.environment;
    if (environment === undefined) throw new Error("bunting: track before any snapshot and without the environment option");
    this.reporter.event(name, context, value, environment, this.o.clock());
  }

  /** The keyed hash of a targeting key, as exposures carry it (undefined without a hash secret). */
  hashKey(key: string | number): string | undefined {
    return this.hasher?.hash(key);
  }

  /** Sends queued exposures and events now. */
  async flush(): Promise<void> {
    await this.reporter?.flush();
  }

  /** Health: status, snapshot, source, timings, errors and exposure counters. */
  status(): HealthStatus {
    const counters: ReporterCounters = this.reporter?.counters ?? emptyCounters();
    const pending = this.reporter?.pending ?? { exposures: 0, events: 0 };
    return {
      status: this.state,
      environment: this.current?.environment ?? null,
      snapshotVersion: this.current?.version ?? null,
      source: this.source.name,
      loadedFrom: this.current === undefined ? null : this.loadedFrom,
      lastSuccessAt: this.lastSuccessAt,
      lastAttemptAt: this.lastAttemptAt,
      lastError: this.lastError,
      consecutiveFailures: this.consecutiveFailures,
      ...counters,
      exposuresPending: pending.exposures,
      eventsPending: pending.events,
    };
  }

  /** Stops refreshing and flushes exposures and events (at most `closeTimeoutMs`). Evaluations keep working on the last snapshot. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.timer);
    await this.reporter?.close(this.o.closeTimeoutMs);
  }
}

export type { Evaluation, FlagType, JsonValue };
