// A line diff of two texts (before/after of an audit entry, mine/theirs of a
// conflict): removed lines marked "-", added "+", the rest as context.
// JSON is pretty-printed with sorted keys first, so only real changes show.

/** One line of a diff. */
export interface DiffLine {
  op: " " | "-" | "+";
  text: string;
}

/** `value` as indented JSON with object keys sorted. */
export function prettyJson(value: unknown): string {
  return JSON.stringify(sortKeys(value), null, 2) ?? "";
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v && typeof v === "object") {
    return Object.fromEntries(
      Object.keys(v as object)
        .sort()
        .map((k) => [k, sortKeys((v as Record<string, unknown>)[k])]),
    );
  }
  return v;
}

/** The line diff of `a` and `b` (longest common subsequence). */
export function diffLines(a: string, b: string): DiffLine[] {
  const x = a ? a.split("\n") : [];
  const y = b ? b.split("\n") : [];
  const n = x.length;
  const m = y.length;
  // lcs[i][j]: common lines of x[i..] and y[j..].
  const lcs: number[][] = Array.from({ length: n + 1 }, () => new Array<number>(m + 1).fill(0));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      lcs[i]![j] = x[i] === y[j] ? lcs[i + 1]![j + 1]! + 1 : Math.max(lcs[i + 1]![j]!, lcs[i]![j + 1]!);
    }
  }
  const out: DiffLine[] = [];
  let i = 0;
  let j = 0;
  while (i < n && j < m) {
    if (x[i] === y[j]) {
      out.push({ op: " ", text: x[i]! });
      i++;
      j++;
    } else if (lcs[i + 1]![j]! >= lcs[i]![j + 1]!) {
      out.push({ op: "-", text: x[i++]! });
    } else {
      out.push({ op: "+", text: y[j++]! });
    }
  }
  while (i < n) out.push({ op: "-", text: x[i++]! });
  while (j < m) out.push({ op: "+", text: y[j++]! });
  return out;
}

/** A diff with runs of unchanged lines farther than `context` from a change folded. */
export function hunks(lines: DiffLine[], context = 3): (DiffLine | { skipped: number })[] {
  const near = lines.map(() => false);
  lines.forEach((l, i) => {
    if (l.op === " ") return;
    for (let j = Math.max(0, i - context); j <= Math.min(lines.length - 1, i + context); j++) near[j] = true;
  });
  const out: (DiffLine | { skipped: number })[] = [];
  for (let i = 0; i < lines.length; ) {
    if (near[i] || lines.length <= 2 * context + 1) {
      out.push(lines[i++]!);
      continue;
    }
    let j = i;
    while (j < lines.length && !near[j]) j++;
    if (j - i === 1) out.push(lines[i]!);
    else out.push({ skipped: j - i });
    i = j;
  }
  return out;
}

/**
 * The diff of `before` and `after`, with the counts of lines added and
 * removed in its caption; unchanged stretches are folded.
 */
export function Diff({ before, after, label }: { before: string; after: string; label: string }) {
  const lines = diffLines(before, after);
  const added = lines.filter((l) => l.op === "+").length;
  const removed = lines.filter((l) => l.op === "-").length;
  return (
    <figure class="diff">
      <figcaption>
        {label}: <span class="added">+{added}</span> <span class="removed">−{removed}</span>
      </figcaption>
      <pre tabIndex={0} aria-label={`${label}, ${added} lines added, ${removed} removed`}>
        {hunks(lines).map((l, k) =>
          "skipped" in l ? (
            <span key={k} class="fold">
              {`  ⋯ ${l.skipped} unchanged line${l.skipped === 1 ? "" : "s"}\n`}
            </span>
          ) : (
            <span key={k} class={l.op === "+" ? "add" : l.op === "-" ? "del" : "ctx"}>
              {l.op === " " ? "  " : `${l.op} `}
              {l.text}
              {"\n"}
            </span>
          ),
        )}
      </pre>
    </figure>
  );
}
