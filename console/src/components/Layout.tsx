// The frame of every page: skip link, header (who, organization, project),
// the project's navigation, and the main landmark.
import type { ComponentChildren } from "preact";
import { useLocation } from "preact-iso";
import { api, must } from "../api";
import { useLoad } from "../hooks";
import { pathScope, projectPath } from "../scope";
import { useMe } from "../session";

const SECTIONS: [string, string][] = [
  ["Flags", "/flags"],
  ["Segments", "/segments"],
  ["Layers", "/layers"],
  ["Experiments", "/experiments"],
  ["Rollouts", "/rollouts"],
  ["Changes", "/changes"],
  ["Publishing", "/publishing"],
];

export function Layout({ children }: { children: ComponentChildren }) {
  const me = useMe();
  const { path, route } = useLocation();
  const { org, project } = pathScope(path);
  const orgs = useLoad(async () => must(await api.GET("/api/v1/orgs")).items, []);
  const projects = useLoad(
    async () => (org ? must(await api.GET("/api/v1/orgs/{org}/projects", { params: { path: { org } } })).items : []),
    [org],
  );
  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <a class="brand" href="/">
          <span aria-hidden="true">⚑</span> bunting
        </a>
        {orgs.data && orgs.data.length > 0 && (
          <label class="picker">
            <span>Organization</span>
            <select value={org ?? ""} onChange={(e) => route(`/orgs/${encodeURIComponent(e.currentTarget.value)}`)}>
              {!org && <option value="">choose…</option>}
              {orgs.data.map((o) => (
                <option key={o.key} value={o.key}>
                  {o.name}
                </option>
              ))}
            </select>
          </label>
        )}
        {org && projects.data && projects.data.length > 0 && (
          <label class="picker">
            <span>Project</span>
            <select value={project ?? ""} onChange={(e) => route(projectPath(org, e.currentTarget.value, "/flags"))}>
              {!project && <option value="">choose…</option>}
              {projects.data.map((p) => (
                <option key={p.key} value={p.key}>
                  {p.name}
                </option>
              ))}
            </select>
          </label>
        )}
        <span class="who" title={me.name}>
          {me.displayName || me.email || me.name}
        </span>
        {me.session && (
          <button type="button" class="link" onClick={() => void signOut(me.csrfToken ?? "")}>
            Sign out
          </button>
        )}
      </header>
      {org && (
        <nav class="sections" aria-label="Sections">
          {project &&
            SECTIONS.map(([label, rest]) => {
              const href = projectPath(org, project, rest);
              const current = path === href || path.startsWith(`${href}/`);
              return (
                <a key={rest} href={href} aria-current={current ? "page" : undefined}>
                  {label}
                </a>
              );
            })}
          <a href={`/orgs/${encodeURIComponent(org)}/audit`} aria-current={path.startsWith(`/orgs/${org}/audit`) ? "page" : undefined}>
            Audit log
          </a>
        </nav>
      )}
      <main id="main" tabIndex={-1}>
        {children}
      </main>
    </>
  );
}

async function signOut(csrf: string) {
  await fetch("/auth/logout", { method: "POST", headers: { "X-CSRF-Token": csrf }, credentials: "same-origin" });
  location.assign("/");
}
