// The environment of a per-environment page: a labelled select over the
// project's environments, bound to `?env=` (see `useEnv`).
import type { Schema } from "../api";

export function EnvPicker({
  envs,
  env,
  onChange,
}: {
  envs: Schema<"Environment">[] | undefined;
  env: string | undefined;
  onChange: (env: string) => void;
}) {
  if (!envs || envs.length === 0) return null;
  return (
    <label class="picker env-picker">
      <span>Environment</span>
      <select value={env} onChange={(e) => onChange(e.currentTarget.value)}>
        {envs.map((e) => (
          <option key={e.key} value={e.key}>
            {e.name}
          </option>
        ))}
      </select>
    </label>
  );
}
