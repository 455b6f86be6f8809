// A flag configuration as the targeting editor holds it: the API's
// ConfigSpec (rules, fallthrough, prerequisites; docs/snapshot.md) with a
// stable local id per rule, so an editor moves with its rule.
import type { Problem } from "../../api";
import { fieldOf } from "../../api";
import type { SnapshotProblem } from "../../components/draftEngine";

export interface WeightedVariant {
  variant: string;
  weight: number;
}
export interface Step {
  at: string;
  percentage: number;
}
export interface Schedule {
  variant: string;
  otherwise: string;
  steps: Step[];
}
/** What a rule or the fallthrough serves. */
export type Serve = { variant: string } | { rollout: WeightedVariant[] } | { schedule: Schedule };

export interface Rule {
  id?: string;
  description?: string;
  condition: string;
  serve: Serve;
}
export interface Prerequisite {
  flag: string;
  variant: string;
}

/** The configuration of a flag in one environment. */
export interface Config {
  enabled: boolean;
  rules: Rule[];
  fallthrough: Serve;
  prerequisites: Prerequisite[];
}

/** A rule being edited. */
export interface RuleDraft extends Rule {
  uid: number;
}

/** The editable part of a configuration (`enabled` is the kill switch's). */
export interface Draft {
  rules: RuleDraft[];
  fallthrough: Serve;
  prerequisites: Prerequisite[];
}

let uids = 0;
/** A fresh local id. */
export const nextUid = () => ++uids;

export function toDraft(c: Config): Draft {
  return {
    rules: (c.rules ?? []).map((r) => ({ ...structuredClone(r), uid: nextUid() })),
    fallthrough: structuredClone(c.fallthrough),
    prerequisites: structuredClone(c.prerequisites ?? []),
  };
}

/** The configuration a draft makes, with `enabled` as it is. */
export function fromDraft(d: Draft, enabled: boolean): Config {
  return {
    enabled,
    rules: d.rules.map(({ uid: _, ...r }) => {
      const out: Rule = { condition: r.condition, serve: r.serve };
      if (r.id?.trim()) out.id = r.id.trim();
      if (r.description?.trim()) out.description = r.description.trim();
      return out;
    }),
    fallthrough: d.fallthrough,
    prerequisites: d.prerequisites,
  };
}

/** Whether a draft differs from the configuration it started from. */
export function dirty(d: Draft, base: Config): boolean {
  // Both through fromDraft, so the fields are in the same order.
  return JSON.stringify(fromDraft(d, true)) !== JSON.stringify(fromDraft(toDraft(base), true));
}

/** A problem from the engine or the API, located by its field in the flag. */
export interface FieldProblem {
  field: string;
  message: string;
  span?: { line: number; column: number; length: number } | null;
}

export function fromEngine(p: SnapshotProblem): FieldProblem {
  return { field: p.location?.field ?? p.path, message: p.message, span: p.span };
}

export function fromApi(p: Problem): FieldProblem {
  return { field: fieldOf(p), message: p.message, span: p.location?.span };
}

/** The problems whose field is `field` or inside it. */
export function at(problems: FieldProblem[], field: string): FieldProblem[] {
  return problems.filter((p) => p.field === field || p.field.startsWith(`${field}.`) || p.field.startsWith(`${field}[`));
}

/** The kind of a serve. */
export function serveKind(s: Serve): "variant" | "rollout" | "schedule" {
  return "rollout" in s ? "rollout" : "schedule" in s ? "schedule" : "variant";
}

/** The sum of a rollout's weights, to three decimals. */
export function weightSum(r: WeightedVariant[]): number {
  return Math.round(r.reduce((a, w) => a + (Number.isFinite(w.weight) ? w.weight : 0), 0) * 1000) / 1000;
}
