/**
 * Exposures and metric events on their way to the origin's
 * `POST /api/v1/events`: deduplicated, queued in bounded memory, sent in
 * batches by a background timer, retried with backoff, counted when
 * dropped. Nothing here blocks or fails an evaluation: recording is a few
 * map and array operations, sending happens later.
 *
 * ```ts
 * const reporter = new Reporter({ ingestUrl, token: sdkKey, hasher, ... });
 * reporter.exposure(evaluation, context, "acme/web/production", 42);
 * await reporter.close(5000);
 * ```
 */
import type { Evaluation, KeyHasher } from "./engine.js";

/** `bunting_wire::ExposureRecord`. */
export interface ExposureRecord {
  flag: string;
  variant: string;
  ruleId?: string;
  bucketingKeyHash: string;
  environment: string;
  snapshotVersion: number;
  time: number;
  country?: string;
  deviceType?: string;
}

/** `bunting_wire::EventRecord`. */
export interface EventRecord {
  name: string;
  targetingKeyHash: string;
  value?: number;
  timestamp: number;
  receivedAt: number;
  id: string;
}

/** What happened to exposures and events so far. */
export interface ReporterCounters {
  exposuresQueued: number;
  exposuresSent: number;
  exposuresDropped: number;
  exposuresDeduplicated: number;
  exposuresRejected: number;
  eventsQueued: number;
  eventsSent: number;
  eventsDropped: number;
  eventsRejected: number;
  failedRequests: number;
  lastIngestError: string | null;
}

export interface ReporterOptions {
  ingestUrl: string;
  /** Bearer token: the server SDK key, or an explicit ingest token. */
  token: string;
  hasher: KeyHasher;
  dedupWindowMs: number;
  dedupMaxEntries: number;
  maxQueuedExposures: number;
  maxQueuedEvents: number;
  flushIntervalMs: number;
  flushAt: number;
  requestTimeoutMs: number;
  fetch: typeof globalThis.fetch;
}

/** Most records per request. */
export const MAX_BATCH = 500;
/** Longest wait between retries. */
const MAX_BACKOFF_MS = 60_000;
const EVENT_NAME = /^[A-Za-z0-9_.:-]{1,128}$/;

interface QueuedEvent {
  environment: string;
  record: EventRecord;
}

/** Lets a timer not keep the process alive (Node and Bun: `unref()`; Deno: `Deno.unrefTimer`). */
export function unref(timer: unknown): void {
  if (typeof timer === "object" && timer !== null && "unref" in timer && typeof timer.unref === "function") {
    timer.unref();
  } else if (typeof timer === "number") {
    (globalThis as { Deno?: { unrefTimer(id: number): void } }).Deno?.unrefTimer(timer);
  }
}

function attribute(context: Record<string, unknown>, outer: string, inner: string): string | undefined {
  const o = context[outer];
  if (typeof o !== "object" || o === null) return undefined;
  const v = (o as Record<string, unknown>)[inner];
  return typeof v === "string" ? v : undefined;
}

/** Counters before anything was recorded. */
export function emptyCounters(): ReporterCounters {
  return {
    exposuresQueued: 0,
    exposuresSent: 0,
    exposuresDropped: 0,
    exposuresDeduplicated: 0,
    exposuresRejected: 0,
    eventsQueued: 0,
    eventsSent: 0,
    eventsDropped: 0,
    eventsRejected: 0,
    failedRequests: 0,
    lastIngestError: null,
  };
}

export class Reporter {
  readonly counters: ReporterCounters = emptyCounters();
  private readonly exposures: ExposureRecord[] = [];
  private readonly events: QueuedEvent[] = [];
  /** (key, flag, variant) → when last recorded; insertion order = age. */
  private readonly seen = new Map<string, number>();
  private timer: ReturnType<typeof setTimeout> | undefined;
  private flushing: Promise<void> | undefined;
  private backoffUntil = 0;
  private backoffMs = 0;
  private closed = false;

  constructor(private readonly o: ReporterOptions) {
    this.schedule(o.flushIntervalMs);
  }

  /** Records the exposure an evaluation makes, if it is one: reason SPLIT, a variant, a string or number targeting key. */
  exposure(e: Evaluation, context: unknown, environment: string, snapshotVersion: number, now: number): void {
    if (e.reason !== "SPLIT" || e.variant === undefined || this.closed) return;
    if (typeof context !== "object" || context === null) return;
    const ctx = context as Record<string, unknown>;
    const key = ctx.targetingKey;
    if (typeof key !== "string" && typeof key !== "number") return;
    const dedupKey = `${typeof key}\u0000${key}\u0000${e.key}\u0000${e.variant}`;
    const last = this.seen.get(dedupKey);
    if (last !== undefined && now - last < this.o.dedupWindowMs) {
      this.counters.exposuresDeduplicated++;
      return;
    }
    if (this.exposures.length >= this.o.maxQueuedExposures) {
      // Not remembered as seen: once there is room, the next one is queued.
      this.counters.exposuresDropped++;
      return;
    }
    const hash = this.o.hasher.hash(key);
    if (hash === undefined) return;
    if (last !== undefined) this.seen.delete(dedupKey);
    else if (this.seen.size >= this.o.dedupMaxEntries) {
      // Forget the oldest entry (a Map iterates in insertion order).
      const oldest = this.seen.keys().next();
      if (!oldest.done) this.seen.delete(oldest.value);
    }
    this.seen.set(dedupKey, now);
    const record: ExposureRecord = {
      flag: e.key,
      variant: e.variant,
      bucketingKeyHash: hash,
      environment,
      snapshotVersion,
      time: now,
    };
    if (e.ruleId !== undefined) record.ruleId = e.ruleId;
    const country = attribute(ctx, "geo", "country");
    if (country !== undefined) record.country = country;
    const deviceType = attribute(ctx, "device", "type");
    if (deviceType !== undefined) record.deviceType = deviceType;
    this.exposures.push(record);
    this.counters.exposuresQueued++;
    if (this.exposures.length >= this.o.flushAt) this.kick();
  }

  /**
   * Queues a metric event for the user `context.targetingKey`. Throws a
   * TypeError for a bad name or a missing targeting key (caller errors);
   * a full queue drops and counts instead.
   */
  event(name: string, context: unknown, value: number | undefined, environment: string, now: number): void {
    if (!EVENT_NAME.test(name)) {
      throw new TypeError(`event name ${JSON.stringify(name)} must be 1 to 128 characters of A-Z a-z 0-9 _ . : -`);
    }
    const key = typeof context === "object" && context !== null ? (context as Record<string, unknown>).targetingKey : undefined;
    const hash = typeof key === "string" || typeof key === "number" ? this.o.hasher.hash(key) : undefined;
    if (hash === undefined) throw new TypeError("track needs a context with a string or number targetingKey");
    if (value !== undefined && !Number.isFinite(value)) throw new TypeError("an event's value must be a finite number");
    if (this.closed) return;
    if (this.events.length >= this.o.maxQueuedEvents) {
      this.counters.eventsDropped++;
      return;
    }
    const record: EventRecord = { name, targetingKeyHash: hash, timestamp: now, receivedAt: now, id: crypto.randomUUID() };
    if (value !== undefined) record.value = value;
    this.events.push({ environment, record });
    this.counters.eventsQueued++;
    if (this.events.length >= this.o.flushAt) this.kick();
  }

  /** Records waiting to be sent. */
  get pending(): { exposures: number; events: number } {
    return { exposures: this.exposures.length, events: this.events.length };
  }

  /**
   * Sends what is queued, batch after batch, until the queues are empty or
   * a request fails (then backs off). One flush at a time.
   */
  flush(): Promise<void> {
    this.flushing ??= this.drain().finally(() => {
      this.flushing = undefined;
    });
    return this.flushing;
  }

  /** Stops the timer and sends what is queued, giving up after `timeoutMs`. */
  async close(timeoutMs: number): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    const deadline = Date.now() + timeoutMs;
    this.backoffUntil = 0;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeoutMs);
    });
    try {
      await Promise.race([
        (async () => {
          await this.flushing;
          this.backoffUntil = 0;
          await this.drain(deadline);
        })(),
        timeout,
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  private kick(): void {
    if (Date.now() >= this.backoffUntil) void this.flush();
  }

  private schedule(ms: number): void {
    if (this.closed) return;
    this.timer = setTimeout(() => {
      const run = Date.now() >= this.backoffUntil ? this.flush() : Promise.resolve();
      void run.finally(() => this.schedule(this.o.flushIntervalMs));
    }, ms);
    unref(this.timer);
  }

  private async drain(deadline?: number): Promise<void> {
    while (this.exposures.length > 0 || this.events.length > 0) {
      if (deadline !== undefined && Date.now() >= deadline) return;
      const ok = this.exposures.length > 0 ? await this.sendExposures(deadline) : await this.sendEvents(deadline);
      if (!ok) return;
    }
  }

  private async sendExposures(deadline?: number): Promise<boolean> {
    const batch = this.exposures.slice(0, MAX_BATCH);
    const outcome = await this.post({ kind: "exposures", exposures: batch }, deadline);
    if (outcome === "retry") return false;
    this.exposures.splice(0, batch.length);
    if (outcome === "sent") this.counters.exposuresSent += batch.length;
    else this.counters.exposuresRejected += batch.length;
    return true;
  }

  private async sendEvents(deadline?: number): Promise<boolean> {
    const environment = this.events[0]!.environment;
    const batch: EventRecord[] = [];
    for (const e of this.events) {
      if (e.environment !== environment || batch.length >= MAX_BATCH) break;
      batch.push(e.record);
    }
    const outcome = await this.post({ kind: "events", environment, events: batch }, deadline);
    if (outcome === "retry") return false;
    this.events.splice(0, batch.length);
    if (outcome === "sent") this.counters.eventsSent += batch.length;
    else this.counters.eventsRejected += batch.length;
    return true;
  }

  /** One request: `sent` (2xx), `rejected` (other 4xx: the batch is dropped) or `retry` (429, 5xx, network). */
  private async post(body: unknown, deadline?: number): Promise<"sent" | "rejected" | "retry"> {
    const timeout = Math.max(1, Math.min(this.o.requestTimeoutMs, deadline === undefined ? Infinity : deadline - Date.now()));
    let status: number;
    let detail = "";
    try {
      const r = await this.o.fetch(this.o.ingestUrl, {
        method: "POST",
        headers: { authorization: `Bearer ${this.o.token}`, "content-type": "application/json" },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(timeout),
      });
      status = r.status;
      detail = (await r.text().catch(() => "")).slice(0, 300);
    } catch (e) {
      return this.failed(`ingest unreachable: ${(e as Error).message}`);
    }
    if (status >= 200 && status < 300) {
      this.backoffMs = 0;
      return "sent";
    }
    if (status === 429 || status >= 500) return this.failed(`ingest answered ${status}: ${detail}`);
    this.counters.failedRequests++;
    this.counters.lastIngestError = `ingest refused a batch with ${status}: ${detail}`;
    return "rejected";
  }

  private failed(message: string): "retry" {
    this.counters.failedRequests++;
    this.counters.lastIngestError = message;
    this.backoffMs = Math.min(MAX_BACKOFF_MS, this.backoffMs === 0 ? this.o.flushIntervalMs : this.backoffMs * 2);
    this.backoffUntil = Date.now() + this.backoffMs;
    return "retry";
  }
}
