// The segments of an environment (/orgs/:org/projects/:project/segments?env=…):
// the list, and creating, editing (included and excluded keys, a condition
// in the rule language validated as you type by the WASM engine) and
// deleting them.
import { useMemo, useState } from "preact/hooks";
import { useRoute } from "preact-iso";
import { api, asApiError, fieldOf, must, type ApiError, type Schema } from "../../api";
import { Confirm } from "../../components/Confirm";
import { problemsOf, useDraftEngine, withSegment, type SnapshotDoc } from "../../components/draftEngine";
import { ErrorNote } from "../../components/ErrorNote";
import { RuleEditor } from "../../components/RuleEditor";
import { useLoad, useTitle } from "../../hooks";
import { projectPath, useEnv, useEnvironments } from "../../scope";
import { can, useMe } from "../../session";
import "../flags/flag.css";
import "./segments.css";

type Record_ = Schema<"SegmentRecord">;

/** A segment as the engine sees it (docs/snapshot.md). */
interface Segment {
  key: string;
  included?: string[];
  excluded?: string[];
  condition?: string;
  description?: string;
}

interface Form {
  key: string;
  description: string;
  included: string;
  excluded: string;
  condition: string;
}

const keysOf = (text: string) =>
  text
    .split(/[\n,]/)
    .map((k) => k.trim())
    .filter(Boolean);

function toSegment(f: Form): Segment {
  const s: Segment = { key: f.key.trim() };
  const included = keysOf(f.included);
  const excluded = keysOf(f.excluded);
  if (included.length) s.included = included;
  if (excluded.length) s.excluded = excluded;
  if (f.condition.trim()) s.condition = f.condition;
  if (f.description.trim()) s.description = f.description.trim();
  return s;
}

function toForm(s: Segment | undefined): Form {
  return {
    key: s?.key ?? "",
    description: s?.description ?? "",
    included: (s?.included ?? []).join("\n"),
    excluded: (s?.excluded ?? []).join("\n"),
    condition: s?.condition ?? "",
  };
}

interface Field {
  field: string;
  message: string;
  span?: { line: number; column: number; length: number } | null;
}

function Editor({
  org,
  project,
  env,
  envName,
  editing,
  snapshot,
  onDone,
  onCancel,
}: {
  org: string;
  project: string;
  env: string;
  envName: string;
  editing: Record_ | null;
  snapshot: SnapshotDoc | undefined;
  onDone: (opened?: number) => void;
  onCancel: () => void;
}) {
  const original = editing?.segment as unknown as Segment | undefined;
  const [form, setForm] = useState<Form>(toForm(original));
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError>();
  const [sent, setSent] = useState<string>();
  const segment = useMemo(() => toSegment(form), [form]);
  const doc = useMemo(
    () => (snapshot ? withSegment(snapshot, original?.key ?? null, segment as unknown as Record<string, unknown>) : undefined),
    [snapshot, segment],
  );
  const checked = useDraftEngine(doc);
  const engine: Field[] = problemsOf(checked.problems, "segment", segment.key).map((p) => ({ field: p.location?.field ?? p.path, message: p.message, span: p.span }));
  const server: Field[] =
    error?.status === 422 && sent === JSON.stringify(segment) ? error.problems.map((p) => ({ field: fieldOf(p), message: p.message, span: p.location?.span })) : [];
  const problems = [...engine, ...server];
  const at = (f: string) => problems.filter((p) => p.field === f || p.field.startsWith(`${f}[`) || p.field.startsWith(`${f}.`));
  const other = problems.filter((p) => !["key", "condition", "included", "excluded", "description"].some((f) => p.field === f || p.field.startsWith(`${f}[`)));
  const set = (k: keyof Form, v: string) => setForm({ ...form, [k]: v });

  const save = async () => {
    setBusy(true);
    setError(undefined);
    setSent(JSON.stringify(segment));
    try {
      const r = editing
        ? await api.PUT("/api/v1/orgs/{org}/projects/{project}/environments/{env}/segments/{segment}", {
            params: { path: { org, project, env, segment: original!.key }, header: { "If-Match": `"${editing.version}"` } },
            body: segment as unknown as Record<string, never>,
          })
        : await api.POST("/api/v1/orgs/{org}/projects/{project}/environments/{env}/segments", {
            params: { path: { org, project, env } },
            body: segment as unknown as Record<string, never>,
          });
      const data = must(r);
      onDone(r.response.status === 202 ? (data as unknown as Schema<"ChangeRequest">).id : undefined);
    } catch (e) {
      setError(asApiError(e));
    } finally {
      setBusy(false);
    }
  };

  const list = (f: Field[], id: string) =>
    f.length > 0 && (
      <ul class="field-problems" id={id}>
        {f.map((p, i) => (
          <li key={i}>{p.message}</li>
        ))}
      </ul>
    );

  return (
    <section class="segment-editor" aria-labelledby="segment-editor-heading">
      <h2 id="segment-editor-heading">{editing ? `Edit ${original!.key}` : "New segment"} in {envName}</h2>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          void save();
        }}
      >
        <label class="stack" for="seg-key">
          <span>Key</span>
          <input
            id="seg-key"
            required
            readOnly={!!editing}
            value={form.key}
            pattern="[A-Za-z0-9._\-]+"
            aria-describedby="seg-key-problems"
            aria-invalid={at("key").length > 0}
            onInput={(e) => set("key", e.currentTarget.value)}
          />
          {list(at("key"), "seg-key-problems")}
        </label>
        <label class="stack" for="seg-description">
          <span>Description</span>
          <input id="seg-description" value={form.description} onInput={(e) => set("description", e.currentTarget.value)} />
        </label>
        <div class="seg-keys">
          <label class="stack" for="seg-included">
            <span>Always included (targeting keys, one per line)</span>
            <textarea id="seg-included" rows={4} value={form.included} aria-describedby="seg-included-problems" onInput={(e) => set("included", e.currentTarget.value)} />
            {list(at("included"), "seg-included-problems")}
          </label>
          <label class="stack" for="seg-excluded">
            <span>Always excluded (wins over everything)</span>
            <textarea id="seg-excluded" rows={4} value={form.excluded} aria-describedby="seg-excluded-problems" onInput={(e) => set("excluded", e.currentTarget.value)} />
            {list(at("excluded"), "seg-excluded-problems")}
          </label>
        </div>
        <p class="field-label" aria-hidden="true">
          Condition (optional; may not use segment(…))
        </p>
        <RuleEditor
          id="seg-condition"
          label="Segment condition"
          value={form.condition}
          placeholder='email ends_with "@example.com"'
          problems={at("condition")}
          onChange={(v) => setForm((f) => ({ ...f, condition: v }))}
        />
        {list(other, "seg-other-problems")}
        {checked.error && (
          <p class="note error" role="alert">
            The draft cannot be checked: {checked.error}
          </p>
        )}
        {error && error.status !== 422 && <ErrorNote error={error} />}
        <div class="actions">
          <button type="button" onClick={onCancel}>
            Cancel
          </button>
          <button type="submit" class="primary" disabled={busy}>
            {editing ? "Save segment" : "Create segment"}
          </button>
        </div>
      </form>
    </section>
  );
}

export default function Segments() {
  const { params } = useRoute();
  const org = params.org!;
  const project = params.project!;
  useTitle(`Segments · ${project}`);
  const me = useMe();
  const envs = useEnvironments(org, project);
  const [env, setEnv] = useEnv(org, project, envs.data);
  const envName = envs.data?.find((e) => e.key === env)?.name ?? env ?? "";
  const segments = useLoad(
    async () => (env ? must(await api.GET("/api/v1/orgs/{org}/projects/{project}/environments/{env}/segments", { params: { path: { org, project, env } } })).items : []),
    [org, project, env],
  );
  const snapshot = useLoad(
    async () =>
      env ? (must(await api.GET("/api/v1/orgs/{org}/projects/{project}/environments/{env}/snapshot", { params: { path: { org, project, env } } })) as SnapshotDoc) : undefined,
    [org, project, env],
  );
  const [editing, setEditing] = useState<Record_ | null | undefined>(undefined);
  const [deleting, setDeleting] = useState<Record_>();
  const [opened, setOpened] = useState<number>();
  const [deleteError, setDeleteError] = useState<ApiError>();
  const mayWrite = !!env && can(me, "flags.write", org, project, env);

  const done = (cr?: number) => {
    setEditing(undefined);
    setOpened(cr);
    void segments.reload();
    void snapshot.reload();
  };
  const remove = async (r: Record_) => {
    setDeleteError(undefined);
    try {
      const a = await api.DELETE("/api/v1/orgs/{org}/projects/{project}/environments/{env}/segments/{segment}", {
        params: { path: { org, project, env: env!, segment: (r.segment as unknown as Segment).key }, header: { "If-Match": `"${r.version}"` } },
      });
      must(a);
      done(a.response.status === 202 ? (a.data as unknown as Schema<"ChangeRequest">).id : undefined);
    } catch (e) {
      setDeleteError(asApiError(e));
    } finally {
      setDeleting(undefined);
    }
  };

  return (
    <section class="segments-page">
      <div class="heading">
        <h1>Segments</h1>
        <div class="row">
          <label class="inline-field" for="seg-env">
            <span>Environment</span>
            <select id="seg-env" value={env} onChange={(e) => { setEditing(undefined); setEnv(e.currentTarget.value); }}>
              {(envs.data ?? []).map((e) => (
                <option key={e.key} value={e.key}>
                  {e.name}
                </option>
              ))}
            </select>
          </label>
          {mayWrite && editing === undefined && (
            <button type="button" class="primary" onClick={() => setEditing(null)}>
              New segment
            </button>
          )}
        </div>
      </div>
      <p class="muted small">
        A context is in a segment when its targetingKey is included, or the condition holds — unless the key is excluded. Rules use them as{" "}
        <code>segment("key")</code>.
      </p>
      {opened !== undefined && env && (
        <p class="note ok" role="status">
          {envName} needs approval: the change is{" "}
          <a href={projectPath(org, project, `/changes/${encodeURIComponent(env)}/${opened}`)}>change request #{opened}</a>.
        </p>
      )}
      <ErrorNote error={deleteError} onReload={() => void segments.reload()} />
      {editing !== undefined && env && (
        <Editor
          key={`${env}/${editing?.id ?? "new"}`}
          org={org}
          project={project}
          env={env}
          envName={envName}
          editing={editing}
          snapshot={snapshot.data}
          onDone={done}
          onCancel={() => setEditing(undefined)}
        />
      )}
      {segments.error && <ErrorNote error={segments.error} onReload={() => void segments.reload()} />}
      {!segments.data ? (
        <p aria-busy="true">Loading…</p>
      ) : segments.data.length === 0 ? (
        <p class="muted">No segments in {envName} yet.</p>
      ) : (
        <div class="table-wrap">
          <table class="segments">
            <caption class="sr-only">Segments of {envName}</caption>
            <thead>
              <tr>
                <th scope="col">Key</th>
                <th scope="col">Condition</th>
                <th scope="col" class="num">
                  Included
                </th>
                <th scope="col" class="num">
                  Excluded
                </th>
                <th scope="col">
                  <span class="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {segments.data.map((r) => {
                const s = r.segment as unknown as Segment;
                return (
                  <tr key={r.id}>
                    <th scope="row">
                      <span class="mono">{s.key}</span>
                      {s.description && <div class="muted small">{s.description}</div>}
                    </th>
                    <td>{s.condition ? <code class="condition">{s.condition}</code> : <span class="muted">—</span>}</td>
                    <td class="num">{s.included?.length ?? 0}</td>
                    <td class="num">{s.excluded?.length ?? 0}</td>
                    <td class="row-actions">
                      {mayWrite && (
                        <>
                          <button type="button" aria-label={`Edit ${s.key}`} onClick={() => setEditing(r)}>
                            Edit
                          </button>
                          <button type="button" aria-label={`Delete ${s.key}`} onClick={() => setDeleting(r)}>
                            Delete
                          </button>
                        </>
                      )}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
      <Confirm
        open={!!deleting}
        title={`Delete ${(deleting?.segment as unknown as Segment | undefined)?.key ?? ""}?`}
        confirmLabel="Delete the segment"
        danger
        onCancel={() => setDeleting(undefined)}
        onConfirm={() => deleting && void remove(deleting)}
      >
        <p>Rules that use it stop matching its members; the origin refuses the deletion while a rule refers to it.</p>
      </Confirm>
    </section>
  );
}
