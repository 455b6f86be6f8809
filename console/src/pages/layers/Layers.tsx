// The mutual-exclusion layers of a project (/orgs/:org/projects/:project/layers):
// each with the flags holding slots in it, drawn over its bucket space with
// the free space, and creating, editing (salt, bucketing attribute) and
// deleting layers. The slots come from the flag list (one request per 500
// flags); a flag's slot is edited in its Settings.
import { useState } from "preact/hooks";
import { useRoute } from "preact-iso";
import { api, asApiError, must, type ApiError, type Schema } from "../../api";
import { Confirm } from "../../components/Confirm";
import { ErrorNote, FieldProblems } from "../../components/ErrorNote";
import { useLoad, useTitle } from "../../hooks";
import { projectPath } from "../../scope";
import { can, useMe } from "../../session";
import { LayerBar } from "./LayerBar";
import { freeRanges, layerOf, loadHolders, loadLayers, rangeText, round, usedPercent, type Holder, type Layer } from "./slots";
import "./layers.css";

type LayerRecord = Schema<"LayerRecord">;

function Editor({
  org,
  project,
  editing,
  onDone,
  onCancel,
  onReload,
}: {
  org: string;
  project: string;
  editing: LayerRecord | null;
  onDone: () => void;
  onCancel: () => void;
  onReload: () => void;
}) {
  const original = editing ? layerOf(editing) : undefined;
  const [key, setKey] = useState(original?.key ?? "");
  const [salt, setSalt] = useState(original?.salt ?? "");
  const [bucketBy, setBucketBy] = useState(original?.bucketBy ?? "");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError>();
  // Break glass: a new salt in a project with an environment that needs
  // approvals is refused (409 protected_environment) without a reason.
  const [reason, setReason] = useState("");
  const glass = error?.code === "protected_environment";

  const save = async () => {
    setBusy(true);
    setError(undefined);
    const body: Layer = { key: key.trim() };
    if (salt.trim()) body.salt = salt;
    if (bucketBy.trim()) body.bucketBy = bucketBy.trim();
    try {
      must(
        editing
          ? await api.PUT("/api/v1/orgs/{org}/projects/{project}/layers/{layer}", {
              params: { path: { org, project, layer: original!.key }, header: {
                  "If-Match": `"${editing.version}"`,
                  ...(reason.trim() ? { "Bunting-Bypass-Reason": reason.trim() } : {}),
                },
              },
              body: body as unknown as Record<string, never>,
            })
          : await api.POST("/api/v1/orgs/{org}/projects/{project}/layers", {
              params: { path: { org, project } },
              body: body as unknown as Record<string, never>,
            }),
      );
      onDone();
    } catch (e) {
      setError(asApiError(e));
    } finally {
      setBusy(false);
    }
  };
  const at = (f: string) => error?.problemsAt(f) ?? [];
  const keyProblems = error?.status === 409 && !glass ? [{ path: "key", message: error.message }] : at("key");
  const saltChanged = !!editing && (salt.trim() ? salt : null) !== (original?.salt ?? null);

  return (
    <section class="layer-editor" aria-labelledby="layer-editor-heading">
      <h2 id="layer-editor-heading">{editing ? `Edit layer ${original!.key}` : "New layer"}</h2>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          void save();
        }}
      >
        <label class="stack" for="layer-key">
          <span>Key</span>
          <input
            id="layer-key"
            required
            readOnly={!!editing}
            value={key}
            pattern="[A-Za-z0-9._\-]+"
            aria-invalid={keyProblems.length > 0}
            aria-describedby="layer-key-hint layer-key-problems"
            onInput={(e) => setKey(e.currentTarget.value)}
          />
        </label>
        <p id="layer-key-hint" class="hint">
          {editing ? "Flags name the layer by its key, so it cannot change." : "Letters, digits, - _ and . — flags name the layer by it."}
        </p>
        <FieldProblems id="layer-key-problems" problems={keyProblems} />
        <label class="stack" for="layer-salt">
          <span>Salt</span>
          <input
            id="layer-salt"
            value={salt}
            placeholder={key.trim() || "the layer key"}
            aria-invalid={at("salt").length > 0}
            aria-describedby="layer-salt-hint layer-salt-problems"
            onInput={(e) => setSalt(e.currentTarget.value)}
          />
        </label>
        <p id="layer-salt-hint" class="hint">
          Which bucket a user falls in (default: the layer key). A new salt reshuffles who is in which flag's slot.
        </p>
        <FieldProblems id="layer-salt-problems" problems={at("salt")} />
        {saltChanged && (
          <p class="note" role="status">
            Saving a new salt moves users between this layer's slots: users in one flag's experiment may land in another's.
          </p>
        )}
        <label class="stack" for="layer-bucket-by">
          <span>Bucket by</span>
          <input
            id="layer-bucket-by"
            value={bucketBy}
            placeholder="targetingKey"
            aria-invalid={at("bucketBy").length > 0}
            aria-describedby="layer-bucket-by-hint layer-bucket-by-problems"
            onInput={(e) => setBucketBy(e.currentTarget.value)}
          />
        </label>
        <p id="layer-bucket-by-hint" class="hint">
          The context attribute users are bucketed by (default targetingKey), e.g. account.id.
        </p>
        <FieldProblems id="layer-bucket-by-problems" problems={at("bucketBy")} />
        <ErrorNote error={glass ? undefined : error} onReload={onReload} />
        {glass && (
          <div class="note error" role="alert">
            <p>{error!.message}</p>
            <label class="stack" for="layer-glass">
              <span>Reason to do it now (break glass; kept in the audit log)</span>
              <input id="layer-glass" value={reason} placeholder="incident #123" onInput={(e) => setReason(e.currentTarget.value)} />
            </label>
          </div>
        )}
        <div class="actions">
          <button type="button" onClick={onCancel}>
            Cancel
          </button>
          <button type="submit" class="primary" disabled={busy}>
            {editing ? "Save layer" : "Create layer"}
          </button>
        </div>
      </form>
    </section>
  );
}

function LayerCard({
  org,
  project,
  record,
  holders,
  mayWrite,
  onEdit,
  onDelete,
}: {
  org: string;
  project: string;
  record: LayerRecord;
  holders: Holder[];
  mayWrite: boolean;
  onEdit: () => void;
  onDelete: () => void;
}) {
  const layer = layerOf(record);
  const id = `layer-${record.id}`;
  const sorted = [...holders].sort((a, b) => a.slot.start - b.slot.start);
  const free = freeRanges(holders);
  return (
    <section class="layer-card" aria-labelledby={id}>
      <div class="layer-head">
        <h2 id={id} class="mono">
          {layer.key}
        </h2>
        <span class="muted small">
          {holders.length} {holders.length === 1 ? "flag" : "flags"}, {usedPercent(holders)} % used
        </span>
        <span class="spacer" />
        {mayWrite && (
          <span class="row">
            <button type="button" aria-label={`Edit layer ${layer.key}`} onClick={onEdit}>
              Edit
            </button>
            <button type="button" aria-label={`Delete layer ${layer.key}`} onClick={onDelete}>
              Delete
            </button>
          </span>
        )}
      </div>
      <dl>
        <div>
          <dt>Salt</dt>
          <dd class="mono">{layer.salt ?? `${layer.key} (the key)`}</dd>
        </div>
        <div>
          <dt>Bucket by</dt>
          <dd class="mono">{layer.bucketBy ?? "targetingKey"}</dd>
        </div>
      </dl>
      <LayerBar layer={layer.key} holders={holders} />
      {sorted.length > 0 ? (
        <table>
          <caption class="sr-only">Flags in layer {layer.key}</caption>
          <thead>
            <tr>
              <th scope="col">Flag</th>
              <th scope="col">Slot</th>
              <th scope="col" class="num">
                Share
              </th>
            </tr>
          </thead>
          <tbody>
            {sorted.map((h) => (
              <tr key={h.flag}>
                <th scope="row">
                  <a class="mono" href={projectPath(org, project, `/flags/${encodeURIComponent(h.flag)}?tab=settings`)}>
                    {h.flag}
                  </a>
                </th>
                <td>{rangeText(h.slot.start, h.slot.end)}</td>
                <td class="num">{round(h.slot.end - h.slot.start)} %</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : (
        <p class="muted small">No flag holds a slot in this layer yet: give one a slot in its Settings.</p>
      )}
      <p class="free">
        <strong>Free:</strong> {free.length ? free.map(([s, e]) => rangeText(s, e)).join(", ") : "none — the layer is full"}
      </p>
    </section>
  );
}

export default function Layers() {
  const { params } = useRoute();
  const org = params.org!;
  const project = params.project!;
  useTitle(`Layers · ${project}`);
  const me = useMe();
  const mayWrite = can(me, "flags.write", org, project);
  const layers = useLoad(() => loadLayers(org, project), [org, project]);
  const holders = useLoad(() => loadHolders(org, project), [org, project]);
  const [editing, setEditing] = useState<LayerRecord | null | undefined>(undefined);
  const [deleting, setDeleting] = useState<LayerRecord>();
  const [deleteError, setDeleteError] = useState<ApiError>();
  const [busy, setBusy] = useState(false);
  const [saved, setSaved] = useState<string>();

  const reload = () => Promise.all([layers.reload(), holders.reload()]);
  const remove = async (r: LayerRecord) => {
    setBusy(true);
    setDeleteError(undefined);
    try {
      must(
        await api.DELETE("/api/v1/orgs/{org}/projects/{project}/layers/{layer}", {
          params: { path: { org, project, layer: layerOf(r).key }, header: { "If-Match": `"${r.version}"` } },
        }),
      );
      await reload();
      setDeleting(undefined);
      setSaved(`Deleted layer ${layerOf(r).key}.`);
    } catch (e) {
      setDeleteError(asApiError(e));
    } finally {
      setBusy(false);
    }
  };
  const inLayer = (key: string) => (holders.data ?? []).filter((h) => h.slot.key === key);
  const deletingKey = deleting ? layerOf(deleting).key : "";
  const deletingHolders = deleting ? inLayer(deletingKey) : [];

  return (
    <section class="layers-page">
      <div class="heading">
        <h1>Layers</h1>
        {mayWrite && editing === undefined && (
          <button
            type="button"
            class="primary"
            onClick={() => {
              setSaved(undefined);
              setEditing(null);
            }}
          >
            New layer
          </button>
        )}
      </div>
      <p class="muted intro">
        Flags in one layer own disjoint slots of its buckets, so a user is in at most one of their experiments. Outside its slot a flag's rollout or schedule
        serves its off variant. Give a flag a slot in its Settings.
      </p>
      {saved && (
        <p class="note ok" role="status">
          {saved}
        </p>
      )}
      {editing !== undefined && (
        <Editor
          key={editing?.id ?? "new"}
          org={org}
          project={project}
          editing={editing}
          onDone={() => {
            setSaved(editing ? `Saved layer ${layerOf(editing).key}.` : "Created the layer.");
            setEditing(undefined);
            void reload();
          }}
          onCancel={() => setEditing(undefined)}
          onReload={() => {
            setEditing(undefined);
            void reload();
          }}
        />
      )}
      <ErrorNote error={layers.error ?? holders.error} onReload={() => void reload()} />
      {!layers.data || !holders.data ? (
        !(layers.error ?? holders.error) && <p aria-busy="true">Loading…</p>
      ) : layers.data.length === 0 ? (
        <p class="muted">No layers in this project yet.</p>
      ) : (
        layers.data.map((r) => (
          <LayerCard
            key={r.id}
            org={org}
            project={project}
            record={r}
            holders={inLayer(layerOf(r).key)}
            mayWrite={mayWrite}
            onEdit={() => {
              setSaved(undefined);
              setEditing(r);
            }}
            onDelete={() => {
              setSaved(undefined);
              setDeleteError(undefined);
              setDeleting(r);
            }}
          />
        ))
      )}
      <Confirm
        open={!!deleting}
        title={`Delete layer ${deletingKey}?`}
        confirmLabel={busy ? "Deleting…" : "Delete the layer"}
        danger
        onCancel={() => {
          setDeleting(undefined);
          setDeleteError(undefined);
        }}
        onConfirm={() => deleting && !busy && void remove(deleting)}
      >
        {deletingHolders.length > 0 ? (
          <p>
            {deletingHolders.length === 1 ? "A flag holds" : `${deletingHolders.length} flags hold`} a slot in <strong>{deletingKey}</strong> (
            {deletingHolders.map((h) => h.flag).join(", ")}): the origin refuses to delete it until they leave it.
          </p>
        ) : (
          <p>
            No flag holds a slot in <strong>{deletingKey}</strong>. The audit log keeps its history.
          </p>
        )}
        <ErrorNote error={deleteError} onReload={() => void reload()} />
      </Confirm>
    </section>
  );
}
