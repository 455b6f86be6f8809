// How the results page writes numbers: one place, so the page, its chart's
// text alternative and the tests agree. Missing values are "—".
import type { Schema } from "../../api";

type Kind = Schema<"MetricKind">;
type Estimate = Schema<"Estimate">;

const MINUS = "−";
export const NONE = "—";

function signed(text: string, v: number): string {
  if (v > 0) return `+${text}`;
  if (v < 0) return `${MINUS}${text.replace(/^-/, "")}`;
  return text.replace(/^-/, "");
}

/** Users: `1,234`. */
export function users(n: number | null | undefined): string {
  return n == null ? NONE : n.toLocaleString("en-US");
}

/** A share (0–1) as `50.0%`. */
export function share(v: number | null | undefined): string {
  return v == null ? NONE : `${(100 * v).toFixed(1)}%`;
}

/** A metric's value: a conversion rate as `12.34%`, anything else with 4 decimals. */
export function value(kind: Kind, v: number | null | undefined): string {
  if (v == null) return NONE;
  return kind === "conversion" ? `${(100 * v).toFixed(2)}%` : v.toFixed(4);
}

/** A relative change (0.1 = +10%) as `+10.00%`. */
export function relative(v: number | null | undefined): string {
  return v == null ? NONE : signed(`${Math.abs(100 * v).toFixed(2)}%`, v);
}

/** An absolute change: percentage points for conversions (`+1.50 pp`), else 4 decimals. */
export function absolute(kind: Kind, v: number | null | undefined): string {
  if (v == null) return NONE;
  return kind === "conversion" ? signed(`${Math.abs(100 * v).toFixed(2)} pp`, v) : signed(Math.abs(v).toFixed(4), v);
}

/** An interval `[low, high]`, an absent end unbounded (∞). */
export function interval(e: Estimate | null | undefined, each: (v: number) => string): string {
  if (!e) return NONE;
  const low = e.ciLow == null ? `${MINUS}∞` : each(e.ciLow);
  const high = e.ciHigh == null ? "+∞" : each(e.ciHigh);
  return `[${low}, ${high}]`;
}

/** A p-value with 4 decimals (`<0.0001` below). */
export function p(v: number | null | undefined): string {
  if (v == null) return NONE;
  return v < 0.0001 ? "<0.0001" : v.toFixed(4);
}

/** A probability as `97.3%`. */
export function chance(v: number | null | undefined): string {
  return v == null ? NONE : `${(100 * v).toFixed(1)}%`;
}

/** What the sequential test's decision says. */
export function verdict(decision: string | undefined): string {
  switch (decision) {
    case "treatmentBetter":
      return "Treatment better";
    case "treatmentWorse":
      return "Treatment worse";
    case "continue":
      return "Keep collecting";
    default:
      return NONE;
  }
}

/** A day (`2026-12-02`) as a Unix time in seconds, at UTC midnight. */
export function daySeconds(date: string): number {
  return Date.parse(`${date.slice(0, 10)}T00:00:00Z`) / 1000;
}
