// Exposures that mean something and are never lost, end to end: the worker in
// workerd (miniflare) with its Cloudflare Queues producer and consumer
// (miniflare's local queues), and a real `bunting serve` on an SQLite file
// (stack.mjs).
//
// 1. A stream of exposure reports (POST /exposures) and metric events
//    (POST /events) while the origin is killed (SIGKILL) and restarted and the
//    worker's isolate is replaced by a new workerd: every accepted exposure and
//    event is stored exactly once (the experiment's results: users per arm and
//    the exact sum of the event values per arm).
// 2. Clients that poll the bulk endpoint and never report use do not enter the
//    experiment's analysis.
//
// Miniflare keeps queued messages in the memory of its queue broker, inside
// the workerd process (no persistence option), so the worker is replaced once
// the queue has delivered what it held; on Cloudflare the queue's storage is
// independent of the isolates.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { startWorker, post } from "./harness.mjs";
import { INGEST_SECRET, api, bin, freePort, kvDump, kvRestServer, published, startOrigin } from "./stack.mjs";

const skip = !existsSync(bin) && `${bin} is not built`;
const P = "/orgs/acme/projects/web";
const ENV = `${P}/environments/production`;
const FLAG = "checkout";

// The queue binding and its consumer (the worker consumes its own queue), as
// wrangler.toml declares them.
const QUEUE = {
  queueProducers: { INGEST_QUEUE: { queueName: "bunting-ingest" } },
  queueConsumers: { "bunting-ingest": { maxBatchSize: 100, maxBatchTimeout: 1, maxRetries: 100, retryDelay: 0 } },
};

function worker(port, queue) {
  return startWorker({
    bindings: { INGEST_URL: `http://127.0.0.1:${port}/api/v1/events`, INGEST_SECRET, INGEST_FLUSH_SECONDS: "0", OPERATOR_SECRET: "durable-operator" },
    workerOptions: queue ? QUEUE : {},
  });
}

/** An organisation with a 50/50 split, a `sum` metric and a running experiment; returns the client key. */
async function experiment(o) {
  await api(o, "POST", "/orgs", { key: "acme", name: "Acme" });
  await api(o, "POST", "/orgs/acme/projects", { key: "web", name: "Web" });
  await api(o, "POST", `${P}/environments`, { key: "production", name: "Production" });
  await api(o, "POST", `${P}/flags`, { key: FLAG, flagType: "boolean", variants: { on: true, off: false }, offVariant: "off", clientSide: true });
  const cfg = `${P}/flags/${FLAG}/environments/production`;
  const { etag } = await api(o, "GET", cfg);
  await api(o, "PUT", cfg, { enabled: true, rules: [], fallthrough: { rollout: [
    { variant: "on", weight: 50 }, { variant: "off", weight: 50 }] } }, { headers: { "if-match": etag } });
  await api(o, "POST", `${P}/metrics`, { key: "revenue", kind: "sum", event: "purchase" });
  const { json: x } = await api(o, "POST", `${ENV}/experiments`, { key: "checkout-test", flag: FLAG, control: "off", primaryMetric: "revenue" });
  await api(o, "POST", `${ENV}/experiments/checkout-test/start`, null, { headers: { "if-match": `"${x.version}"` } });
  const { json: key } = await api(o, "POST", `${ENV}/sdk-keys`, { kind: "client", name: "web" });
  await published(o, ENV);
  return key.secret;
}

async function results(o) {
  const { json } = await api(o, "GET", `${ENV}/experiments/checkout-test/results`);
  const users = Object.fromEntries(json.arms.map((a) => [a.variant, a.users]));
  const revenue = json.metrics.find((m) => m.key === "revenue");
  const totals = Object.fromEntries(revenue.arms.map((a) => [a.variant, a.total]));
  return { users, totals, multiArmUsers: json.multiArmUsers };
}

/** Polls the results until `pred` holds (10 s at most, then fails with the last results). */
async function resultsUntil(getBase, pred, what) {
  let last;
  for (let i = 0; i < 200; i++) {
    try {
      last = await results(getBase());
      if (pred(last)) return last;
    } catch (e) {
      last = String(e);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`${what}: ${JSON.stringify(last)}`);
}

/** What a user's app does: fetch every flag (bulk), show the split, report it, buy. */
async function user(w, key, i, expected) {
  const ctx = { targetingKey: `user-${i}` };
  const bulk = await post(w, "/ofrep/v1/evaluate/flags", { context: ctx }, { key });
  assert.equal(bulk.status, 200);
  const served = (await bulk.json()).flags.find((f) => f.key === FLAG);
  assert.equal(served.reason, "SPLIT");
  const rep = await post(w, "/exposures", { context: ctx, flags: [FLAG] }, { key });
  assert.equal(rep.status, 202);
  assert.deepEqual(await rep.json(), { recorded: 1, forwarded: true, results: [{ key: FLAG, outcome: "recorded" }] });
  const value = i + 1; // distinct values: a duplicate would change the sum
  const ev = await post(w, "/events", { events: [{ name: "purchase", targetingKey: ctx.targetingKey, value, id: `order-${i}` }] }, { key });
  assert.equal(ev.status, 202);
  expected.users[served.variant] = (expected.users[served.variant] ?? 0) + 1;
  expected.totals[served.variant] = (expected.totals[served.variant] ?? 0) + value;
}

/** The worker's ingest counters (`/healthz`). */
const ingest = async (w) =>
  (await (await w.fetch("/healthz", { headers: { Authorization: "Bearer durable-operator" } })).json()).ingest;

/** Waits until the consumer has tried to deliver to the dead origin and left messages for a retry. */
async function retried(w, before) {
  for (let i = 0; i < 200; i++) {
    if ((await ingest(w)).messagesRetried > before) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail("the consumer never retried while the origin was down");
}

const same = (got, want) => ["on", "off"].every((v) =>
  (got.users[v] ?? 0) === (want.users[v] ?? 0) && (got.totals[v] ?? 0) === (want.totals[v] ?? 0));

test("through the queue, every accepted exposure and event is stored exactly once across origin restarts and isolate eviction", { skip }, async () => {
  const dir = mkdtempSync(path.join(tmpdir(), "bunting-durable-"));
  const databaseUrl = `sqlite://${path.join(dir, "bunting.db")}`;
  const port = await freePort();
  let w = await worker(port, true);
  const rest = await kvRestServer(w.kv);
  let origin = await startOrigin(rest.url, port, [], { databaseUrl });
  const base = () => origin.base;
  try {
    const key = await experiment(origin.base);
    const expected = { users: {}, totals: {} };
    let n = 0;
    const stream = async (count) => {
      for (const end = n + count; n < end; n++) await user(w, key, n, expected);
    };

    await stream(20);
    // The origin dies without warning, in the middle of the consumer's deliveries.
    origin.child.kill("SIGKILL");
    await new Promise((r) => origin.child.once("exit", r));
    let before = (await ingest(w)).messagesRetried;
    await stream(20); // accepted all the same: they wait in the queue
    await retried(w, before);
    // Not in the isolate: its memory holds nothing accepted, so evicting it
    // at any moment of the stream loses nothing.
    assert.equal((await ingest(w)).exposuresBuffered, 0);
    origin = await startOrigin(rest.url, port, [], { databaseUrl });
    await stream(20);
    await resultsUntil(base, (r) => same(r, expected), "every report and event before the eviction, once");

    // The isolate is evicted: a new workerd with the same KV.
    assert.equal((await ingest(w)).exposuresBuffered, 0);
    const kv = await kvDump(w.kv);
    await w.mf.dispose();
    w = await worker(port, true);
    for (const [k, v] of Object.entries(kv)) await w.kv.put(k, v);
    await stream(20);
    origin.child.kill("SIGKILL");
    await new Promise((r) => origin.child.once("exit", r));
    before = (await ingest(w)).messagesRetried;
    await stream(10);
    await retried(w, before);
    origin = await startOrigin(rest.url, port, [], { databaseUrl });
    const final = await resultsUntil(base, (r) => same(r, expected), "every report and event, once");
    assert.equal(final.multiArmUsers, 0);
    assert.equal((final.users.on ?? 0) + (final.users.off ?? 0), n);
    const health = { ingest: await ingest(w) };
    console.log(
      `queue path: ${n} users' exposures and events through two origin kills and one isolate eviction, ` +
      `stored exactly once (${JSON.stringify(final.users)} users, revenue ${JSON.stringify(final.totals)}); ` +
      `last isolate's ingest counters ${JSON.stringify(health.ingest ?? {})}`,
    );
  } finally {
    origin.child.kill("SIGTERM");
    rest.server.close();
    await w.mf.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("clients that poll the bulk endpoint and never report use do not enter the analysis", { skip }, async () => {
  const port = await freePort();
  const w = await worker(port, false);
  const rest = await kvRestServer(w.kv);
  const origin = await startOrigin(rest.url, port);
  try {
    const key = await experiment(origin.base);
    const expected = { users: {}, totals: {} };
    for (let round = 0; round < 3; round++) {
      // 30 pollers fetch every flag, three times each, and buy, but never report.
      for (let i = 0; i < 30; i++) {
        const ctx = { targetingKey: `poller-${i}` };
        const r = await post(w, "/ofrep/v1/evaluate/flags", { context: ctx }, { key });
        assert.equal((await r.json()).flags.find((f) => f.key === FLAG).reason, "SPLIT");
        if (round === 0) {
          const ev = await post(w, "/events", { name: "purchase", targetingKey: ctx.targetingKey, value: 1000, id: `poll-order-${i}` }, { key });
          assert.equal(ev.status, 202);
        }
      }
    }
    // 10 users whose app shows the flag and reports it.
    for (let i = 0; i < 10; i++) await user(w, key, i, expected);
    const r = await resultsUntil(() => origin.base, (x) => same(x, expected), "only the reporting users");
    assert.equal((r.users.on ?? 0) + (r.users.off ?? 0), 10);
  } finally {
    origin.child.kill("SIGTERM");
    rest.server.close();
    await w.mf.dispose();
  }
});
