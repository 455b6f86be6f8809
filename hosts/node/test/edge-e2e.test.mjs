// End to end through the edge: `bunting serve` (embedded SQLite) publishes
// through its Cloudflare KV REST publisher into the KV of the real edge
// worker running in workerd (miniflare), the stack of tests/edge/stack.mjs.
// The provider fetches the snapshot from the worker's `GET /sdk/v1/snapshot`
// with a server SDK key (conditional requests with the ETag), serves a 50/50
// split, sees a flag change made through the origin API (CONFIGURATION_
// CHANGED, then the new value), and its exposures and track() events land in
// the experiment's results. The edge evaluates the same users over OFREP with
// the same answers; its exposures join the provider's (hashSecret = the
// worker's KEY_HASH_SECRET), so each user counts once. A client SDK key is
// refused (403): the provider does not become ready.
//
// Needs target/debug/bunting (`cargo build -p bunting-origin --bin bunting`,
// or BUNTING_BIN) and edge-worker/build (`cargo xtask edge`).
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import path from "node:path";
import { OpenFeature, ProviderEvents, ProviderStatus } from "@openfeature/server-sdk";
import { BuntingProvider, packedDocument } from "../dist/index.js";
import { root, until } from "./helpers.mjs";

const edge = path.join(root, "tests", "edge");
const { startWorker, post } = await import(path.join(edge, "harness.mjs"));
const { INGEST_SECRET, api, bin, freePort, kvRestServer, published, startOrigin } = await import(path.join(edge, "stack.mjs"));

// The worker hashes targeting keys with KEY_HASH_SECRET (else INGEST_SECRET).
const KEY_HASH_SECRET = "edge-e2e-key-hash-secret";
const ENV_NAME = "acme/web/production";
const USERS = 200;

const missing = [bin, path.join(root, "edge-worker", "build", "index.js")].filter((f) => !existsSync(f));

test("through the edge's snapshot endpoint: split, change, 304s, exposures in the results; client keys refused",
  { timeout: 120_000 }, async () => {
    // Never skipped: `cargo xtask test` builds both before this runs.
    assert.deepEqual(missing, [], "not built (cargo build -p bunting-origin; cargo xtask edge)");
    const port = await freePort();
    const w = await startWorker({
      listen: true,
      bindings: { INGEST_URL: `http://127.0.0.1:${port}/api/v1/events`, INGEST_SECRET, INGEST_FLUSH_SECONDS: "0", KEY_HASH_SECRET, OPERATOR_SECRET: "e2e-operator" },
    });
    const rest = await kvRestServer(w.kv);
    let origin;
    try {
      origin = await startOrigin(rest.url, port);
      const o = origin.base;
      const req = (method, p, body, headers = {}) => api(o, method, p, body, { headers });
      const p = "/orgs/acme/projects/web";
      const env = `${p}/environments/production`;
      await req("POST", "/orgs", { key: "acme", name: "Acme" });
      await req("POST", "/orgs/acme/projects", { key: "web", name: "Web" });
      await req("POST", `${p}/environments`, { key: "production", name: "Production" });
      // Available to client-side SDKs: browsers' exposures come through OFREP with the client key.
      await req("POST", `${p}/flags`, { key: "one-page-checkout", flagType: "boolean", variants: { on: true, off: false }, offVariant: "off", clientSide: true });
      const cfg = `${p}/flags/one-page-checkout/environments/production`;
      let { etag } = await req("GET", cfg);
      await req("PUT", cfg, { enabled: true, rules: [], fallthrough: { rollout: [{ variant: "on", weight: 50 }, { variant: "off", weight: 50 }] } }, { "if-match": etag });
      await req("POST", `${p}/flags`, { key: "banner", flagType: "string", variants: { none: "", sale: "Spring sale" }, offVariant: "none" });
      await req("POST", `${p}/metrics`, { key: "purchased", kind: "conversion", event: "purchase" });
      const { json: x } = await req("POST", `${env}/experiments`, { key: "one-page", flag: "one-page-checkout", control: "off", primaryMetric: "purchased" });
      await req("POST", `${env}/experiments/one-page/start`, null, { "if-match": `"${x.version}"` });
      const { json: serverKey } = await req("POST", `${env}/sdk-keys`, { kind: "server", name: "node" });
      const { json: clientKey } = await req("POST", `${env}/sdk-keys`, { kind: "client", name: "web" });
      // Before any request reaches the edge (it caches unknown keys).
      const pub = await published(o, env);

      // The provider's snapshot requests and the worker's answers, as seen
      // by the provider's fetch (ingest requests pass through unrecorded).
      const polls = [];
      const recordingFetch = async (url, init = {}) => {
        const r = await fetch(url, init);
        if (String(url).endsWith("/sdk/v1/snapshot")) {
          polls.push({ ifNoneMatch: init.headers?.["if-none-match"] ?? null, status: r.status, etag: r.headers.get("etag") });
        }
        return r;
      };
      const provider = new BuntingProvider({
        sdkKey: serverKey.secret,
        edgeUrl: w.url,
        ingestUrl: `${o}/api/v1/events`,
        hashSecret: KEY_HASH_SECRET,
        environment: ENV_NAME,
        pollIntervalMs: 100,
        flushIntervalMs: 200,
        fetch: recordingFetch,
      });
      const changes = [];
      provider.events.addHandler(ProviderEvents.ConfigurationChanged, (d) => changes.push(d.flagsChanged));
      await OpenFeature.setProviderAndWait("edge-e2e", provider);
      const of = OpenFeature.getClient("edge-e2e");
      assert.equal(of.providerStatus, ProviderStatus.READY);

      // The snapshot in service is the published one, fetched from the edge.
      // The origin publishes packed values (its default): the JSON inside.
      const kvValue = async () => packedDocument(new Uint8Array(await w.kv.get(`snapshot:${ENV_NAME}`, "arrayBuffer")));
      const published1 = JSON.parse(await kvValue());
      let st = provider.client.status();
      assert.equal(st.status, "ready");
      assert.equal(st.source, "edge");
      assert.equal(st.loadedFrom, "source");
      assert.equal(st.environment, ENV_NAME);
      assert.equal(st.snapshotVersion, pub.snapshotVersion);
      assert.equal(st.snapshotVersion, published1.version);
      assert.deepEqual(polls[0], { ifNoneMatch: null, status: 200, etag: `"${published1.checksum}"` });

      // The split, and the edge's own answers for the same users (OFREP
      // with the client key): identical.
      const arms = { on: 0, off: 0 };
      const served = [];
      for (let i = 0; i < USERS; i++) {
        const ctx = { targetingKey: `user-${i}` };
        const d = await of.getBooleanDetails("one-page-checkout", false, ctx);
        assert.equal(d.reason, "SPLIT", JSON.stringify(d));
        assert.equal(d.value, d.variant === "on", JSON.stringify(d));
        arms[d.variant]++;
        served.push(d);
        if (i % 4 === 0) of.track("purchase", ctx, { value: 10 });
      }
      assert.ok(arms.on > 0 && arms.off > 0, JSON.stringify(arms));
      for (let i = 0; i < USERS; i++) {
        const r = await post(w, "/ofrep/v1/evaluate/flags/one-page-checkout", { context: { targetingKey: `user-${i}` } }, { key: clientKey.secret });
        const body = await r.json();
        assert.equal(r.status, 200, JSON.stringify(body));
        assert.deepEqual([body.value, body.variant, body.reason], [served[i].value, served[i].variant, served[i].reason], `user-${i}`);
      }
      assert.equal((await of.getStringDetails("banner", "x", { targetingKey: "u" })).value, "");

      // Unchanged snapshot: the next polls carry the ETag and get 304s.
      await until(() => polls.some((q) => q.status === 304), 10000, "a 304 poll");
      const firstEtag = polls[0].etag;
      for (const q of polls.slice(1)) assert.deepEqual(q, { ifNoneMatch: firstEtag, status: 304, etag: firstEtag });
      assert.equal(changes.length, 0);

      // A change through the origin API: publish → KV → worker → provider.
      ({ etag } = await req("GET", `${p}/flags/banner/environments/production`));
      await req("PUT", `${p}/flags/banner/environments/production`, { enabled: true, rules: [], fallthrough: { variant: "sale" } }, { "if-match": etag });
      const pub2 = await published(o, env);
      await until(() => changes.length > 0, 15000, "CONFIGURATION_CHANGED");
      assert.deepEqual(changes, [["banner"]]);
      assert.equal(await of.getStringValue("banner", "x", { targetingKey: "u" }), "Spring sale");
      const published2 = JSON.parse(await kvValue());
      st = provider.client.status();
      assert.equal(st.snapshotVersion, pub2.snapshotVersion);
      assert.ok(st.snapshotVersion > published1.version);
      const changedAt = polls.findIndex((q) => q.status === 200 && q !== polls[0]);
      assert.deepEqual(polls[changedAt], { ifNoneMatch: firstEtag, status: 200, etag: `"${published2.checksum}"` });
      // ...and the polls after it are 304s for the new ETag.
      await until(() => polls.length > changedAt + 1, 10000, "a poll after the change");
      for (const q of polls.slice(changedAt + 1)) assert.deepEqual(q, { ifNoneMatch: `"${published2.checksum}"`, status: 304, etag: `"${published2.checksum}"` });
      // The split's users still get what they got (the rollout did not change).
      for (let i = 0; i < USERS; i += 10) {
        assert.equal((await of.getBooleanDetails("one-page-checkout", false, { targetingKey: `user-${i}` })).variant, served[i].variant);
      }

      // close() flushes exposures and events to the origin.
      await OpenFeature.clearProviders();
      st = provider.client.status();
      assert.equal(st.exposuresSent, USERS, JSON.stringify(st));
      assert.equal(st.eventsSent, USERS / 4, JSON.stringify(st));
      assert.equal(st.failedRequests, 0, st.lastIngestError);
      assert.equal(st.consecutiveFailures, 0, st.lastError);
      // The edge delivered its exposures of the same users.
      const edgeSent = async () => (await (await w.fetch("/healthz", { headers: { Authorization: "Bearer e2e-operator" } })).json()).ingest;
      await until(async () => (await edgeSent()).exposuresSent >= USERS, 10000, "the edge's exposures");
      assert.equal((await edgeSent()).failedRequests, 0, JSON.stringify(await edgeSent()));

      // The results: each user once (host and edge hashes join), in the arm
      // the provider served; every tracked purchase converts.
      const { json: results } = await req("GET", `${env}/experiments/one-page/results`);
      const users = Object.fromEntries(results.arms.map((a) => [a.variant, a.users]));
      assert.deepEqual(users, arms, JSON.stringify(results.arms));
      const primary = results.metrics.find((m) => m.key === "purchased");
      assert.equal(primary.arms.reduce((n, a) => n + (a.conversions ?? 0), 0), USERS / 4, JSON.stringify(primary));

      // A client key cannot fetch snapshots: the worker answers 403 and
      // the provider is not ready.
      const refused = new BuntingProvider({ sdkKey: clientKey.secret, edgeUrl: w.url, pollIntervalMs: 100, initTimeoutMs: 5000 });
      const refusedClient = OpenFeature.getClient("edge-e2e-client-key");
      const errors = [];
      refusedClient.addHandler(ProviderEvents.Error, (d) => errors.push(d.message));
      await assert.rejects(OpenFeature.setProviderAndWait("edge-e2e-client-key", refused), /403/);
      try {
        assert.equal(refusedClient.providerStatus, ProviderStatus.ERROR);
        await until(() => errors.length > 0, 5000, "the ERROR event");
        assert.match(errors[0], /403/);
        const rs = refused.client.status();
        assert.equal(rs.status, "error");
        assert.equal(rs.snapshotVersion, null);
        assert.match(rs.lastError, /403/);
        const d = await refusedClient.getBooleanDetails("one-page-checkout", false, { targetingKey: "user-1" });
        assert.equal(d.value, false);
        assert.ok(d.errorCode, JSON.stringify(d));
      } finally {
        await OpenFeature.clearProviders();
      }
      console.log(`edge e2e: snapshot v${published1.version} then v${published2.version} from the worker ` +
        `(${polls.length} polls, ${polls.filter((q) => q.status === 304).length} of them 304); ` +
        `${USERS} users split ${arms.on}/${arms.off}, identical to the edge's OFREP answers; ` +
        `provider + edge exposures join in the results; client key refused (403)`);
    } finally {
      await OpenFeature.clearProviders().catch(() => {});
      if (origin) {
        origin.child.kill("SIGTERM");
        await new Promise((r) => (origin.child.exitCode !== null ? r() : origin.child.once("exit", r)));
      }
      await new Promise((r) => rest.server.close(r));
      await w.mf.dispose();
    }
  });
