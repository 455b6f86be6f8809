// The quick start's OpenFeature hook (examples/browser/report-use.mjs) with a
// real OpenFeature client (@openfeature/server-sdk + the OFREP provider) on a
// loopback port: the flags the application used reach POST /exposures,
// batched per context, and every user's exposure reaches the ingest endpoint
// exactly once however often the flag is used.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { OpenFeature } from "@openfeature/server-sdk";
import { OFREPProvider } from "@openfeature/ofrep-provider";
import { startWorker, putKey, putSnapshot, readJson } from "./harness.mjs";
import { reportUse, MAX_FLAGS } from "../../examples/browser/report-use.mjs";

const KEY = "sdk-report-use";
const received = [];
let w;
let baseUrl;

before(async () => {
  w = await startWorker({
    listen: true,
    bindings: { INGEST_URL: "https://ingest.example/v1/ingest", INGEST_SECRET: "s", INGEST_FLUSH_SECONDS: "0" },
    outbound: async (request) => {
      received.push(await request.json());
      return new Response(null, { status: 204 });
    },
  });
  await putKey(w.kv, KEY, "production");
  // A browser's client key sees only flags available to client-side SDKs.
  const snapshot = readJson("examples/demo-snapshot.json");
  for (const flag of snapshot.flags) flag.clientSide = true;
  await putSnapshot(w.kv, "production", snapshot);
  baseUrl = new URL(w.url).origin;
  await OpenFeature.setProviderAndWait("report-use", new OFREPProvider({ baseUrl, headers: [["Authorization", `Bearer ${KEY}`]] }));
});
after(async () => {
  await OpenFeature.close();
  await w?.mf.dispose();
});

test("the after hook reports used flags in one batch per context; exposures count once per user", async () => {
  const reports = [];
  const errors = [];
  const hook = reportUse({
    baseUrl,
    sdkKey: KEY,
    delayMs: 60_000, // flushed explicitly below
    fetch: async (url, init) => {
      const r = await fetch(url, init);
      reports.push({ url, request: JSON.parse(init.body), response: await r.clone().json() });
      return r;
    },
    onError: (e) => errors.push(e),
  });
  const client = OpenFeature.getClient("report-use");
  client.addHooks(hook);
  for (const user of ["hook-1", "hook-2"]) {
    for (let render = 0; render < 3; render++) {
      const d = await client.getStringDetails("checkout-button-copy", "x", { targetingKey: user });
      assert.equal(d.reason, "SPLIT");
      await client.getBooleanDetails("instant-payouts", true, { targetingKey: user });
    }
  }
  await client.getBooleanDetails("no-such-flag", false, { targetingKey: "hook-1" }); // an error: not reported
  await hook.flush();
  assert.deepEqual(errors, []);
  assert.equal(reports.length, 2, "one report per context");
  // The two reports are sent at once: their answers may arrive in any order.
  reports.sort((a, b) => a.request.context.targetingKey.localeCompare(b.request.context.targetingKey));
  for (const [i, { url, request, response }] of reports.entries()) {
    assert.equal(url, `${baseUrl}/exposures`);
    assert.equal(request.context.targetingKey, `hook-${i + 1}`);
    assert.deepEqual(request.flags, ["checkout-button-copy", "instant-payouts"]);
    // The provider's single-flag evaluations recorded the exposure already.
    assert.deepEqual(response.results.map((r) => r.outcome), ["duplicate", "notSplit"]);
  }
  // A last user's exposure marks the end: every earlier one was sent before it.
  await client.getStringDetails("checkout-button-copy", "x", { targetingKey: "hook-marker" });
  const all = () => received.flatMap((b) => b.exposures ?? []);
  for (let i = 0; i < 100 && all().length < 3; i++) await sleep(20);
  const exposures = all();
  assert.equal(exposures.length, 3, "one exposure per user, the marker's last");
  assert.ok(exposures.every((e) => e.flag === "checkout-button-copy"));
});

test("a report is split at the endpoint's limit and failures go to onError", async () => {
  const bodies = [];
  const errors = [];
  const hook = reportUse({
    baseUrl: "https://flags.example",
    sdkKey: KEY,
    fetch: async (url, init) => {
      bodies.push(JSON.parse(init.body));
      return new Response("nope", { status: 503 });
    },
    onError: (e) => errors.push(e),
  });
  for (let i = 0; i < MAX_FLAGS + 5; i++) hook.after({ context: { targetingKey: "u" } }, { flagKey: `f${i}` });
  hook.after({ context: { targetingKey: "u" } }, { flagKey: "broken", errorCode: "GENERAL" });
  await hook.flush();
  assert.deepEqual(bodies.map((b) => b.flags.length), [MAX_FLAGS, 5]);
  assert.equal(errors.length, 2);
  assert.match(String(errors[0]), /HTTP 503/);
});
