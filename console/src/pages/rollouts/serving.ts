// What a flag serves, in words, from the environment's snapshot: a fixed
// variant, a weighted split, or a scheduled ramp with its current step and
// the next one.

/** How the snapshot writes what a rule or the fallthrough serves. */
export type Serve =
  | { variant: string }
  | { rollout: { variant: string; weight: number }[] }
  | { schedule: { variant: string; otherwise: string; steps: { at: string; percentage: number }[] } };

/** A flag of the snapshot (the fields used here). */
export interface SnapshotFlag {
  key: string;
  enabled: boolean;
  offVariant: string;
  rules?: { id?: string; description?: string; serve: Serve }[];
  fallthrough: Serve;
}

/** One line per place that serves something other than a single variant, else the fallthrough. */
export function describeServing(flag: SnapshotFlag | undefined, now = Date.now()): string[] {
  if (!flag) return [];
  if (!flag.enabled) return [`off: serves ${flag.offVariant} to everybody`];
  const lines: string[] = [];
  (flag.rules ?? []).forEach((r, i) => {
    if (!("variant" in r.serve)) lines.push(`rule ${r.id ?? r.description ?? i + 1}: ${serveText(r.serve, now)}`);
  });
  lines.push(`default: ${serveText(flag.fallthrough, now)}`);
  return lines;
}

/** "75% on, 25% off", or "ramp: 25% get on (step 2 of 4, since …); next 50% at …". */
export function serveText(s: Serve, now = Date.now()): string {
  if ("variant" in s) return `serves ${s.variant}`;
  if ("rollout" in s) return s.rollout.map((w) => `${w.weight}% ${w.variant}`).join(", ");
  const { variant, otherwise, steps } = s.schedule;
  const current = steps.filter((x) => Date.parse(x.at) <= now).length;
  const pct = current === 0 ? 0 : steps[current - 1]!.percentage;
  const next = steps[current];
  const at = (t: string) => new Date(t).toLocaleString();
  return (
    `ramp: ${pct}% get ${variant}, the rest ${otherwise} (step ${current} of ${steps.length}` +
    (current > 0 ? `, since ${at(steps[current - 1]!.at)})` : ")") +
    (next ? `; next ${next.percentage}% at ${at(next.at)}` : "; last step reached")
  );
}

/** A number with 4 significant digits, or a dash. */
export function fmt(x: number | null | undefined): string {
  if (x === null || x === undefined || Number.isNaN(x)) return "—";
  if (!Number.isFinite(x)) return x > 0 ? "∞" : "−∞";
  return Number(x.toPrecision(4)).toString();
}
