// The benchmark's snapshot and contexts, shared by bench.mjs and
// profile.mjs (neither is a test: node --test only runs *.test.mjs).

// Mirrors core/benches/engine.rs: two rules (an `ends_with || segment()` rule
// and a three-clause `in` + `semver >=` + `!(==)` rule with a 50/50 rollout),
// a 90/10 rollout in the fallthrough, metadata.
//
// `edge`: the "launch" rule reads the edge's attributes instead of the
// client's country (`geo.country` from request.cf, `device.type` from the
// User-Agent), so the worker builds both for every request, as for a
// snapshot that targets by place or device.
export function flag(i, { edge = false } = {}) {
  const where = edge ? 'geo.country in ["US", "CA", "GB"] && device.type != "bot"' : 'country in ["US", "CA", "GB"]';
  return {
    key: `flag-${i}`,
    type: "string",
    variants: { control: "control", treatment: "treatment", off: "off" },
    offVariant: "off",
    rules: [
      { id: "internal", condition: 'email ends_with "@bunting.dev" || segment("staff")',
        serve: { variant: "treatment" } },
      { id: "launch",
        condition: `${where} && semver(app.version) >= "2.${i % 7}.0" && !(plan == "free")`,
        serve: { rollout: [{ variant: "control", weight: 50 }, { variant: "treatment", weight: 50 }] } },
    ],
    fallthrough: { rollout: [{ variant: "control", weight: 90 }, { variant: "treatment", weight: 10 }] },
    metadata: { description: `benchmark flag ${i}`, owner: "perf", tags: ["bench"] },
  };
}

// Not sealed (no `checksum`): sealing needs bunting-core's canonical
// serialization. Natively the checksum is ~1.2 ms of the 9.1 ms load.
export function snapshot(environment, n, version = 1, { edge = false } = {}) {
  return JSON.stringify({
    schemaVersion: 1, environment, version,
    generatedAt: "2026-11-25T00:00:00Z",
    segments: [{ key: "staff", included: ["admin-1", "admin-2"], condition: 'department == "eng"' }],
    flags: Array.from({ length: n }, (_, i) => flag(i, { edge })),
  });
}

// The context of core/benches/engine.rs: matches "launch" for flags with
// i % 7 <= 4, so both rules and a rollout are evaluated.
export const CONTEXT = { targetingKey: "user-12345", email: "jane@example.com", country: "CA",
  plan: "pro", app: { version: "2.4.1" }, department: "sales" };
export const BODY = JSON.stringify({ context: CONTEXT });
// The same context with a targetingKey autocannon makes unique per request.
export const UNIQUE_BODY = JSON.stringify({ context: { ...CONTEXT, targetingKey: "user-[<id>]" } });
