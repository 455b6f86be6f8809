// A before/after view of two JSON values: both pretty-printed with sorted
// keys, compared line by line (longest common subsequence), shown as a
// unified diff with "-"/"+" markers (not colour alone) and the unchanged
// stretches folded to a few lines of context. `before` null/undefined: a
// creation (all added); `after` null/undefined: a deletion (all removed).
import { useMemo, useState } from "preact/hooks";
import "./JsonDiff.css";
import { diffLines, fold, pretty } from "./lineDiff";

export function JsonDiff({
  before,
  after,
  beforeLabel = "before",
  afterLabel = "after",
}: {
  before: unknown;
  after: unknown;
  beforeLabel?: string;
  afterLabel?: string;
}) {
  const [all, setAll] = useState(false);
  const lines = useMemo(() => diffLines(pretty(before), pretty(after)), [before, after]);
  const changed = lines.filter((l) => l.kind !== " ").length;
  const shown = all ? lines.map((l) => ({ line: l })) : fold(lines);
  const folded = shown.some((s) => "skipped" in s);
  return (
    <div class="json-diff">
      <p class="json-diff-legend small">
        <span class="del-mark" aria-hidden="true">−</span> {beforeLabel} · <span class="add-mark" aria-hidden="true">+</span>{" "}
        {afterLabel} · {changed === 0 ? "no difference" : `${changed} line${changed === 1 ? "" : "s"} changed`}
        {(folded || all) && (
          <>
            {" "}
            ·{" "}
            <button type="button" class="link" onClick={() => setAll(!all)}>
              {all ? "fold unchanged lines" : "show all lines"}
            </button>
          </>
        )}
      </p>
      <pre class="json-diff-body" aria-label={`Changes from ${beforeLabel} to ${afterLabel}`} tabIndex={0}>
        {shown.map((s, i) =>
          "skipped" in s ? (
            <span key={i} class="skip-line">
              {`  … ${s.skipped} unchanged line${s.skipped === 1 ? "" : "s"}\n`}
            </span>
          ) : (
            <span key={i} class={s.line.kind === "-" ? "del" : s.line.kind === "+" ? "add" : "same"}>
              {s.line.kind === "-" && <span class="sr-only">removed: </span>}
              {s.line.kind === "+" && <span class="sr-only">added: </span>}
              {`${s.line.kind === " " ? " " : s.line.kind === "-" ? "−" : "+"} ${s.line.text}\n`}
            </span>
          ),
        )}
      </pre>
    </div>
  );
}
