// A flag's definition, shared by every environment: description, owner,
// tags, variants, the off variant, and bucketing (layer slot, salt,
// bucketBy; ../layers/Bucketing.tsx) (PUT …/flags/{flag} with If-Match), and
// archiving (out of every snapshot, restorable) or deleting the flag after a
// confirmation.
import { useState } from "preact/hooks";
import { useLocation } from "preact-iso";
import { api, asApiError, must, withEtag, type ApiError, type Schema } from "../../api";
import { Confirm } from "../../components/Confirm";
import { ErrorNote, FieldProblems } from "../../components/ErrorNote";
import { projectPath } from "../../scope";
import { Bucketing, bucketingProblems, fromBucketing, toBucketing } from "../layers/Bucketing";
import { readVariants, VariantsEditor, type FlagType } from "./Variants";

const show = (type: string, v: unknown) => (type === "string" ? String(v) : JSON.stringify(v));

export function Settings({
  org,
  project,
  record,
  etag,
  mayWrite,
  onSaved,
  onReload,
}: {
  org: string;
  project: string;
  record: Schema<"FlagRecord">;
  etag: string;
  mayWrite: boolean;
  onSaved: (r: Schema<"FlagRecord">, etag: string) => void;
  onReload: () => void;
}) {
  const { route } = useLocation();
  const type = record.flagType as FlagType;
  const [description, setDescription] = useState(record.description ?? "");
  const [owner, setOwner] = useState(record.owner ?? "");
  const [tags, setTags] = useState((record.tags ?? []).join(", "));
  const [rows, setRows] = useState(Object.entries(record.variants as Record<string, unknown>).map(([name, v]) => ({ name, value: show(type, v) })));
  const [off, setOff] = useState(record.offVariant);
  const [clientSide, setClientSide] = useState(record.clientSide ?? false);
  const [bucketing, setBucketing] = useState(() => toBucketing(record));
  const [tried, setTried] = useState(false);
  const [local, setLocal] = useState<string[]>([]);
  const [error, setError] = useState<ApiError>();
  const [busy, setBusy] = useState(false);
  const [done, setDone] = useState(false);
  const [deleting, setDeleting] = useState(false);
  const [deleteError, setDeleteError] = useState<ApiError>();
  // Break glass: a reason lets a definition change or a deletion through
  // while an environment needs approvals (409 protected_environment).
  const [reason, setReason] = useState("");
  const bypass = () => (reason.trim() ? { "If-Match": etag, "Bunting-Bypass-Reason": reason.trim() } : { "If-Match": etag });

  const save = async () => {
    setDone(false);
    const { variants, problems } = readVariants(type, rows);
    problems.push(...bucketingProblems(bucketing));
    setTried(true);
    setLocal(problems);
    if (problems.length) return;
    setBusy(true);
    setError(undefined);
    try {
      const r = await api.PUT("/api/v1/orgs/{org}/projects/{project}/flags/{flag}", {
        params: { path: { org, project, flag: record.key }, header: bypass() },
        body: {
          key: record.key,
          flagType: record.flagType,
          variants,
          offVariant: off,
          description: description.trim() || null,
          owner: owner.trim() || null,
          tags: tags
            .split(",")
            .map((t) => t.trim())
            .filter(Boolean),
          ...fromBucketing(bucketing),
          clientSide,
        },
      });
      const { data, etag: next } = withEtag(r);
      setDone(true);
      onSaved(data, next);
    } catch (e) {
      setError(asApiError(e));
    } finally {
      setBusy(false);
    }
  };

  const remove = async () => {
    setBusy(true);
    setDeleteError(undefined);
    try {
      must(
        await api.DELETE("/api/v1/orgs/{org}/projects/{project}/flags/{flag}", {
          params: { path: { org, project, flag: record.key }, header: bypass() },
        }),
      );
      route(projectPath(org, project, "/flags"));
    } catch (e) {
      setDeleteError(asApiError(e));
    } finally {
      setBusy(false);
    }
  };
  const [archiveError, setArchiveError] = useState<ApiError>();
  const archive = async (to: "archive" | "restore") => {
    setBusy(true);
    setArchiveError(undefined);
    try {
      const path = { org, project, flag: record.key };
      const headers = { params: { path, header: bypass() } };
      const r =
        to === "archive"
          ? await api.POST("/api/v1/orgs/{org}/projects/{project}/flags/{flag}/archive", headers)
          : await api.POST("/api/v1/orgs/{org}/projects/{project}/flags/{flag}/restore", headers);
      const { data, etag: next } = withEtag(r);
      onSaved(data, next);
    } catch (e) {
      setArchiveError(asApiError(e));
    } finally {
      setBusy(false);
    }
  };
  const glassField = (id: string) => (
    <label class="stack" for={id}>
      <span>Reason to do it now (break glass; kept in the audit log)</span>
      <input id={id} value={reason} placeholder="incident #123" onInput={(e) => setReason(e.currentTarget.value)} />
    </label>
  );

  const at = (f: string) => error?.problemsAt(f) ?? [];
  return (
    <div class="settings">
      <form
        onSubmit={(e) => {
          e.preventDefault();
          void save();
        }}
      >
        <fieldset disabled={!mayWrite}>
          <legend>Definition (every environment)</legend>
          <label class="stack" for="set-description">
            <span>Description</span>
            <input id="set-description" value={description} aria-describedby="set-description-problems" onInput={(e) => setDescription(e.currentTarget.value)} />
            <FieldProblems id="set-description-problems" problems={at("description")} />
          </label>
          <label class="stack" for="set-owner">
            <span>Owner</span>
            <input id="set-owner" value={owner} onInput={(e) => setOwner(e.currentTarget.value)} />
          </label>
          <label class="stack" for="set-tags">
            <span>Tags (comma-separated)</span>
            <input id="set-tags" value={tags} aria-describedby="set-tags-problems" onInput={(e) => setTags(e.currentTarget.value)} />
            <FieldProblems id="set-tags-problems" problems={at("tags")} />
          </label>
          <div class="row">
            <input id="set-client-side" type="checkbox" checked={clientSide} aria-describedby="set-client-side-problems" onChange={(e) => setClientSide(e.currentTarget.checked)} />
            <label for="set-client-side">Available to client-side SDKs (client SDK keys in browsers and apps may evaluate it)</label>
            <FieldProblems id="set-client-side-problems" problems={at("clientSide")} />
          </div>
          <VariantsEditor idPrefix="set" legend={`Variants (${type})`} type={type} rows={rows} onChange={setRows} problems={at("variants")} />
          <label class="stack" for="set-off">
            <span>Served when off</span>
            <select id="set-off" value={off} aria-describedby="set-off-problems" onChange={(e) => setOff(e.currentTarget.value)}>
              {rows.map((r) => (
                <option key={r.name} value={r.name}>
                  {r.name}
                </option>
              ))}
            </select>
            <FieldProblems id="set-off-problems" problems={at("offVariant")} />
          </label>
          <Bucketing
            org={org}
            project={project}
            flag={record.key}
            original={toBucketing(record)}
            value={bucketing}
            onChange={setBucketing}
            error={error}
            touched={tried}
          />
          {local.length > 0 && (
            <ul class="field-problems" role="alert">
              {local.map((p) => (
                <li key={p}>{p}</li>
              ))}
            </ul>
          )}
          <ErrorNote error={error} onReload={onReload} />
          {error?.code === "protected_environment" && glassField("set-glass")}
          {done && (
            <p class="note ok" role="status">
              Saved.
            </p>
          )}
          <div class="actions">
            <button type="submit" class="primary" disabled={busy}>
              Save definition
            </button>
          </div>
        </fieldset>
      </form>
      {mayWrite && (
        <section class="danger-zone" aria-labelledby="archive-heading">
          <h2 id="archive-heading">{record.archived ? "Restore this flag" : "Archive this flag"}</h2>
          {record.archived ? (
            <p>Restoring serves the flag again, as it was configured when it was archived.</p>
          ) : (
            <p>
              Archiving takes the flag out of every environment's snapshot (SDKs asking for it get FLAG_NOT_FOUND) and
              out of the flags list, and keeps its definition and configuration, so it can be restored.
            </p>
          )}
          <ErrorNote error={archiveError} />
          {archiveError?.code === "protected_environment" && glassField("archive-glass")}
          <button type="button" disabled={busy} onClick={() => void archive(record.archived ? "restore" : "archive")}>
            {record.archived ? `Restore ${record.key}` : `Archive ${record.key}`}
          </button>
        </section>
      )}
      {mayWrite && (
        <section class="danger-zone" aria-labelledby="danger-heading">
          <h2 id="danger-heading">Delete this flag</h2>
          <p>Deleting removes the flag and its configuration in every environment; SDKs asking for it get FLAG_NOT_FOUND.</p>
          <button type="button" class="danger" onClick={() => setDeleting(true)}>
            Delete {record.key}…
          </button>
        </section>
      )}
      <Confirm
        open={deleting}
        title={`Delete ${record.key}?`}
        confirmLabel={reason.trim() ? "Delete now (break glass)" : "Delete the flag"}
        danger
        onCancel={() => {
          setDeleting(false);
          setDeleteError(undefined);
        }}
        onConfirm={() => void remove()}
      >
        <p>
          This deletes <strong>{record.key}</strong> in every environment. The audit log keeps its history.
        </p>
        <ErrorNote error={deleteError} />
        {deleteError?.code === "protected_environment" && glassField("delete-glass")}
      </Confirm>
    </div>
  );
}
