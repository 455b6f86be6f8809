// The rule engine in the browser: the core's web WebAssembly build, the very
// engine the edge worker runs. Loaded on first use (its own file, compiled
// while streaming).
import init, { Engine } from "./gen/core/bunting_core.js";
import wasmUrl from "./gen/core/bunting_core_bg.wasm?url";

let ready: Promise<unknown> | null = null;

/** The `Engine` class, once the module is compiled. */
export async function loadEngine(): Promise<typeof Engine> {
  ready ??= init({ module_or_path: wasmUrl });
  await ready;
  return Engine;
}

// A problem of a snapshot, as the engine reports it: `SnapshotProblem` in
// components/draftEngine.ts.

/** One evaluation result, as the engine reports it. */
export interface Evaluation {
  key?: string;
  value?: unknown;
  variant?: string;
  reason: string;
  errorCode?: string;
  errorMessage?: string;
  ruleId?: string;
  [more: string]: unknown;
}
