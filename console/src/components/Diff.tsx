// A line diff of two texts (before/after of an audit entry, mine/theirs of a
// conflict): removed lines marked "-", added "+", the rest as context.
// JSON is pretty-printed with sorted keys first, so only real changes show
// (lineDiff.ts).
import { diffLines, fold } from "./lineDiff";

export { prettyJson } from "./lineDiff";

/**
 * The diff of `before` and `after`, with the counts of lines added and
 * removed in its caption; unchanged stretches are folded.
 */
export function Diff({ before, after, label }: { before: string; after: string; label: string }) {
  const lines = diffLines(before ? before.split("\n") : [], after ? after.split("\n") : []);
  const added = lines.filter((l) => l.kind === "+").length;
  const removed = lines.filter((l) => l.kind === "-").length;
  return (
    <figure class="diff">
      <figcaption>
        {label}: <span class="added">+{added}</span> <span class="removed">−{removed}</span>
      </figcaption>
      <pre tabIndex={0} aria-label={`${label}, ${added} lines added, ${removed} removed`}>
        {fold(lines).map((s, k) =>
          "skipped" in s ? (
            <span key={k} class="fold">
              {`  ⋯ ${s.skipped} unchanged line${s.skipped === 1 ? "" : "s"}\n`}
            </span>
          ) : (
            <span key={k} class={s.line.kind === "+" ? "add" : s.line.kind === "-" ? "del" : "ctx"}>
              {s.line.kind === " " ? "  " : `${s.line.kind} `}
              {s.line.text}
              {"\n"}
            </span>
          ),
        )}
      </pre>
    </figure>
  );
}
