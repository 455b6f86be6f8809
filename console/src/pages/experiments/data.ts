// The experiments area's reads: experiments of an environment, the
// project's flags (for their variants) and metrics, one experiment with its
// ETag, and its results. One request per list, never one per row.
import { api, must, withEtag, type Schema } from "../../api";

export type Experiment = Schema<"ExperimentRecord">;
export type ExperimentSpec = Schema<"ExperimentSpec">;
export type Metric = Schema<"MetricRecord">;
export type Flag = Schema<"FlagRecord">;
export type Results = Schema<"ExperimentResults">;
export type Status = Schema<"ExperimentStatus">;

export const STATUSES: Status[] = ["draft", "running", "stopped", "decided"];

/** The experiments of an environment. */
export async function experiments(org: string, project: string, env: string): Promise<Experiment[]> {
  return must(
    await api.GET("/api/v1/orgs/{org}/projects/{project}/environments/{env}/experiments", {
      params: { path: { org, project, env } },
    }),
  ).items;
}

/** The metrics of the project. */
export async function metrics(org: string, project: string): Promise<Metric[]> {
  return must(await api.GET("/api/v1/orgs/{org}/projects/{project}/metrics", { params: { path: { org, project } } })).items;
}

/** Every flag of the project (pages of 500). */
export async function flags(org: string, project: string): Promise<Flag[]> {
  const out: Flag[] = [];
  let after: string | undefined;
  do {
    const page = must(
      await api.GET("/api/v1/orgs/{org}/projects/{project}/flags", {
        params: { path: { org, project }, query: { limit: 500, after } },
      }),
    );
    out.push(...page.items);
    after = page.next ?? undefined;
  } while (after);
  return out;
}

/** The path parameters of one experiment. */
export interface Where {
  org: string;
  project: string;
  env: string;
  experiment: string;
}

/** One experiment and its ETag (for `If-Match`). */
export async function experiment(w: Where): Promise<{ data: Experiment; etag: string }> {
  return withEtag(
    await api.GET("/api/v1/orgs/{org}/projects/{project}/environments/{env}/experiments/{experiment}", { params: { path: { ...w } } }),
  );
}

/** An experiment's results (JSON). */
export async function results(w: Where): Promise<Results> {
  return must(
    await api.GET("/api/v1/orgs/{org}/projects/{project}/environments/{env}/experiments/{experiment}/results", {
      params: { path: { ...w } },
      parseAs: "json",
    }),
  ) as Results;
}

/** The variants of a flag, in the flag's order. */
export function variantsOf(flag: Flag | undefined): string[] {
  return Object.keys((flag?.variants ?? {}) as Record<string, unknown>);
}

/** The arms of an experiment: the allocation's positive-weight variants, else the flag's variants. */
export function armsOf(x: ExperimentSpec, flag: Flag | undefined): string[] {
  const allocation = (x.allocation ?? {}) as Record<string, number>;
  const planned = Object.keys(allocation).filter((v) => (allocation[v] ?? 0) > 0);
  const all = planned.length ? planned : variantsOf(flag);
  return [x.control, ...all.filter((v) => v !== x.control)];
}
