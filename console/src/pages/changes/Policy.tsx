// An environment's change policy: required approvals and who may approve
// (roles held at least, or teams). Shown to everyone who reads the
// environment; editable with `environments.write`, a 422's problems next to
// their fields.
import { useState } from "preact/hooks";
import { api, must, type Schema } from "../../api";
import { ErrorNote, FieldProblems } from "../../components/ErrorNote";
import { useAction, useLoad } from "../../hooks";
import { can, useMe } from "../../session";

type EnvPolicy = Schema<"EnvPolicy">;

export function Policy({ org, project, env, envName }: { org: string; project: string; env: string; envName: string }) {
  const me = useMe();
  const policy = useLoad(
    async () =>
      must(
        await api.GET("/api/v1/orgs/{org}/projects/{project}/environments/{env}/policy", {
          params: { path: { org, project, env } },
        }),
      ),
    [org, project, env],
  );
  const [editing, setEditing] = useState(false);
  const mayEdit = can(me, "environments.write", org, project, env);
  const p = policy.data;
  return (
    <section class="policy" aria-labelledby="policy-title">
      <div class="heading">
        <h2 id="policy-title">Policy of {envName}</h2>
        {mayEdit && p && !editing && (
          <button type="button" onClick={() => setEditing(true)}>
            Edit policy
          </button>
        )}
      </div>
      <ErrorNote error={policy.error} />
      {p && !editing && <PolicyView p={p} />}
      {p && editing && (
        <PolicyForm
          org={org}
          project={project}
          env={env}
          initial={p}
          onDone={(saved) => {
            setEditing(false);
            if (saved) void policy.reload();
          }}
        />
      )}
    </section>
  );
}

function PolicyView({ p }: { p: EnvPolicy }) {
  const roles = p.approverRoles ?? [];
  const teams = p.approverTeams ?? [];
  return (
    <dl>
      <dt>Required approvals</dt>
      <dd>
        {p.requiredApprovals === 0 ? (
          <>0 — unprotected: changes go live at once</>
        ) : (
          <>
            {p.requiredApprovals} — protected: a change opens a change request
          </>
        )}
      </dd>
      <dt>Approvers</dt>
      <dd>
        {roles.length === 0 && teams.length === 0
          ? "anyone with changes.approve here (not the author)"
          : [...roles.map((r) => `role ${r} (or more)`), ...teams.map((t) => `team ${t}`)].join(", ")}
      </dd>
    </dl>
  );
}

function PolicyForm({
  org,
  project,
  env,
  initial,
  onDone,
}: {
  org: string;
  project: string;
  env: string;
  initial: EnvPolicy;
  onDone: (saved: boolean) => void;
}) {
  const [required, setRequired] = useState(String(initial.requiredApprovals));
  const [roles, setRoles] = useState<string[]>(initial.approverRoles ?? []);
  const [teams, setTeams] = useState<string[]>(initial.approverTeams ?? []);
  const choices = useLoad(async () => {
    const [r, t] = await Promise.all([
      api.GET("/api/v1/orgs/{org}/roles", { params: { path: { org } } }),
      api.GET("/api/v1/orgs/{org}/teams", { params: { path: { org } } }),
    ]);
    return { roles: r.data?.items.map((x) => x.key) ?? [], teams: t.data?.items.map((x) => x.key) ?? [] };
  }, [org]);
  const save = useAction(async () => {
    must(
      await api.PUT("/api/v1/orgs/{org}/projects/{project}/environments/{env}/policy", {
        params: { path: { org, project, env } },
        body: { requiredApprovals: Number(required), approverRoles: roles, approverTeams: teams },
      }),
    );
    onDone(true);
  });
  const problems = (field: string) => save.error?.problemsAt(field) ?? [];
  const toggle = (list: string[], set: (l: string[]) => void, key: string, on: boolean) =>
    set(on ? [...list, key] : list.filter((k) => k !== key));
  // Keys of the policy the organization no longer has stay visible and removable.
  const roleKeys = [...new Set([...(choices.data?.roles ?? []), ...roles])];
  const teamKeys = [...new Set([...(choices.data?.teams ?? []), ...teams])];
  return (
    <form
      onSubmit={(e) => {
        e.preventDefault();
        void save.run();
      }}
    >
      <label class="stack">
        <span>Required approvals (0–10; 0: unprotected)</span>
        <input
          type="number"
          min={0}
          max={10}
          required
          value={required}
          onInput={(e) => setRequired(e.currentTarget.value)}
          aria-invalid={problems("requiredApprovals").length > 0}
          aria-describedby="policy-required-problems"
        />
        <FieldProblems id="policy-required-problems" problems={problems("requiredApprovals")} />
      </label>
      <fieldset aria-describedby="policy-roles-problems">
        <legend>Approver roles (held at least)</legend>
        <div class="checks">
          {roleKeys.map((r) => (
            <label key={r}>
              <input type="checkbox" checked={roles.includes(r)} onChange={(e) => toggle(roles, setRoles, r, e.currentTarget.checked)} />
              {r}
            </label>
          ))}
          {roleKeys.length === 0 && <span class="muted">{choices.loading ? "Loading roles…" : "No roles."}</span>}
        </div>
        <FieldProblems id="policy-roles-problems" problems={problems("approverRoles")} />
      </fieldset>
      <fieldset aria-describedby="policy-teams-problems">
        <legend>Approver teams</legend>
        <div class="checks">
          {teamKeys.map((t) => (
            <label key={t}>
              <input type="checkbox" checked={teams.includes(t)} onChange={(e) => toggle(teams, setTeams, t, e.currentTarget.checked)} />
              {t}
            </label>
          ))}
          {teamKeys.length === 0 && <span class="muted">{choices.loading ? "Loading teams…" : "No teams."}</span>}
        </div>
        <FieldProblems id="policy-teams-problems" problems={problems("approverTeams")} />
      </fieldset>
      <p class="small muted">No roles and no teams: anyone with changes.approve in this environment may approve.</p>
      <ErrorNote error={save.error} />
      <div class="button-row">
        <button type="submit" class="primary" disabled={save.busy}>
          Save policy
        </button>
        <button type="button" onClick={() => onDone(false)}>
          Cancel
        </button>
      </div>
    </form>
  );
}
