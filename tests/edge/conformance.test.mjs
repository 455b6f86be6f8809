// Every conformance fixture (tests/conformance/*.json) evaluated over HTTP
// through the worker: value, variant, reason, errorCode (and ruleId /
// prerequisiteFailed where the fixture states them) must equal the
// expectations every other host meets.
//
// Over HTTP: each fixture's snapshot is stored as its own environment; the
// fixture's `now` is sent as `X-Bunting-Now` (honoured because the test
// worker sets ALLOW_TIME_OVERRIDE=1); EDGE_ATTRIBUTES=0 so the context is
// evaluated exactly as sent. A case with `expectedType` sends it as the
// `?type=` query parameter (a bunting extension: plain OFREP clients check
// the type client-side, see openfeature.test.mjs).
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { startWorker, putKey, putSnapshot, post, root } from "./harness.mjs";

const dir = path.join(root, "tests", "conformance");
const fixtures = readdirSync(dir)
  .filter((f) => f.endsWith(".json"))
  .sort()
  .map((f) => ({ file: f, name: f.replace(/\.json$/, ""), ...JSON.parse(readFileSync(path.join(dir, f), "utf8")) }));

let w;
before(async () => {
  w = await startWorker({ bindings: { ALLOW_TIME_OVERRIDE: "1", EDGE_ATTRIBUTES: "0" } });
  for (const fx of fixtures) {
    const env = `conformance-${fx.name}`;
    await putKey(w.kv, `key-${fx.name}`, env, "server");
    await putSnapshot(w.kv, env, { ...fx.snapshot, environment: env });
  }
});
after(async () => w?.mf.dispose());


/**
 * An OFREP item (success or error) in the fixtures' result shape. OFREP has
 * no `DEFAULT` reason nor `TYPE_MISMATCH` code: the worker serves OFREP's
 * (`TARGETING_MATCH`, `GENERAL`; the harness checks every body against the
 * OFREP schema) and keeps bunting's in `metadata.buntingReason` /
 * `metadata.buntingErrorCode`, which is what the fixtures state.
 */
function asResult(item) {
  if (item.errorCode) {
    return { value: null, variant: null, reason: "ERROR", errorCode: item.metadata?.buntingErrorCode ?? item.errorCode };
  }
  return {
    value: item.value, variant: item.variant ?? null, reason: item.metadata?.buntingReason ?? item.reason, errorCode: null,
    ruleId: item.metadata?.ruleId, prerequisiteFailed: item.metadata?.prerequisiteFailed,
  };
}

function check(expect, got, label) {
  const want = { value: expect.value, variant: expect.variant, reason: expect.reason, errorCode: expect.errorCode };
  const have = { value: got.value, variant: got.variant, reason: got.reason, errorCode: got.errorCode };
  if (expect.ruleId !== undefined) { want.ruleId = expect.ruleId; have.ruleId = got.ruleId; }
  if (expect.prerequisiteFailed !== undefined) { want.prerequisiteFailed = expect.prerequisiteFailed; have.prerequisiteFailed = got.prerequisiteFailed; }
  assert.deepEqual(have, want, label);
}

let total = 0;
for (const fx of fixtures) {
  describe(`conformance ${fx.file} over HTTP`, () => {
    test(`${fx.cases.length} cases`, async () => {
      const key = `key-${fx.name}`;
      const failures = [];
      for (const c of fx.cases) {
        const headers = { "X-Bunting-Now": String(Date.parse(c.now)) };
        const body = { context: c.context };
        try {
          if (c.flag !== undefined && c.flag !== null) {
            const query = c.expectedType ? `?type=${c.expectedType}` : "";
            const r = await post(w, `/ofrep/v1/evaluate/flags/${encodeURIComponent(c.flag)}${query}`, body, { key, headers });
            const item = await r.json();
            const wantStatus = item.errorCode === "FLAG_NOT_FOUND" ? 404 : item.errorCode ? 400 : 200;
            assert.equal(r.status, wantStatus, `${c.name}: HTTP status`);
            check(c.expect, asResult(item), c.name);
          } else {
            const r = await post(w, "/ofrep/v1/evaluate/flags", body, { key, headers });
            assert.equal(r.status, 200, `${c.name}: HTTP status`);
            const { flags } = await r.json();
            const byKey = Object.fromEntries(flags.map((f) => [f.key, f]));
            assert.deepEqual(Object.keys(byKey).sort(), Object.keys(c.expectAll).sort(), `${c.name}: flag keys`);
            for (const [k, expect] of Object.entries(c.expectAll)) {
              check(expect, asResult(byKey[k]), `${c.name}: flag ${k}`);
            }
          }
          total++;
        } catch (e) {
          failures.push(e.message);
        }
      }
      assert.deepEqual(failures, [], `${failures.length} failing case(s) in ${fx.file}`);
    });
  });
}

test("every fixture case ran", { concurrency: false }, () => {
  // Runs after the describe blocks above (node:test runs top-level tests in order).
  const expected = fixtures.reduce((n, fx) => n + fx.cases.length, 0);
  assert.equal(total, expected);
  console.log(`conformance over HTTP: ${total} cases in ${fixtures.length} fixture files`);
});
