// Fail-static and the exposure pipeline against local HTTP servers on
// 127.0.0.1: a fake edge (`/sdk/v1/snapshot`, bearer key, ETag / 304), a
// fake Cloudflare KV REST API, the directory publisher's file layout, and
// a fake ingest endpoint. Polling every 50-100 ms; no timed assertions
// (waits are bounded conditions).
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync, renameSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { spawn } from "node:child_process";
import { OpenFeature, ProviderEvents, ErrorCode } from "@openfeature/server-sdk";
import { BuntingClient, BuntingProvider, encodeKey, ENGINE_SCHEMA_VERSION } from "../dist/index.js";
import { demo, pkgDir, server, until } from "./helpers.mjs";

const ENV = "acme/web/production";
const KEY = "srv-test-key";

/** A fake edge: serves `state.snapshot` (an object or raw text) with its checksum as ETag; `state.down` → 503. */
async function fakeEdge(snapshot) {
  const s = await server((req, res) => {
    if (req.headers.authorization !== `Bearer ${KEY}`) {
      res.writeHead(401, { "content-type": "application/json" });
      return res.end(JSON.stringify({ errorCode: "UNAUTHORIZED", errorDetails: "unknown SDK key" }));
    }
    if (s.down || s.snapshot === undefined) {
      res.writeHead(503, { "content-type": "application/json" });
      return res.end(JSON.stringify({ errorCode: "GENERAL", errorDetails: "no snapshot yet" }));
    }
    const text = typeof s.snapshot === "string" ? s.snapshot : JSON.stringify(s.snapshot);
    const etag = `"${typeof s.snapshot === "string" ? "raw" : s.snapshot.checksum}"`;
    if (req.headers["if-none-match"] === etag) {
      res.writeHead(304, { etag });
      return res.end();
    }
    res.writeHead(200, { "content-type": "application/json", etag });
    res.end(text);
  });
  s.snapshot = snapshot;
  s.down = false;
  return s;
}

/** A fake ingest endpoint: `status` decides the answer; accepted bodies are kept. */
async function fakeIngest(status = 202) {
  const s = await server((req, res, body) => {
    if (s.status === 202) s.batches.push({ auth: req.headers.authorization, ...JSON.parse(body) });
    res.writeHead(s.status, { "content-type": "application/json" });
    res.end(s.status === 202 ? '{"accepted":1}' : '{"error":"no"}');
  });
  s.status = status;
  s.batches = [];
  s.exposures = () => s.batches.flatMap((b) => b.exposures ?? []);
  s.events = () => s.batches.flatMap((b) => b.events ?? []);
  return s;
}

const closers = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

function client(options) {
  const c = new BuntingClient({ sdkKey: KEY, pollIntervalMs: 50, initTimeoutMs: 2000, requestTimeoutMs: 2000, ...options });
  closers.push(() => c.close());
  return c;
}

test("edge source: ETag round trip, 304 while unchanged, a new version swaps in with its changed flags", async () => {
  const edge = await fakeEdge(demo(1));
  closers.push(edge.close);
  const c = client({ edgeUrl: edge.url, environment: ENV });
  const changes = [];
  c.on("configurationChanged", (f) => changes.push(f));
  await c.start();
  assert.equal(c.status().status, "ready");
  assert.equal(c.status().snapshotVersion, 1);
  await until(() => edge.requests.length >= 3, 5000, "polls");
  const polls = edge.requests.slice(1);
  assert.ok(polls.every((r) => r.headers["if-none-match"] === `"${edge.snapshot.checksum}"`), "conditional requests");
  edge.snapshot = demo(2, ENV, (d) => {
    d.flags.find((f) => f.key === "instant-payouts").enabled = true;
    return d;
  });
  await until(() => c.status().snapshotVersion === 2, 5000, "version 2");
  assert.deepEqual(changes, [["instant-payouts"]]);
  assert.equal(c.evaluate("instant-payouts", { targetingKey: "u", country: "US" }).value, true);
});

test("edge source: a wrong key is an error naming the edge's errorCode", async () => {
  const edge = await fakeEdge(demo(1));
  closers.push(edge.close);
  const c = client({ edgeUrl: edge.url, sdkKey: "wrong" });
  await assert.rejects(c.start(), /401: UNAUTHORIZED: unknown SDK key/);
  assert.equal(c.status().status, "error");
});

test("source down at start: the bootstrap file serves (READY then STALE), the source's return makes it READY", async () => {
  const edge = await fakeEdge(demo(5));
  edge.down = true;
  closers.push(edge.close);
  const dir = mkdtempSync(path.join(tmpdir(), "bunting-bootstrap-"));
  const bootstrapFile = path.join(dir, "snapshot.json");
  writeFileSync(bootstrapFile, JSON.stringify(demo(3)));
  const provider = new BuntingProvider({ sdkKey: KEY, edgeUrl: edge.url, bootstrapFile, pollIntervalMs: 50, initTimeoutMs: 2000 });
  const events = [];
  for (const e of [ProviderEvents.Ready, ProviderEvents.Stale, ProviderEvents.ConfigurationChanged, ProviderEvents.Error]) {
    OpenFeature.addHandler(e, (d) => { if (d.domain === "bootstrap") events.push(e); });
  }
  await OpenFeature.setProviderAndWait("bootstrap", provider);
  closers.push(() => OpenFeature.clearProviders());
  const of = OpenFeature.getClient("bootstrap");
  await until(() => events.includes(ProviderEvents.Stale), 5000, "STALE");
  assert.deepEqual(events, [ProviderEvents.Ready, ProviderEvents.Stale]);
  const st = provider.client.status();
  assert.equal(st.status, "stale");
  assert.equal(st.loadedFrom, "bootstrap");
  assert.equal(st.snapshotVersion, 3);
  assert.match(st.lastError, /503/);
  const d = await of.getBooleanDetails("instant-payouts", true, { targetingKey: "u" });
  assert.equal(d.value, false);
  assert.equal(d.reason, "DISABLED");
  edge.down = false;
  await until(() => provider.client.status().snapshotVersion === 5, 5000, "the source's snapshot");
  await until(() => events.length >= 3, 5000, "READY");
  assert.deepEqual(events.slice(2), [ProviderEvents.Ready]);
  assert.equal(provider.client.status().loadedFrom, "source");
  assert.equal(provider.client.status().consecutiveFailures, 0);
});

test("source down at start without a bootstrap: ERROR, defaults with PROVIDER_NOT_READY, READY once it answers", async () => {
  const edge = await fakeEdge(undefined);
  closers.push(edge.close);
  const provider = new BuntingProvider({ sdkKey: KEY, edgeUrl: edge.url, pollIntervalMs: 50, initTimeoutMs: 2000 });
  const events = [];
  provider.events.addHandler(ProviderEvents.Ready, () => events.push("ready"));
  await assert.rejects(OpenFeature.setProviderAndWait("no-bootstrap", provider));
  const of = OpenFeature.getClient("no-bootstrap");
  const d = await of.getBooleanDetails("instant-payouts", true, { targetingKey: "u" });
  assert.equal(d.value, true);
  assert.equal(d.errorCode, ErrorCode.PROVIDER_NOT_READY);
  assert.equal(provider.client.status().status, "error");
  edge.snapshot = demo(1);
  await until(() => events.length === 1, 5000, "READY");
  assert.equal((await of.getBooleanDetails("instant-payouts", true, { targetingKey: "u" })).value, false);
  await OpenFeature.clearProviders();
});

test("corrupt, unsealed, tampered, older, wrong-schema and wrong-environment snapshots are refused; the last good one serves", async () => {
  const good = demo(10);
  const edge = await fakeEdge(good);
  closers.push(edge.close);
  const c = client({ edgeUrl: edge.url });
  const stale = [];
  c.on("stale", (m) => stale.push(m));
  await c.start();
  const before = c.evaluate("checkout-button-copy", { targetingKey: "user-7" });
  const tampered = { ...demo(11) };
  tampered.flags = structuredClone(tampered.flags);
  tampered.flags[0].enabled = true;
  const { checksum: _, ...unsealed } = demo(11);
  const cases = [
    ["{ not json", /not JSON/],
    [unsealed, /no checksum/],
    [tampered, /checksum mismatch/],
    [demo(9), /older than the one in service \(10\)/],
    [{ ...demo(11), schemaVersion: ENGINE_SCHEMA_VERSION + 1 }, new RegExp(`schema ${ENGINE_SCHEMA_VERSION + 1} is not the engine's ${ENGINE_SCHEMA_VERSION}; upgrade the package`)],
    [demo(11, "acme/web/staging"), /environment "acme\/web\/staging", not "acme\/web\/production"/],
  ];
  for (const [bad, why] of cases) {
    edge.snapshot = bad;
    const failures = c.status().consecutiveFailures;
    await until(() => c.status().consecutiveFailures > failures, 5000, `refusal of ${why}`);
    const st = c.status();
    assert.match(st.lastError, why);
    assert.equal(st.snapshotVersion, 10);
    assert.equal(st.status, "stale");
    assert.deepEqual(c.evaluate("checkout-button-copy", { targetingKey: "user-7" }), before);
  }
  assert.equal(stale.length, 1, "STALE once per transition");
  edge.snapshot = demo(12);
  await until(() => c.status().snapshotVersion === 12, 5000, "recovery");
  assert.equal(c.status().status, "ready");
  assert.equal(c.status().lastError, null);
});

test("kv source: Cloudflare's REST shape; the same snapshot again is not reloaded", async () => {
  let value = JSON.stringify(demo(4));
  const kv = await server((req, res) => {
    const want = `/client/v4/accounts/acct/storage/kv/namespaces/ns/values/${encodeURIComponent(`snapshot:${ENV}`)}`;
    if (req.url !== want || req.headers.authorization !== "Bearer cf-token") {
      res.writeHead(404, { "content-type": "application/json" });
      return res.end(JSON.stringify({ success: false, errors: [{ code: 10009, message: "key not found" }] }));
    }
    res.writeHead(200, { "content-type": "application/octet-stream" });
    res.end(value);
  });
  closers.push(kv.close);
  const c = client({ sdkKey: undefined, kv: { accountId: "acct", namespaceId: "ns", apiToken: "cf-token", environment: ENV, apiBase: `${kv.url}/client/v4` } });
  const changes = [];
  c.on("configurationChanged", (f) => changes.push(f));
  await c.start();
  assert.equal(c.status().source, "kv");
  await until(() => kv.requests.length >= 4, 5000, "polls");
  assert.deepEqual(changes, []);
  value = JSON.stringify(demo(6, ENV, (d) => { d.flags = d.flags.filter((f) => f.key !== "new-search"); return d; }));
  await until(() => c.status().snapshotVersion === 6, 5000, "version 6");
  assert.deepEqual(changes, [["new-search"]]);
});

test("directory source: the publisher's file name, atomic replacement picked up", async () => {
  assert.equal(encodeKey("snapshot:acme/web/production"), "snapshot%3Aacme%2Fweb%2Fproduction");
  assert.equal(encodeKey("a b~é"), "a%20b~%C3%A9");
  const dir = mkdtempSync(path.join(tmpdir(), "bunting-dir-"));
  const file = path.join(dir, encodeKey(`snapshot:${ENV}`));
  const publish = (doc) => {
    writeFileSync(`${file}.tmp`, JSON.stringify(doc));
    renameSync(`${file}.tmp`, file);
  };
  const c = client({ sdkKey: undefined, directory: { path: dir, environment: ENV } });
  await assert.rejects(c.start(), /cannot read/);
  publish(demo(1));
  await until(() => c.status().status === "ready", 5000, "the first file");
  publish(demo(2));
  await until(() => c.status().snapshotVersion === 2, 5000, "the second file");
});

test("exposures: SPLIT only, deduplicated per user, flag and variant within the window, hashed keys, batched", async () => {
  const edge = await fakeEdge(demo(1));
  const ingest = await fakeIngest();
  closers.push(edge.close, ingest.close);
  let now = Date.parse("2026-12-01T00:00:00Z");
  const c = client({ edgeUrl: edge.url, ingestUrl: `${ingest.url}/api/v1/events`, flushIntervalMs: 60_000, flushAt: 1000, clock: () => now, exposureDedupWindowMs: 1000 });
  await c.start();
  const ctx = { targetingKey: "user-1", geo: { country: "DE" }, device: { type: "mobile" } };
  for (let i = 0; i < 10; i++) c.evaluate("checkout-button-copy", ctx);
  c.evaluate("instant-payouts", ctx); // DISABLED: no exposure
  c.evaluate("checkout-button-copy", { country: "US" }); // no targeting key
  c.evaluate("checkout-button-copy", { targetingKey: "user-2" });
  assert.equal(c.evaluate("checkout-button-copy", { targetingKey: 42 }).errorCode, "INVALID_CONTEXT"); // no exposure
  now += 1000; // the window has passed
  c.evaluate("checkout-button-copy", ctx);
  let st = c.status();
  assert.equal(st.exposuresQueued, 3);
  assert.equal(st.exposuresDeduplicated, 9);
  await c.flush();
  st = c.status();
  assert.equal(st.exposuresSent, 3);
  assert.equal(ingest.batches.length, 1);
  assert.equal(ingest.batches[0].kind, "exposures");
  assert.equal(ingest.batches[0].auth, `Bearer ${KEY}`);
  const [first, second] = ingest.exposures();
  const variant = c.evaluate("checkout-button-copy", ctx).variant;
  assert.deepEqual(first, {
    flag: "checkout-button-copy", variant, bucketingKeyHash: c.hashKey("user-1"), environment: ENV,
    snapshotVersion: 1, time: Date.parse("2026-12-01T00:00:00Z"), country: "DE", deviceType: "mobile",
  });
  assert.match(first.bucketingKeyHash, /^[0-9a-f]{32}$/);
  assert.equal(second.bucketingKeyHash, c.hashKey("user-2"));
  assert.notEqual(first.bucketingKeyHash, second.bucketingKeyHash);
  assert.match(c.hashKey(42), /^[0-9a-f]{32}$/, "numbers hash as JSON writes them");
});

test("ingest down: exposures buffered up to the bound, drops counted, evaluations unaffected, sent once it is back", async () => {
  const edge = await fakeEdge(demo(1));
  const ingest = await fakeIngest(503);
  closers.push(edge.close, ingest.close);
  const c = client({ edgeUrl: edge.url, ingestUrl: `${ingest.url}/api/v1/events`, maxQueuedExposures: 50, flushAt: 10, flushIntervalMs: 50 });
  await c.start();
  const reference = new BuntingClient({ source: { name: "memory", location: "", fetch: async () => ({ kind: "snapshot", text: JSON.stringify(demo(1)) }) } });
  await reference.start();
  for (let i = 0; i < 200; i++) {
    const ctx = { targetingKey: `user-${i}` };
    assert.deepEqual(c.evaluate("checkout-button-copy", ctx), reference.evaluate("checkout-button-copy", ctx));
  }
  await until(() => c.status().failedRequests > 0, 5000, "a failed request");
  let st = c.status();
  assert.equal(st.exposuresQueued, 50);
  assert.equal(st.exposuresDropped, 150);
  assert.equal(st.exposuresPending, 50);
  assert.match(st.lastIngestError, /503/);
  ingest.status = 202;
  await until(() => c.status().exposuresSent === 50, 10000, "the buffered exposures");
  st = c.status();
  assert.equal(st.exposuresPending, 0);
  assert.equal(new Set(ingest.exposures().map((e) => e.bucketingKeyHash)).size, 50);
});

test("ingest unreachable: evaluations unaffected; a 4xx batch is dropped and counted as rejected", async () => {
  const edge = await fakeEdge(demo(1));
  closers.push(edge.close);
  const c = client({ edgeUrl: edge.url, ingestUrl: "http://127.0.0.1:9/api/v1/events", flushIntervalMs: 50 });
  await c.start();
  c.evaluate("checkout-button-copy", { targetingKey: "a" });
  await until(() => c.status().failedRequests > 0, 5000, "a network failure");
  assert.match(c.status().lastIngestError, /unreachable/);
  assert.equal(c.status().exposuresPending, 1);
  const ingest = await fakeIngest(403);
  closers.push(ingest.close);
  const d = client({ edgeUrl: edge.url, ingestUrl: `${ingest.url}/api/v1/events`, flushIntervalMs: 50 });
  await d.start();
  d.evaluate("checkout-button-copy", { targetingKey: "a" });
  await until(() => d.status().exposuresRejected === 1, 5000, "the rejection");
  assert.equal(d.status().exposuresPending, 0);
  assert.match(d.status().lastIngestError, /403/);
});

test("track through OpenFeature: metric events with the environment; close() flushes everything", async () => {
  const edge = await fakeEdge(demo(1));
  const ingest = await fakeIngest();
  closers.push(edge.close, ingest.close);
  const provider = new BuntingProvider({ sdkKey: KEY, edgeUrl: edge.url, ingestUrl: `${ingest.url}/api/v1/events`, flushIntervalMs: 600_000, pollIntervalMs: 600_000 });
  await OpenFeature.setProviderAndWait("track", provider);
  const of = OpenFeature.getClient("track");
  await of.getStringValue("checkout-button-copy", "x", { targetingKey: "buyer" });
  of.track("purchase", { targetingKey: "buyer" }, { value: 12.5 });
  of.track("signup", { targetingKey: "buyer" });
  of.track("bad name!", { targetingKey: "buyer" }); // refused (the SDK swallows the TypeError)
  assert.throws(() => provider.client.track("bad name!", { targetingKey: "buyer" }), /must be 1 to 128 characters/);
  assert.throws(() => provider.client.track("purchase", {}), /targetingKey/);
  assert.equal(ingest.batches.length, 0);
  await OpenFeature.clearProviders(); // onClose → close() → flush
  assert.equal(ingest.exposures().length, 1);
  const events = ingest.batches.find((b) => b.kind === "events");
  assert.equal(events.environment, ENV);
  assert.equal(events.events.length, 2);
  const [purchase, signup] = events.events;
  assert.equal(purchase.name, "purchase");
  assert.equal(purchase.value, 12.5);
  assert.equal(purchase.targetingKeyHash, provider.client.hashKey("buyer"));
  assert.match(purchase.id, /^[0-9a-f-]{36}$/);
  assert.equal(signup.value, undefined);
  assert.equal(provider.client.status().eventsSent, 2);
});

test("the refresh and flush timers do not keep the process alive", async () => {
  const edge = await fakeEdge(demo(1));
  const ingest = await fakeIngest();
  closers.push(edge.close, ingest.close);
  const script = `
    import { BuntingClient } from ${JSON.stringify(path.join(pkgDir, "dist", "index.js"))};
    const c = new BuntingClient({ sdkKey: ${JSON.stringify(KEY)}, edgeUrl: ${JSON.stringify(edge.url)},
      ingestUrl: ${JSON.stringify(`${ingest.url}/api/v1/events`)}, pollIntervalMs: 20, flushIntervalMs: 20 });
    await c.start();
    console.log(c.evaluate("checkout-button-copy", { targetingKey: "u" }).reason);`;
  const child = spawn(process.execPath, ["--input-type=module", "-e", script], { stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  child.stdout.on("data", (d) => { out += d; });
  const killer = setTimeout(() => child.kill(), 20_000);
  const code = await new Promise((r) => child.once("exit", (c, sig) => r(sig ?? c)));
  clearTimeout(killer);
  assert.equal(code, 0, "exited by itself");
  assert.equal(out.trim(), "SPLIT");
});
