// Layer slots as the console reasons about them: the engine's range rule
// (core/src/compile.rs: 0 ≤ start < end ≤ 100, percent, at most three
// decimals), overlaps and free space, and the project's slots read from the
// flag list (one request per 500 flags, never one per flag).
import { api, must, type Schema } from "../../api";

/** A mutual-exclusion layer as the engine sees it (docs/flags.md#layers). */
export interface Layer {
  key: string;
  salt?: string | null;
  bucketBy?: string | null;
}

/** A flag's share `[start, end)` (percent) of a layer. */
export interface Slot {
  key: string;
  start: number;
  end: number;
}

/** A flag holding a slot. */
export interface Holder {
  flag: string;
  slot: Slot;
}

/** The layer of a stored layer record. */
export const layerOf = (r: Schema<"LayerRecord">) => r.layer as unknown as Layer;

/** The slot of a stored flag, if it has one. */
export const slotOf = (f: { layer?: unknown }) => (f.layer ? (f.layer as Slot) : null);

/** The buckets per percent: a percent has three decimals (core/src/bucket.rs). */
const PER_PERCENT = 1000;

/** A percent as the engine takes it, in thousandths, or why not. */
export function percentProblem(text: string): string | null {
  const t = text.trim();
  if (t === "") return "a number from 0 to 100 is needed";
  const n = Number(t);
  if (!Number.isFinite(n)) return `"${t}" is not a number`;
  if (n < 0 || n > 100) return "must be from 0 to 100";
  const scaled = n * PER_PERCENT;
  if (Math.abs(scaled - Math.round(scaled)) > 1e-6) return "at most three decimals";
  return null;
}

/** The problems of a range being typed, by field: `start`, `end` (`end` also for start ≥ end). */
export function rangeProblems(start: string, end: string): { start: string | null; end: string | null } {
  const s = percentProblem(start);
  const e = percentProblem(end);
  if (!s && !e && Number(start) >= Number(end)) return { start: null, end: "must be greater than the start" };
  return { start: s, end: e };
}

/** The holders whose slot overlaps `[start, end)` in `layer`, but `flag`. */
export function overlapping(holders: Holder[], layer: string, start: number, end: number, flag?: string): Holder[] {
  return holders.filter((h) => h.flag !== flag && h.slot.key === layer && h.slot.start < end && start < h.slot.end);
}

/** The parts of `[0, 100)` no holder of the layer covers, in order. */
export function freeRanges(holders: Holder[]): [number, number][] {
  const sorted = [...holders].sort((a, b) => a.slot.start - b.slot.start);
  const free: [number, number][] = [];
  let at = 0;
  for (const h of sorted) {
    if (h.slot.start > at) free.push([at, h.slot.start]);
    at = Math.max(at, h.slot.end);
  }
  if (at < 100) free.push([at, 100]);
  return free;
}

/** The share of `[0, 100)` the holders cover, in percent (overlaps counted once). */
export function usedPercent(holders: Holder[]): number {
  return round(100 - freeRanges(holders).reduce((a, [s, e]) => a + (e - s), 0));
}

/** A percent to three decimals, without float noise. */
export const round = (n: number) => Math.round(n * PER_PERCENT) / PER_PERCENT;

/** `[start, end)` as people read it: `0–50 %`. */
export const rangeText = (start: number, end: number) => `${round(start)}–${round(end)} %`;

/** Every served flag of the project with a layer slot, in pages of 500. */
export async function loadHolders(org: string, project: string): Promise<Holder[]> {
  const holders: Holder[] = [];
  let after: string | undefined;
  do {
    const page = must(
      await api.GET("/api/v1/orgs/{org}/projects/{project}/flags", {
        params: { path: { org, project }, query: { limit: 500, ...(after ? { after } : {}) } },
      }),
    );
    for (const f of page.items) {
      const slot = slotOf(f);
      if (slot) holders.push({ flag: f.key, slot });
    }
    after = page.next ?? undefined;
  } while (after);
  return holders;
}

/** The layers of the project, by key. */
export async function loadLayers(org: string, project: string) {
  return must(await api.GET("/api/v1/orgs/{org}/projects/{project}/layers", { params: { path: { org, project } } })).items;
}
