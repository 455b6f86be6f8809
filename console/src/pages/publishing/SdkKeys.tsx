// The SDK keys of an environment: list (kind, name, prefix, created, when
// it stops), create and rotate (the new secret shown once, with a copy
// button), revoke after a confirmation. Writes need `sdkkeys.write`.
import { useEffect, useState } from "preact/hooks";
import { api, must, type Schema } from "../../api";
import { Confirm } from "../../components/Confirm";
import { CopyButton } from "../../components/CopyButton";
import { ErrorNote, FieldProblems } from "../../components/ErrorNote";
import { Modal } from "../../components/Modal";
import { Time } from "../../components/Time";
import { useAction, useLoad } from "../../hooks";
import { can, useMe } from "../../session";

type Key = Schema<"SdkKeyRecord">;
type Created = Schema<"Created_SdkKeyRecord">;

/** Grace periods offered when rotating (seconds). */
const GRACE: [number, string][] = [
  [0, "none: the old key stops now"],
  [3600, "1 hour"],
  [86400, "1 day"],
  [7 * 86400, "7 days"],
  [30 * 86400, "30 days"],
];

export function SdkKeys({ org, project, env, envName }: { org: string; project: string; env: string; envName: string }) {
  const me = useMe();
  const mayWrite = can(me, "sdkkeys.write", org, project, env);
  const path = { org, project, env };
  const keys = useLoad(
    async () => must(await api.GET("/api/v1/orgs/{org}/projects/{project}/environments/{env}/sdk-keys", { params: { path } })).items,
    [org, project, env],
  );
  // A new or revoked key reaches the edge with the next publication: watch it get there.
  const pending = (keys.data ?? []).some((k) => k.kvState === "pending");
  useEffect(() => {
    if (!pending) return;
    const t = setTimeout(() => void keys.reload(), 3000);
    return () => clearTimeout(t);
  }, [pending, keys.data]);
  const [secret, setSecret] = useState<{ key: Created; rotated?: Key }>();
  const [rotating, setRotating] = useState<Key>();
  const [revoking, setRevoking] = useState<Key>();
  const revoke = useAction(async (k: Key) => {
    setRevoking(undefined);
    must(
      await api.DELETE("/api/v1/orgs/{org}/projects/{project}/environments/{env}/sdk-keys/{id}", {
        params: { path: { ...path, id: k.id } },
      }),
    );
    await keys.reload();
  });
  const now = Date.now();
  return (
    <section aria-labelledby="keys-title">
      <h2 id="keys-title">SDK keys of {envName}</h2>
      <p class="muted small">
        Client keys are for browsers and apps, server keys for back ends. The edge learns a new key, and forgets a revoked one,
        with the next publication.
      </p>
      {secret && <Secret created={secret.key} rotated={secret.rotated} onDone={() => setSecret(undefined)} />}
      {mayWrite && (
        <CreateKey
          org={org}
          project={project}
          env={env}
          onCreated={(k) => {
            setSecret({ key: k });
            void keys.reload();
          }}
        />
      )}
      <ErrorNote error={keys.error ?? revoke.error} />
      {keys.data && keys.data.length === 0 && <p class="muted">No SDK keys yet.</p>}
      {keys.data && keys.data.length > 0 && (
        <div class="table-wrap">
          <table class="sdk-keys">
            <caption class="sr-only">SDK keys</caption>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Kind</th>
                <th scope="col">Key</th>
                <th scope="col">Created</th>
                <th scope="col">State</th>
                {mayWrite && <th scope="col">Actions</th>}
              </tr>
            </thead>
            <tbody>
              {keys.data.map((k) => {
                const stopped = !!k.expiresAt && Date.parse(k.expiresAt) <= now;
                return (
                  <tr key={k.id} class={stopped ? "stopped" : ""}>
                    <th scope="row">{k.name}</th>
                    <td>{k.kind}</td>
                    <td>
                      <code>{k.prefix}…</code>
                    </td>
                    <td>
                      <Time at={k.createdAt} />
                    </td>
                    <td>
                      {stopped ? (
                        <span class="badge">stopped</span>
                      ) : k.expiresAt ? (
                        <span class="badge bad">stops {new Date(k.expiresAt).toLocaleString()}</span>
                      ) : (
                        <span class="badge ok">active</span>
                      )}{" "}
                      <span class="small muted">edge: {k.kvState}</span>
                    </td>
                    {mayWrite && (
                      <td class="button-row">
                        {!stopped && !k.expiresAt && (
                          <button type="button" onClick={() => setRotating(k)}>
                            Rotate<span class="sr-only"> {k.name}</span>
                          </button>
                        )}
                        {!stopped && (
                          <button type="button" class="danger" disabled={revoke.busy} onClick={() => setRevoking(k)}>
                            Revoke<span class="sr-only"> {k.name}</span>
                          </button>
                        )}
                      </td>
                    )}
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
      {!keys.data && !keys.error && <p aria-busy="true">Loading SDK keys…</p>}
      <Rotate
        org={org}
        project={project}
        env={env}
        k={rotating}
        onClose={() => setRotating(undefined)}
        onRotated={(created, old) => {
          setRotating(undefined);
          setSecret({ key: created, rotated: old });
          void keys.reload();
        }}
      />
      <Confirm
        open={!!revoking}
        title={`Revoke ${revoking?.name ?? ""}?`}
        confirmLabel="Revoke now"
        danger
        onCancel={() => setRevoking(undefined)}
        onConfirm={() => revoking && void revoke.run(revoking)}
      >
        <p>
          The {revoking?.kind} key <code>{revoking?.prefix}…</code> stops working now; the edge forgets it with the next
          publication. SDKs still using it get 401. This cannot be undone.
        </p>
      </Confirm>
    </section>
  );
}

function CreateKey({ org, project, env, onCreated }: { org: string; project: string; env: string; onCreated: (k: Created) => void }) {
  const [name, setName] = useState("");
  const [kind, setKind] = useState<Schema<"SdkKeyKind">>("server");
  const create = useAction(async () => {
    const k = must(
      await api.POST("/api/v1/orgs/{org}/projects/{project}/environments/{env}/sdk-keys", {
        params: { path: { org, project, env } },
        body: { kind, name: name.trim() },
      }),
    );
    setName("");
    onCreated(k);
  });
  const nameProblems = create.error?.problemsAt("name") ?? [];
  return (
    <form
      class="create-key filters"
      aria-label="New SDK key"
      onSubmit={(e) => {
        e.preventDefault();
        void create.run();
      }}
    >
      <label>
        <span>Name</span>
        <input
          value={name}
          required
          placeholder="web app"
          onInput={(e) => setName(e.currentTarget.value)}
          aria-invalid={nameProblems.length > 0}
          aria-describedby="key-name-problems"
        />
        <FieldProblems id="key-name-problems" problems={nameProblems} />
      </label>
      <label>
        <span>Kind</span>
        <select value={kind} onChange={(e) => setKind(e.currentTarget.value as Schema<"SdkKeyKind">)}>
          <option value="server">server</option>
          <option value="client">client</option>
        </select>
      </label>
      <div class="filter-buttons">
        <button type="submit" class="primary" disabled={create.busy || !name.trim()}>
          Create SDK key
        </button>
      </div>
      {create.error && nameProblems.length === 0 && <ErrorNote error={create.error} />}
    </form>
  );
}

function Rotate({
  org,
  project,
  env,
  k,
  onClose,
  onRotated,
}: {
  org: string;
  project: string;
  env: string;
  k: Key | undefined;
  onClose: () => void;
  onRotated: (created: Created, old: Key) => void;
}) {
  const [grace, setGrace] = useState(86400);
  const rotate = useAction(async () => {
    const created = must(
      await api.POST("/api/v1/orgs/{org}/projects/{project}/environments/{env}/sdk-keys/{id}/rotate", {
        params: { path: { org, project, env, id: k!.id } },
        body: { graceSeconds: grace },
      }),
    );
    onRotated(created, k!);
  });
  return (
    <Modal
      open={!!k}
      title={`Rotate ${k?.name ?? ""}`}
      onClose={() => {
        rotate.clear();
        onClose();
      }}
    >
      <form
        onSubmit={(e) => {
          e.preventDefault();
          void rotate.run();
        }}
      >
        <p>
          A new key replaces <code>{k?.prefix}…</code>. Give the old one a grace period to keep working while the SDKs move to the
          new one.
        </p>
        <label class="stack">
          <span>Grace period of the old key</span>
          <select value={String(grace)} onChange={(e) => setGrace(Number(e.currentTarget.value))}>
            {GRACE.map(([s, label]) => (
              <option key={s} value={String(s)}>
                {label}
              </option>
            ))}
          </select>
        </label>
        <ErrorNote error={rotate.error} />
        <div class="actions">
          <button
            type="button"
            onClick={() => {
              rotate.clear();
              onClose();
            }}
          >
            Cancel
          </button>
          <button type="submit" class="primary" disabled={rotate.busy}>
            Rotate
          </button>
        </div>
      </form>
    </Modal>
  );
}

/** A new secret, shown once. */
function Secret({ created, rotated, onDone }: { created: Created; rotated?: Key; onDone: () => void }) {
  return (
    <div class="secret note ok" role="region" aria-labelledby="secret-title">
      <h3 id="secret-title">
        {rotated ? `New key for ${rotated.name}` : `SDK key ${created.name} created`} — copy it now
      </h3>
      <p>
        <strong>You will not see this secret again.</strong> Only its prefix is stored; store the key where your SDK reads it.
      </p>
      <div class="button-row">
        <span>Key:</span>
        <code class="secret-value">{created.secret}</code>
        <CopyButton text={created.secret} label="Copy key" />
      </div>
      <button type="button" onClick={onDone}>
        I have stored it
      </button>
    </div>
  );
}
