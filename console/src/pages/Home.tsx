// `/` and `/orgs/:org`: goes to the first project's flags, or lists what there is.
import { useEffect } from "preact/hooks";
import { useLocation, useRoute } from "preact-iso";
import { api, must } from "../api";
import { ErrorNote } from "../components/ErrorNote";
import { useLoad, useTitle } from "../hooks";
import { projectPath } from "../scope";

export function Home() {
  useTitle("");
  const { params } = useRoute();
  const { route } = useLocation();
  const wanted = params.org;
  const found = useLoad(async () => {
    const orgs = must(await api.GET("/api/v1/orgs")).items;
    const org = wanted ?? orgs[0]?.key;
    if (!org) return { orgs, org: undefined, projects: [] };
    const projects = must(await api.GET("/api/v1/orgs/{org}/projects", { params: { path: { org } } })).items;
    return { orgs, org, projects };
  }, [wanted]);
  const first = found.data?.org && found.data.projects[0]?.key;
  useEffect(() => {
    if (found.data?.org && first) route(projectPath(found.data.org, first, "/flags"), true);
  }, [found.data, first]);
  if (found.error) return <ErrorNote error={found.error} />;
  if (!found.data) return <p aria-busy="true">Loading…</p>;
  if (!found.data.org) {
    return (
      <section>
        <h1>No organizations yet</h1>
        <p>Create one through the API: <code>POST /api/v1/orgs</code>, or apply a definitions file with <code>bunting apply</code>.</p>
      </section>
    );
  }
  return (
    <section>
      <h1>{found.data.org}</h1>
      <p>This organization has no projects yet.</p>
    </section>
  );
}
