/**
 * The OpenFeature provider for `@openfeature/server-sdk`: typed resolution
 * through the embedded engine, provider events from the client's
 * lifecycle, `track` as metric events, `onClose` flushing exposures.
 *
 * ```ts
 * import { OpenFeature } from "@openfeature/server-sdk";
 * import { BuntingProvider } from "@bunting/server-sdk";
 * await OpenFeature.setProviderAndWait(new BuntingProvider({ sdkKey, edgeUrl, ingestUrl }));
 * const client = OpenFeature.getClient();
 * await client.getBooleanValue("new-checkout", false, { targetingKey: "user-1" });
 * ```
 */
import {
  ErrorCode,
  OpenFeatureEventEmitter,
  ProviderEvents,
  type EvaluationContext,
  type FlagMetadata,
  type JsonValue as OfJsonValue,
  type Provider,
  type ResolutionDetails,
  type TrackingEventDetails,
} from "@openfeature/server-sdk";
import { BuntingClient, type BuntingOptions } from "./client.js";
import type { Evaluation, FlagType } from "./engine.js";

const ERROR_CODES = new Set<string>(Object.values(ErrorCode));

/**
 * OpenFeature flag metadata of an evaluation: the flag's `description`,
 * `owner` and `tags` (joined with commas: metadata values are scalars),
 * plus the engine's `ruleId` and `prerequisiteFailed` when set. The same
 * keys as the edge's OFREP metadata.
 */
export function flagMetadata(e: Evaluation): FlagMetadata {
  const m: FlagMetadata = {};
  const meta = e.metadata;
  if (meta?.description !== undefined) m.description = meta.description;
  if (meta?.owner !== undefined) m.owner = meta.owner;
  if (meta?.tags !== undefined && meta.tags.length > 0) m.tags = meta.tags.join(",");
  if (e.ruleId !== undefined) m.ruleId = e.ruleId;
  if (e.prerequisiteFailed !== undefined) m.prerequisiteFailed = e.prerequisiteFailed;
  return m;
}

/** An evaluation as OpenFeature resolution details; on error the caller's default with the engine's code. */
export function resolution<T>(e: Evaluation, defaultValue: T): ResolutionDetails<T> {
  const details: ResolutionDetails<T> = { value: defaultValue, reason: e.reason, flagMetadata: flagMetadata(e) };
  if (e.errorCode !== undefined) {
    details.errorCode = (ERROR_CODES.has(e.errorCode) ? e.errorCode : ErrorCode.GENERAL) as ErrorCode;
    if (e.errorMessage !== undefined) details.errorMessage = e.errorMessage;
    return details;
  }
  details.value = e.value as T;
  if (e.variant !== undefined) details.variant = e.variant;
  return details;
}

export class BuntingProvider implements Provider {
  readonly metadata = { name: "bunting" } as const;
  readonly runsOn = "server" as const;
  readonly events = new OpenFeatureEventEmitter();
  /** The client underneath: `status()`, `evaluateAll`, `flush`. */
  readonly client: BuntingClient;
  private initialized = false;

  /** Builds its own client from options, or wraps one. */
  constructor(options: BuntingOptions | BuntingClient) {
    this.client = options instanceof BuntingClient ? options : new BuntingClient(options);
    this.client.on("ready", () => {
      if (this.initialized) this.events.emit(ProviderEvents.Ready, { message: "snapshot in service" });
    });
    this.client.on("configurationChanged", (flagsChanged) => {
      this.events.emit(ProviderEvents.ConfigurationChanged, { flagsChanged, message: `snapshot ${this.client.status().snapshotVersion}` });
    });
    this.client.on("stale", (message) => {
      if (this.initialized) this.events.emit(ProviderEvents.Stale, { message });
    });
    this.client.on("error", (message) => {
      if (this.initialized) this.events.emit(ProviderEvents.Error, { message });
    });
  }

  /**
   * Loads the first snapshot (source, else bootstrap file). The SDK emits
   * READY when this resolves and ERROR when it rejects; a provider that
   * started from its bootstrap file because the source failed then emits
   * STALE. Later transitions come from the background refresh.
   */
  async initialize(): Promise<void> {
    try {
      await this.client.start();
    } finally {
      this.initialized = true;
    }
    if (this.client.status().status === "stale") {
      // After the SDK's own READY, which follows this promise.
      const t = setTimeout(() => {
        if (this.client.status().status === "stale") {
          this.events.emit(ProviderEvents.Stale, { message: this.client.status().lastError ?? "stale" });
        }
      }, 0);
      t.unref?.();
    }
  }

  async onClose(): Promise<void> {
    await this.client.close();
  }

  private resolve<T>(flagKey: string, defaultValue: T, context: EvaluationContext, type: FlagType): Promise<ResolutionDetails<T>> {
    return Promise.resolve(resolution(this.client.evaluate(flagKey, context, { expectedType: type }), defaultValue));
  }

  resolveBooleanEvaluation(flagKey: string, defaultValue: boolean, context: EvaluationContext): Promise<ResolutionDetails<boolean>> {
    return this.resolve(flagKey, defaultValue, context, "boolean");
  }

  resolveStringEvaluation(flagKey: string, defaultValue: string, context: EvaluationContext): Promise<ResolutionDetails<string>> {
    return this.resolve(flagKey, defaultValue, context, "string");
  }

  resolveNumberEvaluation(flagKey: string, defaultValue: number, context: EvaluationContext): Promise<ResolutionDetails<number>> {
    return this.resolve(flagKey, defaultValue, context, "number");
  }

  resolveObjectEvaluation<T extends OfJsonValue>(flagKey: string, defaultValue: T, context: EvaluationContext): Promise<ResolutionDetails<T>> {
    return this.resolve(flagKey, defaultValue, context, "object");
  }

  /**
   * Every flag for one context in one engine call (the OpenFeature server
   * SDK has no bulk evaluation): key → resolution details, errors with a
   * `null` value.
   */
  resolveAll(context: EvaluationContext, options: { now?: number } = {}): Record<string, ResolutionDetails<OfJsonValue>> {
    const out: Record<string, ResolutionDetails<OfJsonValue>> = {};
    for (const e of this.client.evaluateAll(context, options)) out[e.key] = resolution<OfJsonValue>(e, null);
    return out;
  }

  /** OpenFeature tracking: a metric event named `trackingEventName` with `details.value`. */
  track(trackingEventName: string, context: EvaluationContext, trackingEventDetails: TrackingEventDetails): void {
    this.client.track(trackingEventName, context, trackingEventDetails?.value);
  }
}
