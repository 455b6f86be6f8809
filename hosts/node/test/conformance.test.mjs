// Every case of tests/conformance/*.json through the OpenFeature provider:
// single-flag cases through the OpenFeature client's typed get…Details
// (the case's expectedType; without one, the flag's declared type, so the
// type check never changes the outcome), all-flag cases through the
// provider's resolveAll (the OpenFeature server SDK has no bulk call). Each
// fixture's snapshot is sealed and served by an in-memory source; the
// case's `now` is the client's clock.
//
// OpenFeature contexts are objects: the few cases whose context is a
// string, number, null or array cannot cross the SDK (it spreads contexts
// into one object), so they run through BuntingClient.evaluate /
// evaluateAll, the layer under the provider.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { OpenFeature } from "@openfeature/server-sdk";
import { BuntingProvider } from "../dist/index.js";
import { root, seal } from "./helpers.mjs";

const dir = path.join(root, "tests", "conformance");
const fixtures = readdirSync(dir).filter((f) => f.endsWith(".json")).sort()
  .map((file) => ({ file, ...JSON.parse(readFileSync(path.join(dir, file), "utf8")) }));

const DEFAULTS = { boolean: false, string: "\u0000default", number: -123456.5, object: { default: true } };
const GETTERS = { boolean: "getBooleanDetails", string: "getStringDetails", number: "getNumberDetails", object: "getObjectDetails" };

function isObjectContext(c) {
  return typeof c === "object" && c !== null && !Array.isArray(c);
}

/** The fixture's fields of an OpenFeature result (defaults stand for "no value"). */
function fromDetails(d, dflt) {
  const error = d.errorCode !== undefined;
  return {
    value: error ? (assert.deepEqual(d.value, dflt, "the default on error"), null) : d.value,
    variant: d.variant ?? null,
    reason: d.reason,
    errorCode: d.errorCode ?? null,
    ruleId: d.flagMetadata?.ruleId,
    prerequisiteFailed: d.flagMetadata?.prerequisiteFailed,
  };
}

function fromEvaluation(e) {
  return {
    value: e.value ?? null, variant: e.variant ?? null, reason: e.reason, errorCode: e.errorCode ?? null,
    ruleId: e.ruleId, prerequisiteFailed: e.prerequisiteFailed,
  };
}

function check(expect, got, label) {
  const want = { value: expect.value, variant: expect.variant, reason: expect.reason, errorCode: expect.errorCode };
  const have = { value: got.value, variant: got.variant, reason: got.reason, errorCode: got.errorCode };
  if (expect.ruleId !== undefined) { want.ruleId = expect.ruleId; have.ruleId = got.ruleId; }
  if (expect.prerequisiteFailed !== undefined) { want.prerequisiteFailed = expect.prerequisiteFailed; have.prerequisiteFailed = got.prerequisiteFailed; }
  assert.deepEqual(have, want, label);
}

after(() => OpenFeature.close());

const counts = { typed: 0, all: 0, direct: 0 };
for (const fx of fixtures) {
  test(`conformance ${fx.file}: ${fx.cases.length} cases through the provider`, async () => {
    const text = JSON.stringify(seal(fx.snapshot));
    let now = 0;
    const provider = new BuntingProvider({
      source: { name: "memory", location: fx.file, fetch: async () => ({ kind: "snapshot", text }) },
      lenient: fx.lenient ?? false,
      clock: () => now,
    });
    const domain = `conformance-${fx.file}`;
    await OpenFeature.setProviderAndWait(domain, provider);
    const client = OpenFeature.getClient(domain);
    const flagTypes = Object.fromEntries((fx.snapshot.flags ?? []).map((f) => [f.key, f.type]));
    const failures = [];
    for (const c of fx.cases) {
      now = Date.parse(c.now);
      try {
        if (c.flag !== undefined && c.flag !== null) {
          if (isObjectContext(c.context)) {
            const type = c.expectedType ?? flagTypes[c.flag] ?? "boolean";
            const d = await client[GETTERS[type]](c.flag, DEFAULTS[type], c.context);
            check(c.expect, fromDetails(d, DEFAULTS[type]), c.name);
            counts.typed++;
          } else {
            const e = provider.client.evaluate(c.flag, c.context, { expectedType: c.expectedType, now });
            check(c.expect, fromEvaluation(e), c.name);
            counts.direct++;
          }
        } else {
          let byKey;
          if (isObjectContext(c.context)) {
            const all = provider.resolveAll(c.context);
            byKey = Object.fromEntries(Object.entries(all).map(([k, d]) => [k, fromDetails(d, null)]));
            counts.all++;
          } else {
            byKey = Object.fromEntries(provider.client.evaluateAll(c.context, { now }).map((e) => [e.key, fromEvaluation(e)]));
            counts.direct++;
          }
          assert.deepEqual(Object.keys(byKey).sort(), Object.keys(c.expectAll).sort(), `${c.name}: flag keys`);
          for (const [k, expect] of Object.entries(c.expectAll)) check(expect, byKey[k], `${c.name}: flag ${k}`);
        }
      } catch (e) {
        failures.push(e.message);
      }
    }
    assert.deepEqual(failures, [], `${failures.length} failing case(s) in ${fx.file}`);
  });
}

test("every fixture case ran", () => {
  const expected = fixtures.reduce((n, fx) => n + fx.cases.length, 0);
  assert.equal(counts.typed + counts.all + counts.direct, expected);
  console.log(`conformance: ${expected} cases in ${fixtures.length} files: ${counts.typed} through typed get…Details, ` +
    `${counts.all} through resolveAll, ${counts.direct} (non-object contexts) through BuntingClient`);
});
