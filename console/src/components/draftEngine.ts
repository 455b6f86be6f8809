// A draft snapshot in the browser's engine: the environment's live snapshot
// with one flag or segment replaced by what is being edited, loaded leniently
// by the core's WASM build. Its problems are the draft's validation (as you
// type); the engine evaluates the draft in "Try it".
import { useEffect, useRef, useState } from "preact/hooks";
import { loadEngine } from "../engine";
import type { Span } from "./RuleEditor";

/** An engine instance of the WASM build. */
export type EngineInstance = InstanceType<Awaited<ReturnType<typeof loadEngine>>>;

/** A snapshot document (docs/snapshot.md), as JSON. */
export type SnapshotDoc = Record<string, unknown> & { flags?: Record<string, unknown>[]; segments?: Record<string, unknown>[] };

/** A problem the engine found in a snapshot (`bunting_core::Problem`, serialized). */
export interface SnapshotProblem {
  entity?: string | null;
  path: string;
  /** With the position in front for a rule-language error (`1:15: …`). */
  message: string;
  parseError?: boolean;
  location?: { entity?: { kind: "flag" | "segment" | "layer"; index: number; key: string } | null; field: string };
  span?: Span | null;
}

/** The engine of a snapshot, its problems, or why it did not load. */
export interface Loaded {
  engine?: EngineInstance;
  problems: SnapshotProblem[];
  error?: string;
}

/** Loads `snapshot` leniently. The caller frees the engine. */
export async function loadSnapshot(snapshot: SnapshotDoc): Promise<Loaded> {
  const Engine = await loadEngine();
  try {
    const engine = new Engine(JSON.stringify(snapshot), true);
    return { engine, problems: (engine.problems as SnapshotProblem[]) ?? [] };
  } catch (e) {
    return { problems: [], error: e instanceof Error ? e.message : String(e) };
  }
}

/** `live` with flag `key`'s configuration fields replaced by `config`. */
export function withFlag(live: SnapshotDoc, key: string, config: Record<string, unknown>): SnapshotDoc {
  const { checksum: _, ...rest } = live;
  return {
    ...rest,
    flags: (live.flags ?? []).map((f) => (f.key === key ? { ...f, ...config } : f)),
  };
}

/** `live` with segment `key` replaced by (or, when new, extended with) `segment`; `null` removes it. */
export function withSegment(live: SnapshotDoc, key: string | null, segment: Record<string, unknown> | null): SnapshotDoc {
  const { checksum: _, ...rest } = live;
  const others = (live.segments ?? []).filter((s) => s.key !== key && (!segment || s.key !== segment.key));
  return { ...rest, segments: segment ? [...others, segment] : others };
}

/** The problems about one entity. */
export function problemsOf(problems: SnapshotProblem[], kind: "flag" | "segment", key: string): SnapshotProblem[] {
  return problems.filter((p) => p.location?.entity?.kind === kind && p.location.entity.key === key);
}

/**
 * The engine of `snapshot` (recomputed `delay` ms after it last changed;
 * pass a memoized object). The previous engine is freed once replaced.
 */
export function useDraftEngine(snapshot: SnapshotDoc | undefined, delay = 120): Loaded & { pending: boolean } {
  const [state, setState] = useState<Loaded>({ problems: [] });
  const [pending, setPending] = useState(false);
  const generation = useRef(0);
  const current = useRef<EngineInstance | undefined>(undefined);
  // Keyed by identity: callers memoize the document (a snapshot of 1,000
  // flags is not serialized on every render).
  useEffect(() => {
    if (!snapshot) return;
    const mine = ++generation.current;
    setPending(true);
    const timer = setTimeout(async () => {
      const loaded = await loadSnapshot(snapshot);
      if (mine !== generation.current) {
        loaded.engine?.free();
        return;
      }
      const old = current.current;
      current.current = loaded.engine;
      setState(loaded);
      setPending(false);
      // Freed after the render that stops using it.
      if (old) setTimeout(() => old.free(), 0);
    }, delay);
    return () => clearTimeout(timer);
  }, [snapshot]);
  useEffect(
    () => () => {
      current.current?.free();
      current.current = undefined;
    },
    [],
  );
  return { ...state, pending };
}
