// "Try it": evaluates the flag for a context, the unsaved draft and the live
// version side by side, with the engine the edge runs (WASM, in the page).
// Simulated edge attributes replace the context's `geo` and `device`, as the
// edge worker does (docs/rules.md, "Attributes the edge adds").
import { useMemo, useState } from "preact/hooks";
import type { EngineInstance } from "../../components/draftEngine";
import type { Evaluation } from "../../engine";

interface Edge {
  country: string;
  region: string;
  city: string;
  type: string;
  os: string;
}

const NO_EDGE: Edge = { country: "", region: "", city: "", type: "", os: "" };

const PRESETS: { name: string; context: Record<string, unknown>; edge: Edge }[] = [
  { name: "Signed-in user in Germany, on a phone", context: { targetingKey: "user-1", email: "ada@example.com", plan: "pro" }, edge: { country: "DE", region: "Bavaria", city: "Munich", type: "mobile", os: "iOS" } },
  { name: "Customer in the US, on a desktop", context: { targetingKey: "user-2", email: "bob@example.org", plan: "free" }, edge: { country: "US", region: "California", city: "San Francisco", type: "desktop", os: "macOS" } },
  { name: "Staff member", context: { targetingKey: "staff-1", email: "eve@bunting.dev", plan: "enterprise" }, edge: { country: "GB", region: "England", city: "London", type: "desktop", os: "Linux" } },
  { name: "Anonymous visitor (no edge attributes)", context: { targetingKey: "anon-7f3a" }, edge: NO_EDGE },
  { name: "Crawler", context: { targetingKey: "bot-1" }, edge: { country: "US", region: "", city: "", type: "bot", os: "" } },
];

/** The context the edge would evaluate: `geo` and `device` replaced when simulated. */
export function withEdge(context: Record<string, unknown>, edge: Edge): Record<string, unknown> {
  const geo = Object.fromEntries(Object.entries({ country: edge.country, region: edge.region, city: edge.city }).filter(([, v]) => v));
  const device = Object.fromEntries(Object.entries({ type: edge.type, os: edge.os }).filter(([, v]) => v));
  const out: Record<string, unknown> = { ...context };
  if (Object.keys(geo).length) out.geo = geo;
  if (Object.keys(device).length) out.device = device;
  return out;
}

function evaluate(engine: EngineInstance | undefined, flag: string, context: unknown): Evaluation | string | undefined {
  if (!engine) return undefined;
  try {
    return engine.evaluate(flag, context, Date.now()) as Evaluation;
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
}

const ROWS: [string, (e: Evaluation) => unknown][] = [
  ["Value", (e) => (e.value === undefined ? "—" : JSON.stringify(e.value))],
  ["Variant", (e) => e.variant ?? "—"],
  ["Reason", (e) => e.reason],
  ["Matching rule", (e) => e.ruleId ?? "—"],
  ["Prerequisite failed", (e) => (e.prerequisiteFailed as string | undefined) ?? "—"],
  ["Error", (e) => (e.errorCode ? `${e.errorCode}${e.errorMessage ? `: ${e.errorMessage}` : ""}` : "—")],
];

export function TryIt({ flag, draft, live, isDirty }: { flag: string; draft?: EngineInstance; live?: EngineInstance; isDirty: boolean }) {
  const [text, setText] = useState(JSON.stringify(PRESETS[0]!.context, null, 2));
  const [edge, setEdge] = useState<Edge>(PRESETS[0]!.edge);
  const [preset, setPreset] = useState("0");
  const parsed = useMemo(() => {
    try {
      const v = JSON.parse(text);
      if (!v || typeof v !== "object" || Array.isArray(v)) return { error: "the context must be a JSON object" };
      return { context: v as Record<string, unknown> };
    } catch (e) {
      return { error: (e as Error).message };
    }
  }, [text]);
  const context = parsed.context && withEdge(parsed.context, edge);
  const d = context && evaluate(draft, flag, context);
  const l = context && evaluate(live, flag, context);
  const setE = (k: keyof Edge, v: string) => {
    setPreset("");
    setEdge({ ...edge, [k]: v });
  };
  const cell = (r: Evaluation | string | undefined, get: (e: Evaluation) => unknown) =>
    r === undefined ? "…" : typeof r === "string" ? r : String(get(r));

  return (
    <div class="try-it">
      <div class="try-inputs">
        <label class="stack" for="try-preset">
          <span>Preset</span>
          <select
            id="try-preset"
            value={preset}
            onChange={(e) => {
              const i = e.currentTarget.value;
              setPreset(i);
              const p = PRESETS[Number(i)];
              if (p) {
                setText(JSON.stringify(p.context, null, 2));
                setEdge(p.edge);
              }
            }}
          >
            {preset === "" && <option value="">custom</option>}
            {PRESETS.map((p, i) => (
              <option key={i} value={String(i)}>
                {p.name}
              </option>
            ))}
          </select>
        </label>
        <label class="stack" for="try-context">
          <span>Context (JSON)</span>
          <textarea
            id="try-context"
            rows={7}
            spellcheck={false}
            aria-invalid={!!parsed.error}
            aria-describedby="try-context-error"
            value={text}
            onInput={(e) => {
              setPreset("");
              setText(e.currentTarget.value);
            }}
          />
        </label>
        <p id="try-context-error" class="field-problems" role="alert">
          {parsed.error ?? ""}
        </p>
        <fieldset class="edge-attrs">
          <legend>Simulated edge attributes (replace the context's geo and device)</legend>
          <div class="edge-grid">
            <label class="stack" for="try-geo-country">
              <span>geo.country</span>
              <input id="try-geo-country" value={edge.country} placeholder="DE" maxLength={2} onInput={(e) => setE("country", e.currentTarget.value.toUpperCase())} />
            </label>
            <label class="stack" for="try-geo-region">
              <span>geo.region</span>
              <input id="try-geo-region" value={edge.region} placeholder="Bavaria" onInput={(e) => setE("region", e.currentTarget.value)} />
            </label>
            <label class="stack" for="try-geo-city">
              <span>geo.city</span>
              <input id="try-geo-city" value={edge.city} placeholder="Munich" onInput={(e) => setE("city", e.currentTarget.value)} />
            </label>
            <label class="stack" for="try-device-type">
              <span>device.type</span>
              <select id="try-device-type" value={edge.type} onChange={(e) => setE("type", e.currentTarget.value)}>
                <option value="">(none)</option>
                {["mobile", "tablet", "desktop", "bot", "unknown"].map((t) => (
                  <option key={t}>{t}</option>
                ))}
              </select>
            </label>
            <label class="stack" for="try-device-os">
              <span>device.os</span>
              <select id="try-device-os" value={edge.os} onChange={(e) => setE("os", e.currentTarget.value)}>
                <option value="">(none)</option>
                {["iOS", "Android", "Windows", "macOS", "Linux", "ChromeOS"].map((t) => (
                  <option key={t}>{t}</option>
                ))}
              </select>
            </label>
          </div>
        </fieldset>
      </div>
      <div class="try-results">
        <div class="table-wrap">
          <table class="compare">
            <caption id="try-caption">
              {flag} for this context{isDirty ? "" : " (the draft has no changes)"}
            </caption>
            <thead>
              <tr>
                <th scope="col">
                  <span class="sr-only">Field</span>
                </th>
                <th scope="col">Draft</th>
                <th scope="col">Live</th>
              </tr>
            </thead>
            <tbody>
              {ROWS.map(([name, get]) => {
                const a = cell(d, get);
                const b = cell(l, get);
                return (
                  <tr key={name} class={a !== b ? "differs" : undefined}>
                    <th scope="row">{name}</th>
                    <td class="mono" data-side="draft" data-field={name}>
                      {a}
                    </td>
                    <td class="mono" data-side="live" data-field={name}>
                      {b}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
        {context && (
          <details>
            <summary>The context evaluated</summary>
            <pre class="context" tabIndex={0}>
              {JSON.stringify(context, null, 2)}
            </pre>
          </details>
        )}
      </div>
    </div>
  );
}
