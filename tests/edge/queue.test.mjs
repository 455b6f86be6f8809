// The queue path against a fake ingest endpoint (no origin needed): with the
// INGEST_QUEUE producer bound (miniflare's local queue, consumed by the
// worker itself), exposures and events are sent to the queue, and the
// consumer acknowledges exactly the messages of the POSTs the ingest endpoint
// answered 2xx; the others are redelivered.
import { test, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { startWorker, putKey, putSnapshot, post, readJson } from "./harness.mjs";

const KEY = "sdk-queue";
// /healthz shows the ingest counters only to the operator.
const OPERATOR = { headers: { Authorization: "Bearer q-operator" } };
const received = []; // every POST: { kind, status, body }
let fail = () => false; // (body) => answer 503?
let w;

before(async () => {
  w = await startWorker({
    bindings: { INGEST_URL: "https://ingest.example/v1/ingest", INGEST_SECRET: "q-secret", OPERATOR_SECRET: "q-operator" },
    workerOptions: {
      queueProducers: { INGEST_QUEUE: { queueName: "bunting-ingest" } },
      queueConsumers: { "bunting-ingest": { maxBatchSize: 100, maxBatchTimeout: 1, maxRetries: 20, retryDelay: 0 } },
    },
    outbound: async (request) => {
      const body = await request.json();
      assert.equal(request.headers.get("authorization"), "Bearer q-secret");
      const status = fail(body) ? 503 : 204;
      received.push({ kind: body.kind, status, body });
      return new Response(null, { status });
    },
  });
  await putKey(w.kv, KEY, "production", "server");
  await putSnapshot(w.kv, "production", readJson("examples/demo-snapshot.json"));
});
after(async () => w?.mf.dispose());
beforeEach(() => {
  received.length = 0;
  fail = () => false;
});

async function until(cond, what) {
  for (let i = 0; i < 250 && !cond(); i++) await sleep(20);
  assert.ok(cond(), `timed out waiting for ${what}`);
}

const delivered = (kind) => received.filter((r) => r.kind === kind && r.status === 204).flatMap((r) => r.body[kind]);

test("reports and events go through the queue into one POST per kind", async () => {
  for (let i = 0; i < 5; i++) {
    const r = await post(w, "/exposures", { context: { targetingKey: `q-${i}` }, flags: ["checkout-button-copy"] }, { key: KEY });
    assert.equal((await r.json()).recorded, 1);
  }
  const ev = await post(w, "/events", { events: [{ name: "purchase", targetingKey: "q-0", id: "qo-1", value: 3 }] }, { key: KEY });
  assert.deepEqual(await ev.json(), { accepted: 1, forwarded: true });
  await until(() => delivered("exposures").length === 5 && delivered("events").length === 1, "the consumer's POSTs");
  // Merged: six messages, fewer POSTs (one per kind for a batch).
  assert.ok(received.length < 6, `${received.length} POSTs`);
  const h = (await (await w.fetch("/healthz", OPERATOR)).json()).ingest;
  assert.equal(h.queued, 6);
  assert.equal(h.exposuresBuffered, 0, "nothing waits in isolate memory");
});

test("only what the ingest endpoint committed is acknowledged; the rest is redelivered", async () => {
  // Events fail twice; exposures are accepted at once.
  let eventFailures = 0;
  fail = (body) => body.kind === "events" && eventFailures++ < 2;
  for (let i = 0; i < 3; i++) {
    await (await post(w, "/exposures", { context: { targetingKey: `r-${i}` }, flags: ["checkout-button-copy"] }, { key: KEY })).json();
  }
  const ev = await post(w, "/events", { events: [{ name: "purchase", targetingKey: "r-0", id: "ro-1" }] }, { key: KEY });
  assert.equal(ev.status, 202);
  await until(() => delivered("events").length === 1, "the events after two failures");
  const events = received.filter((r) => r.kind === "events");
  assert.deepEqual(events.map((r) => r.status), [503, 503, 204]);
  assert.ok(events.every((r) => r.body.events[0].id === "ro-1"));
  // The exposures' messages were acknowledged with their 204: never sent again.
  const sent = received.filter((r) => r.kind === "exposures").flatMap((r) => r.body.exposures);
  assert.equal(sent.length, 3);
  assert.equal(new Set(sent.map((e) => e.bucketingKeyHash)).size, 3);
  const h = (await (await w.fetch("/healthz", OPERATOR)).json()).ingest;
  assert.ok(h.messagesRetried >= 2, JSON.stringify(h));
  assert.match(h.lastError, /503/);
});
