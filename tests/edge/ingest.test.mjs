// Exposures (SPLIT evaluations of the single-flag endpoint, and flags
// reported used through POST /exposures; a bulk fetch records none) and
// metric events (POST /events) sent to INGEST_URL with ctx.waitUntil; ingest
// failures never affect evaluations.
import { test, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { startWorker, putKey, putSnapshot, post, readJson } from "./harness.mjs";

const KEY = "sdk-ingest";
const INGEST_URL = "https://ingest.example/v1/ingest";
const received = [];
let ingestStatus = 204;
let w;

before(async () => {
  w = await startWorker({
    bindings: { INGEST_URL, INGEST_SECRET: "ingest-s3cret", INGEST_FLUSH_SECONDS: "0", OPERATOR_SECRET: "ingest-operator" },
    outbound: async (request) => {
      received.push({ url: request.url, auth: request.headers.get("authorization"), body: await request.json() });
      return new Response(null, { status: ingestStatus });
    },
  });
  await putKey(w.kv, KEY, "production", "server");
  await putSnapshot(w.kv, "production", readJson("examples/demo-snapshot.json"));
});
after(async () => w?.mf.dispose());
beforeEach(() => {
  received.length = 0;
  ingestStatus = 204;
});

async function until(cond, what) {
  for (let i = 0; i < 100 && !cond(); i++) await sleep(20);
  assert.ok(cond(), `timed out waiting for ${what}`);
}

// The ingest counters of /healthz, shown with the operator secret.
const health = async () =>
  (await (await w.fetch("/healthz", { headers: { Authorization: "Bearer ingest-operator" } })).json()).ingest;

test("a SPLIT evaluation sends an exposure with a hashed key; other reasons do not", async () => {
  let r = await post(w, "/ofrep/v1/evaluate/flags/instant-payouts", { context: { targetingKey: "user-1" } }, { key: KEY });
  assert.equal((await r.json()).reason, "DISABLED");
  r = await post(w, "/ofrep/v1/evaluate/flags/checkout-button-copy", { context: { targetingKey: "user-1" } }, { key: KEY, cf: { country: "DE" } });
  const served = await r.json();
  assert.equal(served.reason, "SPLIT");
  await until(() => received.length === 1, "the exposure POST");
  const [{ url, auth, body }] = received;
  assert.equal(url, INGEST_URL);
  assert.equal(auth, "Bearer ingest-s3cret");
  assert.equal(body.kind, "exposures");
  assert.equal(body.exposures.length, 1);
  const e = body.exposures[0];
  assert.equal(e.flag, "checkout-button-copy");
  assert.equal(e.variant, served.variant);
  assert.equal(e.environment, "production");
  assert.equal(e.snapshotVersion, 42);
  assert.equal(e.country, "DE");
  assert.match(e.bucketingKeyHash, /^[0-9a-f]{32}$/);
  assert.ok(!JSON.stringify(body).includes("user-1"), "raw targeting keys never leave the edge");
});

test("a snapshot reading neither geo nor device still records both with its exposures", async () => {
  // The worker builds `geo` and `device` only when the snapshot reads them;
  // an exposure gets its country and device type all the same.
  const STAGING = "sdk-ingest-staging";
  await putKey(w.kv, STAGING, "staging", "server");
  await putSnapshot(w.kv, "staging", {
    schemaVersion: 1, environment: "staging", version: 7, generatedAt: "2026-12-06T00:00:00Z",
    flags: [
      { key: "split", type: "boolean", variants: { on: true, off: false }, offVariant: "off",
        rules: [{ id: "pro", condition: "plan == \"pro\"", serve: { variant: "on" } }],
        fallthrough: { rollout: [{ variant: "on", weight: 50 }, { variant: "off", weight: 50 }] } },
    ],
  });
  const IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1";
  const ask = (context, cf) => post(w, "/ofrep/v1/evaluate/flags/split", { context }, { key: STAGING, cf, headers: { "User-Agent": IPHONE } });
  // A targeting match records nothing; a split records its country and device type.
  let r = await ask({ targetingKey: "s-1", plan: "pro" }, { country: "JP" });
  assert.equal((await r.json()).reason, "TARGETING_MATCH");
  r = await ask({ targetingKey: "s-1", geo: { country: "FR" }, device: { type: "desktop" } }, { country: "JP" });
  const served = await r.json();
  assert.equal(served.reason, "SPLIT");
  await until(() => received.length === 1, "the exposure POST");
  const [e] = received[0].body.exposures;
  assert.equal(e.flag, "split");
  assert.equal(e.environment, "staging");
  assert.equal(e.variant, served.variant);
  assert.equal(e.country, "JP", "the edge's country, not the client's");
  assert.equal(e.deviceType, "mobile", "the edge's device type, not the client's");
});

test("bulk evaluation records no exposure; POST /exposures records the flags reported", async () => {
  const r = await post(w, "/ofrep/v1/evaluate/flags", { context: { targetingKey: "user-2" } }, { key: KEY });
  const flags = (await r.json()).flags;
  const splits = flags.filter((f) => f.reason === "SPLIT");
  assert.ok(splits.length >= 2);
  const notSplit = flags.find((f) => f.reason !== "SPLIT" && !f.errorCode);
  // The app used one split flag, one other flag and one it made up.
  const used = splits[0];
  const rep = await post(w, "/exposures", { context: { targetingKey: "user-2" }, flags: [used.key, notSplit.key, "no-such-flag"] }, { key: KEY });
  assert.equal(rep.status, 202);
  assert.deepEqual(await rep.json(), { recorded: 1, forwarded: true, results: [
    { key: used.key, outcome: "recorded" },
    { key: notSplit.key, outcome: "notSplit" },
    { key: "no-such-flag", outcome: "flagNotFound" },
  ] });
  // The report's flush sends everything buffered: the bulk fetch added nothing.
  await until(() => received.length === 1, "the exposure POST");
  const sent = received[0].body.exposures;
  assert.deepEqual(sent.map((e) => [e.flag, e.variant]), [[used.key, used.variant]]);
  assert.match(sent[0].bucketingKeyHash, /^[0-9a-f]{32}$/);
  assert.equal(sent[0].snapshotVersion, 42);
});

test("POST /exposures: the variant is evaluated again, never taken from the client", async () => {
  const split = async (user) => (await (await post(w, "/ofrep/v1/evaluate/flags/checkout-button-copy", { context: { targetingKey: user } }, { key: KEY })).json());
  // Two users for whom the split serves different variants.
  const first = await split("v-0");
  let other;
  let users = 1;
  for (; users < 50 && !other; users++) {
    const s = await split(`v-${users}`);
    if (s.variant !== first.variant) other = s;
  }
  assert.ok(other, "the split serves two variants");
  await until(() => received.flatMap((b) => b.body.exposures).length === users, "the single-flag exposures");
  received.length = 0;
  // A claimed variant is refused as an unknown field.
  const claimed = await post(w, "/exposures", { context: { targetingKey: "v-0" }, flags: ["checkout-button-copy"], variant: other.variant }, { key: KEY });
  assert.equal(claimed.status, 400);
  assert.equal((await claimed.json()).errorCode, "GENERAL");
  // A fresh user reported: recorded with the variant the edge serves it.
  const rep = await post(w, "/exposures", { context: { targetingKey: "v-fresh" }, flags: ["checkout-button-copy"] }, { key: KEY });
  assert.equal((await rep.json()).recorded, 1);
  await until(() => received.length === 1, "the exposure POST");
  assert.equal(received[0].body.exposures[0].variant, (await split("v-fresh")).variant);
});

test("exposures are deduplicated per user, flag and variant: polling and repeated reports count once", async () => {
  const ctx = { context: { targetingKey: "user-dedup" } };
  for (let i = 0; i < 3; i++) {
    const r = await post(w, "/ofrep/v1/evaluate/flags/checkout-button-copy", ctx, { key: KEY });
    assert.equal((await r.json()).reason, "SPLIT");
  }
  const rep = await post(w, "/exposures", { ...ctx, flags: ["checkout-button-copy", "checkout-button-copy"] }, { key: KEY });
  assert.deepEqual((await rep.json()).results.map((x) => x.outcome), ["duplicate", "duplicate"]);
  // Another user's report flushes whatever waits: one exposure of user-dedup in all.
  const other = await post(w, "/exposures", { context: { targetingKey: "user-dedup-2" }, flags: ["checkout-button-copy"] }, { key: KEY });
  assert.equal((await other.json()).recorded, 1);
  await until(() => received.flatMap((b) => b.body.exposures).length >= 2, "the exposure POSTs");
  const all = received.flatMap((b) => b.body.exposures);
  assert.equal(all.length, 2);
  assert.notEqual(all[0].bucketingKeyHash, all[1].bucketingKeyHash);
});

test("POST /exposures: bad input is refused with typed errors; a key is required", async () => {
  const cases = [
    ["{nope", 400, "PARSE_ERROR"],
    [[], 400, "INVALID_CONTEXT"],
    [{ context: "u", flags: ["a"] }, 400, "INVALID_CONTEXT"],
    [{ context: {} }, 400, "GENERAL"],
    [{ flags: [] }, 400, "GENERAL"],
    [{ flags: Array.from({ length: 101 }, (_, i) => `f${i}`) }, 400, "GENERAL"],
  ];
  for (const [body, status, code] of cases) {
    const r = await post(w, "/exposures", body, { key: KEY });
    assert.equal(r.status, status, JSON.stringify(body));
    const b = await r.json();
    assert.equal(b.errorCode, code, JSON.stringify(body));
    assert.equal(typeof b.errorDetails, "string");
  }
  const items = await post(w, "/exposures", { flags: ["ok", 7, "", "x".repeat(300)] }, { key: KEY });
  assert.deepEqual((await items.json()).invalid.map((i) => i.index), [1, 2, 3]);
  const big = await post(w, "/exposures", JSON.stringify({ flags: ["a"], context: { pad: "x".repeat(70 * 1024) } }), { key: KEY });
  assert.equal(big.status, 413);
  await big.body?.cancel();
  const anonymous = await post(w, "/exposures", { flags: ["checkout-button-copy"] });
  assert.equal(anonymous.status, 401);
  await anonymous.body?.cancel();
  const wrong = await w.fetch("/exposures");
  assert.equal(wrong.status, 405);
  assert.equal(wrong.headers.get("allow"), "POST, OPTIONS");
  await wrong.body?.cancel();
});

test("POST /exposures from a browser without the anonymous cookie mints none and records nothing", async () => {
  const r = await post(w, "/exposures", { context: {}, flags: ["checkout-button-copy"] }, { key: KEY, headers: { Origin: "https://app.example" } });
  assert.equal(r.status, 202);
  assert.equal(r.headers.get("set-cookie"), null);
  const b = await r.json();
  assert.equal(b.recorded, 0);
  assert.notEqual(b.results[0].outcome, "recorded");
  // With the cookie the evaluation set, the same visitor's exposure is recorded.
  const ev = await post(w, "/ofrep/v1/evaluate/flags/checkout-button-copy", { context: {} }, { key: KEY, headers: { Origin: "https://app.example" } });
  const cookie = ev.headers.get("set-cookie").split(";")[0];
  const served = await ev.json();
  assert.equal(served.reason, "SPLIT");
  await until(() => received.length === 1, "the evaluation's exposure");
  const rep = await post(w, "/exposures", { context: {}, flags: ["checkout-button-copy"] }, { key: KEY, headers: { Origin: "https://app.example", Cookie: cookie } });
  assert.deepEqual((await rep.json()).results, [{ key: "checkout-button-copy", outcome: "duplicate" }]);
  assert.equal(received[0].body.exposures[0].variant, served.variant);
});

test("a failing ingest endpoint does not fail evaluations; failures are counted", async () => {
  ingestStatus = 503;
  const before = (await health()).failedRequests;
  const r = await post(w, "/ofrep/v1/evaluate/flags/checkout-button-copy", { context: { targetingKey: "user-3" } }, { key: KEY });
  assert.equal(r.status, 200);
  assert.equal((await r.json()).reason, "SPLIT");
  await until(() => received.length === 1, "the exposure POST");
  let h;
  for (let i = 0; i < 50; i++) {
    h = await health();
    if (h.failedRequests > before) break;
    await sleep(20);
  }
  assert.equal(h.failedRequests, before + 1);
  assert.match(h.lastError, /503/);
  assert.ok(h.exposuresBuffered >= 1, "the failed batch waits for the next flush");

  // The next flush delivers it.
  ingestStatus = 204;
  received.length = 0;
  await (await post(w, "/ofrep/v1/evaluate/flags/checkout-button-copy", { context: { targetingKey: "user-4" } }, { key: KEY })).json();
  await until(() => received.length === 1, "the retry");
  assert.equal(received[0].body.exposures.length, 2);
});

test("POST /events: valid events are accepted (202) and forwarded with hashed keys", async () => {
  const r = await post(w, "/events", { events: [
    { name: "purchase", targetingKey: "user-1", value: 12.5, id: "o-1" },
    { name: "signup", targetingKey: "user-2", id: "s-1", timestamp: "2026-11-25T12:00:00Z" },
  ] }, { key: KEY });
  assert.equal(r.status, 202);
  assert.deepEqual(await r.json(), { accepted: 2, forwarded: true });
  await until(() => received.length === 1, "the events POST");
  const { body, auth } = received[0];
  assert.equal(auth, "Bearer ingest-s3cret");
  assert.equal(body.kind, "events");
  assert.equal(body.environment, "production");
  assert.equal(body.events.length, 2);
  assert.equal(body.events[0].name, "purchase");
  assert.match(body.events[0].targetingKeyHash, /^[0-9a-f]{32}$/);
  assert.ok(!JSON.stringify(body).includes("user-1"));
  assert.equal(body.events[1].timestamp, Date.parse("2026-11-25T12:00:00Z"));
});

test("POST /events: the same key hash as exposures, so they join", async () => {
  await (await post(w, "/ofrep/v1/evaluate/flags/checkout-button-copy", { context: { targetingKey: "user-join" } }, { key: KEY })).json();
  await until(() => received.length === 1, "the exposure POST");
  await (await post(w, "/events", { name: "purchase", targetingKey: "user-join", id: "j-1" }, { key: KEY })).json();
  await until(() => received.length === 2, "the events POST");
  assert.equal(received[0].body.exposures[0].bucketingKeyHash, received[1].body.events[0].targetingKeyHash);
});

test("POST /events: invalid events give 400 with the typed error list; nothing is forwarded", async () => {
  const r = await post(w, "/events", { events: [
    { name: "ok", targetingKey: "u", id: "1" },
    { name: "bad name", targetingKey: "u", id: "2" },
    { name: "x", id: "3" },
    { name: "y", targetingKey: "u", id: "4", valeu: 3 },
  ] }, { key: KEY });
  assert.equal(r.status, 400);
  const b = await r.json();
  assert.equal(typeof b.error, "string");
  assert.deepEqual(b.invalid.map((i) => i.index), [1, 2, 3]);
  assert.ok(b.invalid.every((i) => typeof i.reason === "string"));
  const bad = await post(w, "/events", "{nope", { key: KEY });
  assert.equal(bad.status, 400);
  assert.match((await bad.json()).error, /JSON/);
  await sleep(100);
  assert.equal(received.length, 0);
});

test("POST /events needs an SDK key", async () => {
  const r = await post(w, "/events", { name: "x", targetingKey: "u", id: "1" });
  assert.equal(r.status, 401);
  await r.body?.cancel();
});
