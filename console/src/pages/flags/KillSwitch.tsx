// A flag's on/off switch in one environment. One click where changes go live
// at once; in an environment that needs approvals, a confirmation that either
// opens a change request or breaks glass with a reason (kept in the audit log).
import { useState } from "preact/hooks";
import { api, must } from "../../api";
import { Confirm } from "../../components/Confirm";
import { ErrorNote } from "../../components/ErrorNote";
import { useAction } from "../../hooks";
import { projectPath } from "../../scope";

export function KillSwitch(props: {
  org: string;
  project: string;
  flag: string;
  env: string;
  envName: string;
  enabled: boolean;
  protectedBy: number;
  allowed: boolean;
  onChanged: () => void;
}) {
  const { org, project, flag, env, envName, enabled, protectedBy, allowed, onChanged } = props;
  const [asking, setAsking] = useState(false);
  const [reason, setReason] = useState("");
  const [opened, setOpened] = useState<number>();
  const toggle = useAction(async (next: boolean, bypass?: string) => {
    const r = await api.POST("/api/v1/orgs/{org}/projects/{project}/flags/{flag}/environments/{env}/toggle", {
      params: { path: { org, project, flag, env }, header: bypass ? { "Bunting-Bypass-Reason": bypass } : {} },
      body: { enabled: next },
    });
    const body = must(r);
    if (r.response.status === 202) setOpened((body as { id: number }).id);
    setAsking(false);
    setReason("");
    onChanged();
  });
  const label = `${flag} in ${envName}: ${enabled ? "on" : "off"}`;
  return (
    <>
      <button
        type="button"
        role="switch"
        class={`switch ${enabled ? "on" : "off"}`}
        aria-checked={enabled}
        aria-label={label}
        title={allowed ? label : `${label} (you may not change it)`}
        disabled={!allowed || toggle.busy}
        onClick={() => (protectedBy > 0 ? setAsking(true) : void toggle.run(!enabled))}
      >
        <span aria-hidden="true">{enabled ? "On" : "Off"}</span>
      </button>
      {opened !== undefined && (
        <a class="small" href={projectPath(org, project, `/changes/${encodeURIComponent(env)}/${opened}`)}>
          change request #{opened}
        </a>
      )}
      <ErrorNote error={toggle.error} />
      {asking && (
      <Confirm
        open
        title={`Turn ${flag} ${enabled ? "off" : "on"} in ${envName}?`}
        confirmLabel={reason.trim() ? `Turn ${enabled ? "off" : "on"} now` : "Open a change request"}
        danger={!!reason.trim()}
        onCancel={() => {
          setAsking(false);
          setReason("");
        }}
        onConfirm={() => void toggle.run(!enabled, reason.trim() || undefined)}
      >
        <p>
          {envName} needs {protectedBy} approval{protectedBy === 1 ? "" : "s"} before a change applies. Without a reason this
          opens a change request; with one, the switch flips now and the reason goes into the audit log (break glass).
        </p>
        <label class="stack">
          <span>Reason to flip it now (optional)</span>
          <input value={reason} onInput={(e) => setReason(e.currentTarget.value)} placeholder="incident #123: checkout errors" />
        </label>
      </Confirm>
      )}
    </>
  );
}
