// Where the console is: organization and project from the path
// (`/orgs/:org/projects/:project/…`), environment from `?env=` (remembered
// per project in localStorage).
import { useLocation } from "preact-iso";
import { api, must, type Schema } from "./api";
import { useLoad } from "./hooks";

/** The organization and project of the current path. */
export function pathScope(path: string): { org?: string; project?: string } {
  const m = path.match(/^\/orgs\/([^/]+)(?:\/projects\/([^/]+))?/);
  return { org: m?.[1] && decodeURIComponent(m[1]), project: m?.[2] && decodeURIComponent(m[2]) };
}

/** `/orgs/{org}/projects/{project}` + `rest`, encoded. */
export function projectPath(org: string, project: string, rest = ""): string {
  return `/orgs/${encodeURIComponent(org)}/projects/${encodeURIComponent(project)}${rest}`;
}

const remembered = (org: string, project: string) => `bunting.env.${org}/${project}`;

/** The environments of a project. */
export function useEnvironments(org: string, project: string) {
  return useLoad(
    async () =>
      must(
        await api.GET("/api/v1/orgs/{org}/projects/{project}/environments", {
          params: { path: { org, project } },
        }),
      ).items,
    [org, project],
  );
}

/**
 * The selected environment of the project: `?env=`, else the last one used
 * here, else `production` if there is one, else the first.
 */
export function useEnv(org: string, project: string, envs: Schema<"Environment">[] | undefined): [string | undefined, (env: string) => void] {
  const { query, route, path } = useLocation();
  const keys = envs?.map((e) => e.key) ?? [];
  let env = query.env;
  if (!env || (envs && !keys.includes(env))) {
    const last = localStorage.getItem(remembered(org, project)) ?? undefined;
    env = last && keys.includes(last) ? last : keys.includes("production") ? "production" : keys[0];
  }
  const choose = (next: string) => {
    localStorage.setItem(remembered(org, project), next);
    const params = new URLSearchParams(query);
    params.set("env", next);
    route(`${path}?${params}`, true);
  };
  return [env, choose];
}
