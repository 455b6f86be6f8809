// What a rule or the fallthrough serves: one variant, a weighted rollout
// (weights summing to 100, the sum shown live) or a schedule (a variant
// ramped up by steps at times, drawn as a timeline).
import { at, serveKind, weightSum, type FieldProblem, type Schedule, type Serve, type WeightedVariant } from "./model";

/** An ISO time as a `datetime-local` input's value (local time). */
export function toLocalInput(iso: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

/** A `datetime-local` value as an RFC 3339 time (UTC). */
export function fromLocalInput(v: string): string {
  const d = new Date(v);
  return Number.isNaN(d.getTime()) ? v : d.toISOString().replace(/\.000Z$/, "Z");
}

/** An even split of 100 over `variants` (three decimals, the rest to the first). */
export function evenSplit(variants: string[]): WeightedVariant[] {
  const each = Math.floor((100 / variants.length) * 1000) / 1000;
  const out = variants.map((variant) => ({ variant, weight: each }));
  if (out[0]) out[0].weight = Math.round((100 - each * (variants.length - 1)) * 1000) / 1000;
  return out;
}

function defaultServe(kind: string, variants: string[], current: Serve): Serve {
  const first = "variant" in current ? current.variant : variants[0] ?? "";
  if (kind === "variant") return { variant: first };
  if (kind === "rollout") return { rollout: evenSplit(variants.length ? variants : [first]) };
  const hour = 3600_000;
  const start = Math.ceil(Date.now() / hour) * hour;
  // Ramps up from what is served now to another variant.
  return {
    schedule: {
      variant: variants.find((v) => v !== first) ?? first,
      otherwise: first,
      steps: [
        { at: new Date(start).toISOString().replace(/\.000Z$/, "Z"), percentage: 10 },
        { at: new Date(start + 24 * hour).toISOString().replace(/\.000Z$/, "Z"), percentage: 50 },
        { at: new Date(start + 72 * hour).toISOString().replace(/\.000Z$/, "Z"), percentage: 100 },
      ],
    },
  };
}

const num = (v: string) => {
  const n = Number(v);
  return v.trim() === "" || !Number.isFinite(n) ? 0 : n;
};

function VariantSelect({ id, label, value, variants, onChange }: { id: string; label: string; value: string; variants: string[]; onChange: (v: string) => void }) {
  const known = variants.includes(value);
  return (
    <label class="inline-field" for={id}>
      <span>{label}</span>
      <select id={id} value={value} onChange={(e) => onChange(e.currentTarget.value)}>
        {!known && <option value={value}>{value || "choose…"}</option>}
        {variants.map((v) => (
          <option key={v} value={v}>
            {v}
          </option>
        ))}
      </select>
    </label>
  );
}

function Rollout({ id, rollout, variants, onChange }: { id: string; rollout: WeightedVariant[]; variants: string[]; onChange: (r: WeightedVariant[]) => void }) {
  const sum = weightSum(rollout);
  const set = (i: number, w: Partial<WeightedVariant>) => onChange(rollout.map((x, j) => (j === i ? { ...x, ...w } : x)));
  return (
    <div class="rollout">
      {rollout.map((w, i) => (
        <div class="row" key={i}>
          <VariantSelect id={`${id}-v${i}`} label={`Arm ${i + 1} variant`} value={w.variant} variants={variants} onChange={(v) => set(i, { variant: v })} />
          <label class="inline-field" for={`${id}-w${i}`}>
            <span>Weight %</span>
            <input
              id={`${id}-w${i}`}
              class="weight"
              type="number"
              inputMode="decimal"
              min={0}
              max={100}
              step="any"
              value={w.weight}
              onInput={(e) => set(i, { weight: num(e.currentTarget.value) })}
            />
          </label>
          {rollout.length > 1 && (
            <button type="button" class="link" aria-label={`Remove arm ${i + 1} (${w.variant})`} onClick={() => onChange(rollout.filter((_, j) => j !== i))}>
              Remove
            </button>
          )}
        </div>
      ))}
      <div class="bar" aria-hidden="true">
        {rollout.map((w, i) => (
          <span key={i} class={`arm arm-${i % 6}`} style={{ width: `${Math.max(0, Math.min(100, w.weight))}%` }} title={`${w.variant}: ${w.weight}%`} />
        ))}
      </div>
      <p class={`sum ${sum === 100 ? "ok" : "bad"}`} aria-live="polite">
        Total {sum}%{sum === 100 ? "" : ` — must be 100% (${sum < 100 ? `${Math.round((100 - sum) * 1000) / 1000} missing` : `${Math.round((sum - 100) * 1000) / 1000} too many`})`}
      </p>
      <div class="row">
        <button type="button" class="link" onClick={() => onChange([...rollout, { variant: variants.find((v) => !rollout.some((w) => w.variant === v)) ?? variants[0] ?? "", weight: 0 }])}>
          Add an arm
        </button>
        <button type="button" class="link" onClick={() => onChange(evenSplit(rollout.map((w) => w.variant)))}>
          Split evenly
        </button>
      </div>
    </div>
  );
}

/** A schedule's steps drawn as a staircase over time, with "now". */
export function Timeline({ schedule }: { schedule: Schedule }) {
  const steps = schedule.steps.map((s) => ({ t: new Date(s.at).getTime(), p: s.percentage })).filter((s) => Number.isFinite(s.t));
  if (steps.length === 0) return null;
  const now = Date.now();
  const lo = Math.min(steps[0]!.t, now);
  const hi = Math.max(steps[steps.length - 1]!.t, now);
  const pad = Math.max((hi - lo) * 0.08, 3600_000);
  const x = (t: number) => ((t - lo + pad) / (hi - lo + 2 * pad)) * 400;
  const y = (p: number) => 70 - (Math.max(0, Math.min(100, p)) / 100) * 60;
  let d = `M0,${y(0)}`;
  for (const s of steps) d += ` H${x(s.t).toFixed(1)} V${y(s.p).toFixed(1)}`;
  d += ` H400`;
  const current = [...steps].reverse().find((s) => s.t <= now)?.p ?? 0;
  return (
    <figure class="timeline">
      <svg viewBox="0 0 400 80" preserveAspectRatio="none" aria-hidden="true">
        <line x1="0" x2="400" y1={y(100)} y2={y(100)} class="grid" />
        <line x1="0" x2="400" y1={y(0)} y2={y(0)} class="grid" />
        <path d={d} class="ramp" />
        <line x1={x(now)} x2={x(now)} y1="4" y2="76" class="now" />
      </svg>
      <figcaption>
        <span class="muted">Now {current}% get {schedule.variant}.</span>
        <ol>
          {schedule.steps.map((s, i) => (
            <li key={i}>
              <time dateTime={s.at}>{new Date(s.at).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" })}</time>: {s.percentage}%
            </li>
          ))}
        </ol>
      </figcaption>
    </figure>
  );
}

function ScheduleEditor({ id, schedule, variants, onChange }: { id: string; schedule: Schedule; variants: string[]; onChange: (s: Schedule) => void }) {
  const setStep = (i: number, s: Partial<Schedule["steps"][number]>) => onChange({ ...schedule, steps: schedule.steps.map((x, j) => (j === i ? { ...x, ...s } : x)) });
  return (
    <div class="schedule">
      <div class="row">
        <VariantSelect id={`${id}-sv`} label="Ramp up" value={schedule.variant} variants={variants} onChange={(v) => onChange({ ...schedule, variant: v })} />
        <VariantSelect id={`${id}-so`} label="Otherwise" value={schedule.otherwise} variants={variants} onChange={(v) => onChange({ ...schedule, otherwise: v })} />
      </div>
      {schedule.steps.map((s, i) => (
        <div class="row" key={i}>
          <label class="inline-field" for={`${id}-t${i}`}>
            <span>Step {i + 1} at</span>
            <input id={`${id}-t${i}`} type="datetime-local" value={toLocalInput(s.at)} onChange={(e) => setStep(i, { at: fromLocalInput(e.currentTarget.value) })} />
          </label>
          <label class="inline-field" for={`${id}-p${i}`}>
            <span>%</span>
            <input id={`${id}-p${i}`} class="weight" type="number" min={0} max={100} step="any" value={s.percentage} onInput={(e) => setStep(i, { percentage: num(e.currentTarget.value) })} />
          </label>
          <button type="button" class="link" aria-label={`Remove step ${i + 1}`} onClick={() => onChange({ ...schedule, steps: schedule.steps.filter((_, j) => j !== i) })}>
            Remove
          </button>
        </div>
      ))}
      <button
        type="button"
        class="link"
        onClick={() => {
          const last = schedule.steps[schedule.steps.length - 1];
          const t = last ? new Date(last.at).getTime() + 86400_000 : Date.now() + 3600_000;
          onChange({ ...schedule, steps: [...schedule.steps, { at: new Date(t).toISOString().replace(/\.\d{3}Z$/, "Z"), percentage: 100 }] });
        }}
      >
        Add a step
      </button>
      <Timeline schedule={schedule} />
    </div>
  );
}

/** The serve editor of `field` (`rules[0].serve`, `fallthrough`). */
export function ServeEditor({
  id,
  legend,
  serve,
  variants,
  problems,
  onChange,
}: {
  id: string;
  legend: string;
  serve: Serve;
  variants: string[];
  problems: FieldProblem[];
  onChange: (s: Serve) => void;
}) {
  const kind = serveKind(serve);
  return (
    <fieldset class="serve" aria-describedby={problems.length ? `${id}-problems` : undefined}>
      <legend>{legend}</legend>
      <div class="row">
        <label class="inline-field" for={`${id}-kind`}>
          <span>Serve</span>
          <select id={`${id}-kind`} value={kind} onChange={(e) => onChange(defaultServe(e.currentTarget.value, variants, serve))}>
            <option value="variant">one variant</option>
            <option value="rollout">a rollout</option>
            <option value="schedule">a schedule</option>
          </select>
        </label>
        {"variant" in serve && <VariantSelect id={`${id}-variant`} label="Variant" value={serve.variant} variants={variants} onChange={(v) => onChange({ variant: v })} />}
      </div>
      {"rollout" in serve && <Rollout id={id} rollout={serve.rollout} variants={variants} onChange={(r) => onChange({ rollout: r })} />}
      {"schedule" in serve && <ScheduleEditor id={id} schedule={serve.schedule} variants={variants} onChange={(s) => onChange({ schedule: s })} />}
      {problems.length > 0 && (
        <ul class="field-problems" id={`${id}-problems`}>
          {problems.map((p, i) => (
            <li key={i}>
              {p.field && <code>{p.field}</code>} {p.message}
            </li>
          ))}
        </ul>
      )}
    </fieldset>
  );
}

export { at };
