// The package's engine against native bunting-core on seeded random
// contexts: for each snapshot and evaluation time, the native `evaluate`
// example (`cargo build -p bunting-core --example evaluate`; found under
// BUNTING_TARGET_DIR, default the repository's target/) evaluates every
// flag for every context; the client's evaluateAll and evaluate, and the
// OpenFeature client's typed getters, must agree with it.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { tmpdir } from "node:os";
import path from "node:path";
import { OpenFeature } from "@openfeature/server-sdk";
import { BuntingProvider } from "../dist/index.js";
import { generator, nowGenerator } from "./contexts.mjs";
import { readJson, seal, targetDir } from "./helpers.mjs";

const native = path.join(targetDir, "debug", "examples", "evaluate");
// Never skipped: a missing reference fails, so `cargo xtask test` cannot
// pass without the comparison.
before(() => assert.ok(existsSync(native), `${native} is not built (cargo build -p bunting-core --example evaluate)`));
const CONTEXTS = Number(process.env.BUNTING_DIFF_CONTEXTS ?? 1000);
const GETTERS = { boolean: "getBooleanDetails", string: "getStringDetails", number: "getNumberDetails", object: "getObjectDetails" };
const DEFAULTS = { boolean: false, string: "\u0000", number: -0.5, object: { d: 1 } };

after(() => OpenFeature.close());

const cases = [
  ["wasm-host/tests/data/prop_snapshot.json", 1],
  ["wasm-host/tests/data/prop_snapshot.json", 2],
  ["examples/demo-snapshot.json", 3],
];

let compared = 0;
for (const [file, seed] of cases) {
  test(`differential: ${file}, ${CONTEXTS} contexts (seed ${seed})`, async () => {
    const snapshot = seal(readJson(file));
    const dir = mkdtempSync(path.join(tmpdir(), "bunting-diff-"));
    const next = generator(seed);
    const contexts = Object.fromEntries(Array.from({ length: CONTEXTS }, (_, i) => [`c${i}`, next()]));
    const now = nowGenerator(seed)();
    writeFileSync(path.join(dir, "snapshot.json"), JSON.stringify(snapshot));
    writeFileSync(path.join(dir, "contexts.json"), JSON.stringify(contexts));
    const expected = JSON.parse(execFileSync(native, [path.join(dir, "snapshot.json"), path.join(dir, "contexts.json"), String(now)],
      { maxBuffer: 1 << 28, encoding: "utf8" }));

    const text = JSON.stringify(snapshot);
    const provider = new BuntingProvider({ source: { name: "memory", location: file, fetch: async () => ({ kind: "snapshot", text }) }, clock: () => now });
    const domain = `diff-${seed}`;
    await OpenFeature.setProviderAndWait(domain, provider);
    const of = OpenFeature.getClient(domain);
    const types = Object.fromEntries(snapshot.flags.map((f) => [f.key, f.type]));
    const mismatches = [];
    for (const [name, ctx] of Object.entries(contexts)) {
      const want = expected[name];
      const all = provider.client.evaluateAll(ctx, { now });
      try {
        assert.deepEqual(all, want);
      } catch {
        mismatches.push(`${name} evaluateAll: ${JSON.stringify(ctx)}`);
      }
      for (const w of want) {
        const one = provider.client.evaluate(w.key, ctx, { now });
        try { assert.deepEqual(one, w); } catch { mismatches.push(`${name} evaluate ${w.key}: ${JSON.stringify(ctx)}`); }
        const type = types[w.key];
        const d = await of[GETTERS[type]](w.key, DEFAULTS[type], ctx);
        const got = { value: d.errorCode ? undefined : d.value, variant: d.variant, reason: d.reason, errorCode: d.errorCode };
        const exp = { value: w.value, variant: w.variant, reason: w.reason, errorCode: w.errorCode };
        try { assert.deepEqual(got, exp); } catch { mismatches.push(`${name} OpenFeature ${w.key}: ${JSON.stringify(ctx)}`); }
        compared++;
      }
    }
    assert.deepEqual(mismatches.slice(0, 5), [], `${mismatches.length} mismatch(es)`);
  });
}

test("differential: summary", () => {
  console.log(`differential: ${compared} (context, flag) pairs identical to native through evaluateAll, evaluate and OpenFeature`);
  assert.ok(compared >= 3 * CONTEXTS);
});
