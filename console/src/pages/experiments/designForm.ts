// The design form's state (text as typed) and its two translations: from a
// stored experiment, and to the ExperimentSpec the API takes.
import { variantsOf, type Experiment, type ExperimentSpec, type Flag } from "./data";

export type Action = NonNullable<NonNullable<ExperimentSpec["guardrails"]>[number]["action"]>;

export const ACTIONS: [Action, string][] = [
  ["serveControl", "serve control"],
  ["rolloutToZero", "roll out to 0%"],
  ["disableFlag", "turn the flag off"],
  ["alert", "alert only"],
];

export interface GuardrailRow {
  metric: string;
  tolerance: string;
  action: Action;
}

/** The form's state: text as typed. */
export interface Form {
  key: string;
  flag: string;
  control: string;
  weights: Record<string, string>;
  inLayer: boolean;
  hypothesis: string;
  primary: string;
  secondary: string[];
  guardrails: GuardrailRow[];
  startAt: string;
  stopAt: string;
}

export const EMPTY: Form = {
  key: "",
  flag: "",
  control: "",
  weights: {},
  inLayer: false,
  hypothesis: "",
  primary: "",
  secondary: [],
  guardrails: [],
  startAt: "",
  stopAt: "",
};

export function layerOf(flag: Flag | undefined): string | undefined {
  const l = flag?.layer as { key?: string } | null | undefined;
  return l?.key;
}

/** Equal weights summing to 100 (the first arms take the remainder). */
export function equalWeights(variants: string[]): Record<string, string> {
  const n = variants.length || 1;
  const each = Math.floor(100 / n);
  let rest = 100 - each * n;
  return Object.fromEntries(variants.map((v) => [v, String(each + (rest-- > 0 ? 1 : 0))]));
}

/** `2026-12-02T10:00:00Z` → the `datetime-local` text (local time), and back. */
export function toLocal(at: string | null | undefined): string {
  if (!at) return "";
  const d = new Date(at);
  if (Number.isNaN(d.getTime())) return "";
  return new Date(d.getTime() - d.getTimezoneOffset() * 60_000).toISOString().slice(0, 16);
}
export function fromLocal(text: string): string | null {
  if (!text) return null;
  const d = new Date(text);
  return Number.isNaN(d.getTime()) ? null : d.toISOString().replace(/\.\d{3}Z$/, "Z");
}

export function formOf(x: Experiment, flag: Flag | undefined): Form {
  const allocation = (x.allocation ?? {}) as Record<string, number>;
  const variants = variantsOf(flag);
  return {
    key: x.key,
    flag: x.flag,
    control: x.control,
    weights: Object.keys(allocation).length
      ? Object.fromEntries(variants.map((v) => [v, allocation[v] == null ? "0" : String(allocation[v])]))
      : equalWeights(variants),
    inLayer: !!x.layer,
    hypothesis: x.hypothesis ?? "",
    primary: x.primaryMetric,
    secondary: x.secondaryMetrics ?? [],
    guardrails: (x.guardrails ?? []).map((g) => ({ metric: g.metric, tolerance: String(g.tolerance ?? 0), action: g.action ?? "serveControl" })),
    startAt: toLocal(x.startAt),
    stopAt: toLocal(x.stopAt),
  };
}

export function specOf(f: Form, flag: Flag | undefined): ExperimentSpec {
  const allocation: Record<string, number> = {};
  for (const v of variantsOf(flag)) {
    const w = (f.weights[v] ?? "").trim();
    if (w !== "") allocation[v] = Number(w);
  }
  return {
    key: f.key.trim(),
    flag: f.flag,
    control: f.control,
    hypothesis: f.hypothesis.trim() || null,
    allocation,
    layer: f.inLayer ? (layerOf(flag) ?? null) : null,
    primaryMetric: f.primary,
    secondaryMetrics: f.secondary,
    guardrails: f.guardrails.map((g) => ({ metric: g.metric, tolerance: g.tolerance.trim() === "" ? 0 : Number(g.tolerance), action: g.action })),
    startAt: fromLocal(f.startAt),
    stopAt: fromLocal(f.stopAt),
  };
}
