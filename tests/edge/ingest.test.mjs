// Exposures (SPLIT evaluations) and metric events (POST /events) sent to
// INGEST_URL with ctx.waitUntil; ingest failures never affect evaluations.
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

test("bulk evaluation: one exposure per SPLIT flag", async () => {
  const r = await post(w, "/ofrep/v1/evaluate/flags", { context: { targetingKey: "user-2" } }, { key: KEY });
  const splits = (await r.json()).flags.filter((f) => f.reason === "SPLIT").map((f) => f.key).sort();
  assert.ok(splits.length >= 2);
  await until(() => received.length === 1, "the exposure POST");
  assert.deepEqual(received[0].body.exposures.map((e) => e.flag).sort(), splits);
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
