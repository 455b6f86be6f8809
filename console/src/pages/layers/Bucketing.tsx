// The bucketing part of a flag's definition, edited in its Settings: the
// layer slot (a layer of the project or none, `[start, end)` in percent,
// checked as the engine checks it, and drawn over the layer with the other
// flags' slots, an overlap warned about before saving), the salt and the
// bucketing attribute. The form saves it with the rest of the definition.
import { useMemo } from "preact/hooks";
import type { ApiError, Problem } from "../../api";
import { FieldProblems } from "../../components/ErrorNote";
import { useLoad } from "../../hooks";
import { projectPath } from "../../scope";
import { LayerBar } from "./LayerBar";
import { freeRanges, layerOf, loadHolders, loadLayers, overlapping, rangeProblems, rangeText, round, type Slot } from "./slots";
import "./layers.css";

/** The bucketing fields as typed. */
export interface BucketingDraft {
  /** The layer key, or "" for none. */
  layer: string;
  start: string;
  end: string;
  salt: string;
  bucketBy: string;
}

/** The draft of a flag's stored definition. */
export function toBucketing(r: { salt?: string | null; bucketBy?: string | null; layer?: unknown }): BucketingDraft {
  const slot = (r.layer ?? null) as Slot | null;
  return {
    layer: slot?.key ?? "",
    start: slot ? String(round(slot.start)) : "",
    end: slot ? String(round(slot.end)) : "",
    salt: r.salt ?? "",
    bucketBy: r.bucketBy ?? "",
  };
}

/** The slot a draft gives, when its range is valid. */
export function slotOfDraft(d: BucketingDraft): Slot | null {
  if (!d.layer) return null;
  const p = rangeProblems(d.start, d.end);
  if (p.start || p.end) return null;
  return { key: d.layer, start: Number(d.start), end: Number(d.end) };
}

/** What is wrong with a draft before sending it (the range), one line each. */
export function bucketingProblems(d: BucketingDraft): string[] {
  if (!d.layer) return [];
  const p = rangeProblems(d.start, d.end);
  return [p.start && `layer slot start: ${p.start}`, p.end && `layer slot end: ${p.end}`].filter((x): x is string => !!x);
}

/** The definition's `salt`, `bucketBy` and `layer` of a valid draft. */
export function fromBucketing(d: BucketingDraft) {
  return {
    salt: d.salt.trim() ? d.salt : null,
    bucketBy: d.bucketBy.trim() || null,
    layer: slotOfDraft(d) as Record<string, never> | null,
  };
}

/** The problems of a 422 at `field`, once each, naming another flag they are about. */
function problemsAt(error: ApiError | undefined, field: string, flag: string): Problem[] {
  const seen = new Set<string>();
  return (error?.problemsAt(field) ?? [])
    .map((p) => ({ ...p, message: p.entity && p.entity !== flag ? `flag ${p.entity}: ${p.message}` : p.message }))
    .filter((p) => !seen.has(p.message) && !!seen.add(p.message));
}

export function Bucketing({
  org,
  project,
  flag,
  original,
  value,
  onChange,
  error,
  touched,
}: {
  org: string;
  project: string;
  flag: string;
  /** The draft as stored, to tell what changed. */
  original: BucketingDraft;
  value: BucketingDraft;
  onChange: (d: BucketingDraft) => void;
  /** The last save's error, for its problems next to the fields. */
  error: ApiError | undefined;
  /** Show the range's problems even before the fields were left (after a save was tried). */
  touched: boolean;
}) {
  const layers = useLoad(() => loadLayers(org, project), [org, project]);
  const holders = useLoad(() => loadHolders(org, project), [org, project]);
  const set = (patch: Partial<BucketingDraft>) => onChange({ ...value, ...patch });
  const keys = useMemo(() => {
    const k = (layers.data ?? []).map((r) => layerOf(r).key);
    return value.layer && !k.includes(value.layer) ? [value.layer, ...k] : k;
  }, [layers.data, value.layer]);
  const others = (holders.data ?? []).filter((h) => h.flag !== flag && h.slot.key === value.layer);
  const range = rangeProblems(value.start, value.end);
  const show = touched || value.start !== original.start || value.end !== original.end || value.layer !== original.layer;
  const slot = slotOfDraft(value);
  const clash = slot ? overlapping(others, slot.key, slot.start, slot.end) : [];
  const api = {
    layer: problemsAt(error, "layer", flag).map((p) => p.message),
    salt: problemsAt(error, "salt", flag).map((p) => p.message),
    bucketBy: problemsAt(error, "bucketBy", flag).map((p) => p.message),
  };
  const startProblems = value.layer && show && range.start ? [range.start] : [];
  const endProblems = value.layer && show && range.end ? [range.end] : [];

  const chooseLayer = (key: string) => {
    if (!key || (value.start && value.end)) return set({ layer: key });
    // A first slot: the layer's first free stretch.
    const free = freeRanges((holders.data ?? []).filter((h) => h.flag !== flag && h.slot.key === key))[0];
    set({ layer: key, start: free ? String(round(free[0])) : "0", end: free ? String(round(free[1])) : "100" });
  };

  return (
    <fieldset class="bucketing">
      <legend>Bucketing and layer</legend>
      <label class="stack" for="set-layer">
        <span>Layer</span>
        <select
          id="set-layer"
          value={value.layer}
          disabled={!holders.data && !holders.error}
          aria-describedby="set-layer-hint set-layer-problems"
          aria-invalid={api.layer.length > 0}
          onChange={(e) => chooseLayer(e.currentTarget.value)}
        >
          <option value="">none</option>
          {keys.map((k) => (
            <option key={k} value={k}>
              {k}
            </option>
          ))}
        </select>
      </label>
      <p class="hint" id="set-layer-hint">
        In a <a href={projectPath(org, project, "/layers")}>mutual-exclusion layer</a> the flag owns a slot of the layer's buckets, the same in every environment;
        outside it, its rollouts and schedules serve the off variant.
        {layers.error && ` The layers could not be loaded: ${layers.error.message}`}
      </p>
      {value.layer && (
        <>
          <div class="range">
            <label class="stack" for="set-layer-start">
              <span>Slot start (%)</span>
              <input
                id="set-layer-start"
                type="number"
                inputMode="decimal"
                step="any"
                value={value.start}
                aria-invalid={startProblems.length > 0}
                aria-describedby="set-layer-start-problems"
                onInput={(e) => set({ start: e.currentTarget.value })}
              />
              <FieldProblems id="set-layer-start-problems" problems={startProblems} />
            </label>
            <label class="stack" for="set-layer-end">
              <span>Slot end (%)</span>
              <input
                id="set-layer-end"
                type="number"
                inputMode="decimal"
                step="any"
                value={value.end}
                aria-invalid={endProblems.length > 0}
                aria-describedby="set-layer-end-problems"
                onInput={(e) => set({ end: e.currentTarget.value })}
              />
              <FieldProblems id="set-layer-end-problems" problems={endProblems} />
            </label>
          </div>
          <p class="hint">From 0 to 100 with at most three decimals; the start is in the slot, the end is not.</p>
          {holders.data && <LayerBar layer={value.layer} holders={others} draft={slot} draftLabel={`${flag} (this flag)`} />}
          {holders.error && <p class="muted small">The other flags' slots could not be loaded: {holders.error.message}</p>}
          <div aria-live="polite">
            {clash.length > 0 && slot && (
              <p class="note" id="set-layer-overlap">
                <strong>Overlap:</strong> {rangeText(slot.start, slot.end)} overlaps{" "}
                {clash.map((h, i) => (
                  <span key={h.flag}>
                    {i > 0 && ", "}
                    <span class="mono">{h.flag}</span> ({rangeText(h.slot.start, h.slot.end)})
                  </span>
                ))}{" "}
                in {value.layer}. Flags in one layer must not overlap: the origin refuses it.
                {freeRanges(others).length > 0 && ` Free: ${freeRanges(others).map(([s, e]) => rangeText(s, e)).join(", ")}.`}
              </p>
            )}
          </div>
        </>
      )}
      <FieldProblems id="set-layer-problems" problems={api.layer} />
      <label class="stack" for="set-salt">
        <span>Bucketing salt</span>
        <input
          id="set-salt"
          value={value.salt}
          placeholder={flag}
          aria-invalid={api.salt.length > 0}
          aria-describedby="set-salt-hint set-salt-problems"
          onInput={(e) => set({ salt: e.currentTarget.value })}
        />
      </label>
      <p class="hint" id="set-salt-hint">
        Mixed with the user's key to pick their bucket (default: the flag key). Changing it reshuffles users: everyone in a rollout or experiment may get
        another variant.
      </p>
      <FieldProblems id="set-salt-problems" problems={api.salt} />
      {value.salt !== original.salt && (
        <p class="note" role="status">
          A new salt reshuffles every user of this flag's rollouts and schedules when you save.
        </p>
      )}
      <label class="stack" for="set-bucket-by">
        <span>Bucket by</span>
        <input
          id="set-bucket-by"
          value={value.bucketBy}
          placeholder="targetingKey"
          aria-invalid={api.bucketBy.length > 0}
          aria-describedby="set-bucket-by-hint set-bucket-by-problems"
          onInput={(e) => set({ bucketBy: e.currentTarget.value })}
        />
      </label>
      <p class="hint" id="set-bucket-by-hint">
        The context attribute rollouts and schedules bucket by (default targetingKey), e.g. account.id to keep a whole account together.
      </p>
      <FieldProblems id="set-bucket-by-problems" problems={api.bucketBy} />
    </fieldset>
  );
}
