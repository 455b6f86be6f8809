// The targeting editor of a flag in one environment: rules (condition in the
// rule language, validated as you type by the WASM engine, and what to
// serve), the fallthrough and prerequisites; saved with If-Match. A 202
// links the change request it opened, a 412 compares yours with theirs, a
// 422 puts each problem next to its field.
import { useLayoutEffect, useRef, useState } from "preact/hooks";
import { api, asApiError, withEtag, type ApiError, type Schema } from "../../api";
import { Diff, prettyJson } from "../../components/Diff";
import { ErrorNote } from "../../components/ErrorNote";
import { bareMessage, RuleEditor } from "../../components/RuleEditor";
import { projectPath } from "../../scope";
import { at, fromApi, fromDraft, nextUid, type Config, type Draft, type FieldProblem, type Prerequisite, type RuleDraft } from "./model";
import { ServeEditor } from "./ServeEditor";

/** Another flag of the environment, for prerequisites. */
export interface OtherFlag {
  key: string;
  variants: string[];
}

export interface TargetingProps {
  org: string;
  project: string;
  flag: string;
  env: string;
  envName: string;
  approvals: number;
  mayWrite: boolean;
  variants: string[];
  /** Served when off; a new rule serves another variant first. */
  offVariant: string;
  otherFlags: OtherFlag[];
  base: Config;
  etag: string;
  draft: Draft;
  isDirty: boolean;
  /** The engine's problems of the draft (fields relative to the flag). */
  problems: FieldProblem[];
  /** Why the draft snapshot did not load at all, if it did not. */
  loadError?: string;
  checking: boolean;
  /** Whether the engine has checked the draft once (`data-ready`, for the benchmark). */
  engineLoaded: boolean;
  onDraft: (d: Draft) => void;
  onDiscard: () => void;
  onSaved: (config: Schema<"FlagConfig">, etag: string) => void;
  onReload: () => Promise<void>;
}

type Stale = { theirs: Config; etag: string };

function configOf(c: Schema<"FlagConfig">): Config {
  return {
    enabled: c.enabled,
    rules: (c.rules ?? []) as unknown as Config["rules"],
    fallthrough: c.fallthrough as unknown as Config["fallthrough"],
    prerequisites: (c.prerequisites ?? []) as unknown as Prerequisite[],
  };
}
export { configOf };

function freshRuleId(rules: RuleDraft[]): string {
  for (let n = rules.length + 1; ; n++) {
    const id = `rule-${n}`;
    if (!rules.some((r) => r.id === id)) return id;
  }
}

export function Targeting(p: TargetingProps) {
  const { org, project, flag, env, draft, variants } = p;
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError>();
  const [serverProblems, setServerProblems] = useState<{ for: string; problems: FieldProblem[] }>();
  const [stale, setStale] = useState<Stale>();
  const [opened, setOpened] = useState<number>();
  const [saved, setSaved] = useState(false);
  const focusNext = useRef<string | undefined>(undefined);

  const draftText = JSON.stringify(fromDraft(draft, p.base.enabled));
  // A 422's problems belong to the draft that was sent; an edit retires them.
  const fromServer = serverProblems?.for === draftText ? serverProblems.problems : [];
  // The origin's copy of a problem the engine here found too is shown once.
  const same = (a: FieldProblem, b: FieldProblem) => a.field === b.field && bareMessage(a.message) === bareMessage(b.message);
  const problems = [...p.problems, ...fromServer.filter((q) => !p.problems.some((e) => same(e, q)))];

  useLayoutEffect(() => {
    if (!focusNext.current) return;
    // A rule moved to an end: its button that way is disabled, the other one takes the focus.
    const el = document.getElementById(focusNext.current) as HTMLButtonElement | null;
    const other = focusNext.current.replace(/-(up|down)$/, (_, d: string) => (d === "up" ? "-down" : "-up"));
    (el?.disabled ? document.getElementById(other) : el)?.focus();
    focusNext.current = undefined;
  });

  const setRules = (rules: RuleDraft[]) => {
    setSaved(false);
    p.onDraft({ ...draft, rules });
  };
  const setRule = (i: number, r: Partial<RuleDraft>) => setRules(draft.rules.map((x, j) => (j === i ? { ...x, ...r } : x)));
  const move = (i: number, by: number, button: string) => {
    const rules = [...draft.rules];
    const [r] = rules.splice(i, 1);
    rules.splice(i + by, 0, r!);
    focusNext.current = `rule-${r!.uid}-${button}`;
    setRules(rules);
  };
  const addRule = () => {
    const uid = nextUid();
    focusNext.current = `rule-${uid}-condition`;
    setRules([...draft.rules, { uid, id: freshRuleId(draft.rules), condition: "", serve: { variant: variants.find((v) => v !== p.offVariant) ?? variants[0] ?? "" } }]);
  };
  const setPrereqs = (prerequisites: Prerequisite[]) => {
    setSaved(false);
    p.onDraft({ ...draft, prerequisites });
  };

  const save = async (etag: string) => {
    setBusy(true);
    setError(undefined);
    setOpened(undefined);
    const body = fromDraft(draft, p.base.enabled);
    try {
      const r = await api.PUT("/api/v1/orgs/{org}/projects/{project}/flags/{flag}/environments/{env}", {
        params: { path: { org, project, flag, env }, header: { "If-Match": etag } },
        body: body as unknown as Schema<"ConfigSpec">,
      });
      if (r.response.status === 202) {
        const cr = r.data as unknown as Schema<"ChangeRequest">;
        setOpened(cr.id);
        setStale(undefined);
        // The change request holds the change now.
        p.onDiscard();
        return;
      }
      const { data, etag: next } = withEtag(r);
      setStale(undefined);
      setSaved(true);
      p.onSaved(data as Schema<"FlagConfig">, next);
    } catch (e) {
      const err = asApiError(e);
      setError(err);
      if (err.status === 422) {
        const mine = err.problems.filter((q) => !q.location?.entity || (q.location.entity.kind === "flag" && q.location.entity.key === flag));
        setServerProblems({ for: JSON.stringify(body), problems: mine.map(fromApi) });
      }
      if (err.stale) {
        const theirs = await api.GET("/api/v1/orgs/{org}/projects/{project}/flags/{flag}/environments/{env}", {
          params: { path: { org, project, flag, env } },
        });
        if (theirs.data) setStale({ theirs: configOf(theirs.data), etag: theirs.response.headers.get("ETag") ?? "" });
      }
    } finally {
      setBusy(false);
    }
  };

  const ruleProblems = (i: number) => at(problems, `rules[${i}]`);
  const placed = (q: FieldProblem) => /^(rules\[\d+\]|fallthrough|prerequisites)/.test(q.field);
  const general = problems.filter((q) => !placed(q));
  const invalid = problems.length > 0 || !!p.loadError;

  return (
    <div class="targeting" data-ready={!p.checking && p.engineLoaded}>
      <div class="save-bar" role="region" aria-label="Save">
        <span class={`state ${p.isDirty ? "dirty" : ""}`} aria-live="polite">
          {p.isDirty ? "Unsaved changes" : saved ? "Saved" : "No changes"}
          {p.checking && p.isDirty ? <span class="muted"> · checking…</span> : invalid ? <span class="bad"> · {problems.length || 1} problem{problems.length === 1 ? "" : "s"}</span> : p.isDirty ? <span class="ok"> · valid</span> : null}
        </span>
        <span class="spacer" />
        {p.isDirty && (
          <button type="button" onClick={() => { setStale(undefined); setError(undefined); p.onDiscard(); }}>
            Discard
          </button>
        )}
        {p.mayWrite && (
          <button type="button" class="primary" disabled={busy || !p.isDirty} onClick={() => void save(p.etag)}>
            {p.approvals > 0 ? "Request approval" : `Save to ${p.envName}`}
          </button>
        )}
      </div>
      {opened !== undefined && (
        <p class="note ok" role="status">
          {p.envName} needs approval: your change is{" "}
          <a href={projectPath(org, project, `/changes/${encodeURIComponent(env)}/${opened}`)}>change request #{opened}</a>.
        </p>
      )}
      {stale && (
        <div class="note error stale" role="alert">
          <p>
            <strong>Changed by someone else — reload or compare.</strong> {p.envName}'s configuration changed since you opened it.
          </p>
          <Diff label="Theirs → yours" before={prettyJson(stale.theirs)} after={prettyJson(fromDraft(draft, stale.theirs.enabled))} />
          <div class="row">
            <button
              type="button"
              onClick={async () => {
                await p.onReload();
                setStale(undefined);
                setError(undefined);
                p.onDiscard();
              }}
            >
              Reload theirs (discard yours)
            </button>
            <button type="button" class="danger" disabled={busy} onClick={() => void save(stale.etag)}>
              Save yours over theirs
            </button>
          </div>
        </div>
      )}
      {error && !error.stale && error.status !== 422 && <ErrorNote error={error} />}
      {error?.status === 422 && serverProblems?.for === draftText && (
        <p class="note error" role="alert">
          The origin refused the configuration: the problems are shown next to their fields.
        </p>
      )}
      {p.loadError && (
        <p class="note error" role="alert">
          The draft cannot be checked: {p.loadError}
        </p>
      )}
      {general.length > 0 && (
        <ul class="field-problems">
          {general.map((q, i) => (
            <li key={i}>
              <code>{q.field}</code> {q.message}
            </li>
          ))}
        </ul>
      )}

      <h2 id="rules-heading">Rules</h2>
      <p class="muted small">Tried in order; the first whose condition holds serves. Conditions use the rule language (docs/rules.md).</p>
      {draft.rules.length === 0 && <p class="muted">No rules: everybody gets the fallthrough.</p>}
      <ol class="rules" aria-labelledby="rules-heading">
        {draft.rules.map((r, i) => {
          const cond = at(problems, `rules[${i}].condition`);
          const other = ruleProblems(i).filter((q) => !cond.includes(q));
          const n = i + 1;
          return (
            <li key={r.uid} class="rule">
              <div class="rule-head">
                <h3>Rule {n}</h3>
                <label class="inline-field" for={`rule-${r.uid}-id`}>
                  <span>ID</span>
                  <input id={`rule-${r.uid}-id`} class="rule-id" value={r.id ?? ""} onInput={(e) => setRule(i, { id: e.currentTarget.value })} />
                </label>
                <span class="spacer" />
                <button type="button" id={`rule-${r.uid}-up`} disabled={i === 0} aria-label={`Move rule ${n} up`} onClick={() => move(i, -1, "up")}>
                  ↑
                </button>
                <button type="button" id={`rule-${r.uid}-down`} disabled={i === draft.rules.length - 1} aria-label={`Move rule ${n} down`} onClick={() => move(i, 1, "down")}>
                  ↓
                </button>
                <button type="button" aria-label={`Remove rule ${n}`} onClick={() => setRules(draft.rules.filter((_, j) => j !== i))}>
                  Remove
                </button>
              </div>
              <p class="field-label" aria-hidden="true">
                Condition
              </p>
              <RuleEditor
                id={`rule-${r.uid}-condition`}
                label={`Rule ${n} condition`}
                value={r.condition}
                problems={cond}
                onChange={(condition) => setRule(i, { condition })}
              />
              <ServeEditor
                id={`rule-${r.uid}-serve`}
                legend={`Rule ${n} serves`}
                serve={r.serve}
                variants={variants}
                problems={other}
                onChange={(serve) => setRule(i, { serve })}
              />
            </li>
          );
        })}
      </ol>
      <button type="button" onClick={addRule}>
        Add a rule
      </button>

      <h2>Fallthrough</h2>
      <ServeEditor
        id="fallthrough"
        legend="When no rule matches, serve"
        serve={draft.fallthrough}
        variants={variants}
        problems={at(problems, "fallthrough")}
        onChange={(fallthrough) => {
          setSaved(false);
          p.onDraft({ ...draft, fallthrough });
        }}
      />

      <h2>Prerequisites</h2>
      <p class="muted small">Flags that must serve a variant first; otherwise this flag serves its off variant.</p>
      {draft.prerequisites.map((q, i) => {
        const other = p.otherFlags.find((f) => f.key === q.flag);
        return (
          <div class="row" key={i}>
            <label class="inline-field" for={`prereq-${i}-flag`}>
              <span>Flag</span>
              <select id={`prereq-${i}-flag`} value={q.flag} onChange={(e) => {
                const f = p.otherFlags.find((x) => x.key === e.currentTarget.value);
                setPrereqs(draft.prerequisites.map((x, j) => (j === i ? { flag: e.currentTarget.value, variant: f?.variants[0] ?? "" } : x)));
              }}>
                {!other && <option value={q.flag}>{q.flag}</option>}
                {p.otherFlags.map((f) => (
                  <option key={f.key} value={f.key}>
                    {f.key}
                  </option>
                ))}
              </select>
            </label>
            <label class="inline-field" for={`prereq-${i}-variant`}>
              <span>serves</span>
              <select id={`prereq-${i}-variant`} value={q.variant} onChange={(e) => setPrereqs(draft.prerequisites.map((x, j) => (j === i ? { ...x, variant: e.currentTarget.value } : x)))}>
                {!(other?.variants ?? []).includes(q.variant) && <option value={q.variant}>{q.variant}</option>}
                {(other?.variants ?? []).map((v) => (
                  <option key={v} value={v}>
                    {v}
                  </option>
                ))}
              </select>
            </label>
            <button type="button" class="link" aria-label={`Remove prerequisite ${q.flag}`} onClick={() => setPrereqs(draft.prerequisites.filter((_, j) => j !== i))}>
              Remove
            </button>
          </div>
        );
      })}
      {at(problems, "prerequisites").length > 0 && (
        <ul class="field-problems">
          {at(problems, "prerequisites").map((q, i) => (
            <li key={i}>
              <code>{q.field}</code> {q.message}
            </li>
          ))}
        </ul>
      )}
      {p.otherFlags.length > 0 ? (
        <button
          type="button"
          class="link"
          onClick={() => {
            const f = p.otherFlags.find((x) => !draft.prerequisites.some((q) => q.flag === x.key)) ?? p.otherFlags[0]!;
            setPrereqs([...draft.prerequisites, { flag: f.key, variant: f.variants[0] ?? "" }]);
          }}
        >
          Add a prerequisite
        </button>
      ) : (
        <p class="muted small">No other flags to depend on.</p>
      )}
    </div>
  );
}
