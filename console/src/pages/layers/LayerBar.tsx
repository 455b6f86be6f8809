// A layer's bucket space [0, 100) as a bar: each flag's slot a coloured
// stretch, free space hatched, and optionally a draft slot outlined over it
// (the flag's Settings). The bar is an image whose label says the same in
// words; the pages put the details in text next to it.
import { freeRanges, overlapping, rangeText, round, type Holder, type Slot } from "./slots";
import "./layers.css";

const left = (start: number) => `${round(start)}%`;
const width = (start: number, end: number) => `${round(end - start)}%`;

export function LayerBar({
  layer,
  holders,
  draft,
  draftLabel = "this flag",
  highlight,
}: {
  layer: string;
  /** The flags holding slots in this layer. */
  holders: Holder[];
  /** A slot being edited (drawn outlined, over the others). */
  draft?: Slot | null;
  draftLabel?: string;
  /** A flag to emphasise. */
  highlight?: string;
}) {
  const sorted = [...holders].sort((a, b) => a.slot.start - b.slot.start || a.flag.localeCompare(b.flag));
  // Free: what neither the other flags nor the draft take.
  const free = freeRanges(draft ? [...holders, { flag: "", slot: draft }] : holders);
  const clash = draft ? overlapping(holders, layer, draft.start, draft.end) : [];
  const words = [
    ...sorted.map((h) => `${h.flag} ${rangeText(h.slot.start, h.slot.end)}`),
    ...free.map(([s, e]) => `free ${rangeText(s, e)}`),
  ];
  if (draft) words.push(`${draftLabel}: ${rangeText(draft.start, draft.end)}${clash.length ? `, overlapping ${clash.map((h) => h.flag).join(", ")}` : ""}`);
  const label = `Layer ${layer}: ${words.length ? words.join("; ") : "empty"}`;
  return (
    <div class="layer-bar">
      <div class="bar" role="img" aria-label={label}>
        {free.map(([s, e]) => (
          <span key={`free-${s}`} class="slot free" style={{ left: left(s), width: width(s, e) }} title={`free ${rangeText(s, e)}`}>
            <span class="slot-label">free</span>
          </span>
        ))}
        {sorted.map((h, i) => (
          <span
            key={h.flag}
            class={`slot held slot-${i % 6}${h.flag === highlight ? " mine" : ""}${clash.includes(h) ? " clash" : ""}${h.slot.end >= 100 ? " at-end" : ""}`}
            style={{ left: left(h.slot.start), width: width(h.slot.start, h.slot.end) }}
            title={`${h.flag} ${rangeText(h.slot.start, h.slot.end)}`}
          >
            <span class="slot-label">{h.flag}</span>
          </span>
        ))}
        {draft && (
          <span
            class={`slot draft${clash.length ? " clash" : ""}`}
            style={{ left: left(draft.start), width: width(draft.start, draft.end) }}
            title={`${draftLabel} ${rangeText(draft.start, draft.end)}`}
          >
            <span class="slot-label">{draftLabel}</span>
          </span>
        )}
      </div>
      <div class="scale" aria-hidden="true">
        <span>0</span>
        <span>25</span>
        <span>50</span>
        <span>75</span>
        <span>100 %</span>
      </div>
    </div>
  );
}
