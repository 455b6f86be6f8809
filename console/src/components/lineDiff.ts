// Line diffs of texts and JSON values, shared by the diff views
// (JsonDiff.tsx, Diff.tsx): JSON pretty-printed with sorted keys so only real
// changes show; common prefix and suffix trimmed, the longest common
// subsequence in between (bounded: a huge middle is shown as all removed,
// then all added); unchanged stretches folded to a few lines of context.

/** One line of a diff: unchanged, removed or added. */
export type Line = { kind: " " | "-" | "+"; text: string };

/** Lines of context kept around each change. */
const CONTEXT = 3;
/** The shortest run of unchanged lines folded away. */
const MIN_FOLD = 4;
/** Above this many cells the middle is shown as all removed, then all added. */
const MAX_CELLS = 2_000_000;

/** `value` as indented JSON with object keys sorted. */
export function prettyJson(value: unknown): string {
  return JSON.stringify(sortKeys(value), null, 2) ?? "";
}

/** The value as indented JSON lines with sorted keys; none for null/undefined. */
export function pretty(value: unknown): string[] {
  if (value === null || value === undefined) return [];
  return prettyJson(value).split("\n");
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v && typeof v === "object") {
    return Object.fromEntries(
      Object.keys(v as Record<string, unknown>)
        .sort()
        .map((k) => [k, sortKeys((v as Record<string, unknown>)[k])]),
    );
  }
  return v;
}

/** The line diff of `a` to `b`: common prefix and suffix, LCS in between. */
export function diffLines(a: string[], b: string[]): Line[] {
  let start = 0;
  while (start < a.length && start < b.length && a[start] === b[start]) start++;
  let endA = a.length;
  let endB = b.length;
  while (endA > start && endB > start && a[endA - 1] === b[endB - 1]) {
    endA--;
    endB--;
  }
  const head = a.slice(0, start).map((text) => ({ kind: " " as const, text }));
  const tail = a.slice(endA).map((text) => ({ kind: " " as const, text }));
  const ma = a.slice(start, endA);
  const mb = b.slice(start, endB);
  return [...head, ...lcs(ma, mb), ...tail];
}

function lcs(a: string[], b: string[]): Line[] {
  const n = a.length;
  const m = b.length;
  if (n * m > MAX_CELLS) {
    return [...a.map((text) => ({ kind: "-" as const, text })), ...b.map((text) => ({ kind: "+" as const, text }))];
  }
  // len[i][j]: LCS length of a[i..] and b[j..], in one flat array.
  const w = m + 1;
  const len = new Uint32Array((n + 1) * w);
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      len[i * w + j] = a[i] === b[j] ? len[(i + 1) * w + j + 1]! + 1 : Math.max(len[(i + 1) * w + j]!, len[i * w + j + 1]!);
    }
  }
  const out: Line[] = [];
  let i = 0;
  let j = 0;
  while (i < n && j < m) {
    if (a[i] === b[j]) {
      out.push({ kind: " ", text: a[i]! });
      i++;
      j++;
    } else if (len[(i + 1) * w + j]! >= len[i * w + j + 1]!) {
      out.push({ kind: "-", text: a[i++]! });
    } else {
      out.push({ kind: "+", text: b[j++]! });
    }
  }
  while (i < n) out.push({ kind: "-", text: a[i++]! });
  while (j < m) out.push({ kind: "+", text: b[j++]! });
  return out;
}

/** Keeps `CONTEXT` unchanged lines around each change, counting the rest. */
export function fold(lines: Line[]): ({ line: Line } | { skipped: number })[] {
  const keep = lines.map(() => false);
  lines.forEach((l, i) => {
    if (l.kind === " ") return;
    for (let k = Math.max(0, i - CONTEXT); k <= Math.min(lines.length - 1, i + CONTEXT); k++) keep[k] = true;
  });
  if (!keep.includes(true)) return lines.length <= 2 * CONTEXT ? lines.map((line) => ({ line })) : [{ skipped: lines.length }];
  // A fold must save space: runs shorter than `MIN_FOLD` stay shown.
  for (let i = 0; i < keep.length; ) {
    if (keep[i]) {
      i++;
      continue;
    }
    let j = i;
    while (j < keep.length && !keep[j]) j++;
    if (j - i < MIN_FOLD) keep.fill(true, i, j);
    i = j;
  }
  const out: ({ line: Line } | { skipped: number })[] = [];
  let skipped = 0;
  lines.forEach((line, i) => {
    if (keep[i]) {
      if (skipped) out.push({ skipped });
      skipped = 0;
      out.push({ line });
    } else skipped++;
  });
  if (skipped) out.push({ skipped });
  return out;
}
