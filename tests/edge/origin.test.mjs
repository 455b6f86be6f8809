// End to end: the origin (`bunting serve`, embedded SQLite) publishes
// through its Cloudflare KV REST publisher into the KV namespace of the
// real edge worker running in workerd (miniflare) (stack.mjs). A flag
// changed through the origin's API is then served changed by the edge; the
// publish-to-visible latency is printed.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { startWorker, post, sha256Hex } from "./harness.mjs";
import { INGEST_SECRET, ROOT_TOKEN, acmeProduction, api, bin, freePort, kvDump, kvRestServer, published, startOrigin, until } from "./stack.mjs";

test("a flag changed through the origin API is served changed by the edge", { skip: !existsSync(bin) && `${bin} is not built` }, async () => {
  const port = await freePort();
  // The worker sends its exposures and events to this origin.
  const w = await startWorker({ bindings: {
    INGEST_URL: `http://127.0.0.1:${port}/api/v1/events`, INGEST_SECRET, INGEST_FLUSH_SECONDS: "0",
  } });
  const rest = await kvRestServer(w.kv);
  const origin = await startOrigin(rest.url, port);
  try {
    const o = origin.base;
    const env = await acmeProduction(o);
    await api(o, "POST", "/orgs/acme/projects/web/flags", {
      key: "new-checkout", flagType: "boolean", variants: { on: true, off: false }, offVariant: "off",
      clientSide: true, // evaluated below with a client key
    });
    const tKey = performance.now();
    const { json: key } = await api(o, "POST", `${env}/sdk-keys`, { kind: "client", name: "web" });
    // First publication: wait for the origin to report it (polling the edge
    // before the key exists would make the edge cache "unknown key" for 5 s).
    await published(o, env);
    const first = performance.now() - tKey;
    await until(w, key.secret, "new-checkout", (v) => v === false, 1000);

    // Turn it on with targeting: everybody gets `on`.
    const cfg = "/orgs/acme/projects/web/flags/new-checkout/environments/production";
    const { etag } = await api(o, "GET", cfg);
    const t0 = performance.now();
    await api(o, "PUT", cfg, { enabled: true, rules: [], fallthrough: { variant: "on" } }, { headers: { "if-match": etag } });
    const onMs = await until(w, key.secret, "new-checkout", (v) => v === true);
    const onTotal = performance.now() - t0;

    // The kill switch.
    const t1 = performance.now();
    await api(o, "POST", `${cfg}/toggle`, { enabled: false });
    await until(w, key.secret, "new-checkout", (v) => v === false);
    const killTotal = performance.now() - t1;

    const { json: status } = await api(o, "GET", `${env}/publish`);
    console.log(
      `origin -> edge: SDK key + first snapshot published ${first.toFixed(0)} ms after the API call; ` +
      `change visible ${onTotal.toFixed(0)} ms after the API call (polling ${onMs.toFixed(0)} ms); ` +
      `kill switch visible after ${killTotal.toFixed(0)} ms ` +
      `(KV REST puts ${rest.stats.puts}; edge SNAPSHOT_TTL_SECONDS=0; publish status ${JSON.stringify(status)})`,
    );
    assert.ok(onTotal < 5000 && killTotal < 5000, "a change reaches the edge within seconds");

    // Exposures and events flow back: a 50/50 split makes SPLIT
    // evaluations (exposures); a metric event goes through the edge's
    // POST /events; the origin stores both (its ingest counters).
    const { etag: e2 } = await api(o, "GET", cfg);
    await api(o, "PUT", cfg, { enabled: true, rules: [], fallthrough: { rollout: [
      { variant: "on", weight: 50 }, { variant: "off", weight: 50 }] } }, { headers: { "if-match": e2 } });
    await published(o, env);
    for (let i = 0; i < 20; i++) {
      const r = await post(w, "/ofrep/v1/evaluate/flags/new-checkout", { context: { targetingKey: `user-${i}` } }, { key: key.secret });
      assert.equal((await r.json()).reason, "SPLIT");
    }
    const ev = await post(w, "/events", { events: [{ name: "purchase", targetingKey: "user-1", value: 12.5, id: "o-1" }] }, { key: key.secret });
    assert.equal(ev.status, 202);
    const accepted = async () => {
      // /metrics is for the operator: the administrator token opens it.
      const text = await (await fetch(`${o}/metrics`, { headers: { authorization: `Bearer ${ROOT_TOKEN}` } })).text();
      return Number(text.match(/^bunting_events_accepted_total (\d+)/m)?.[1] ?? 0);
    };
    const t2 = performance.now();
    while ((await accepted()) < 21) {
      assert.ok(performance.now() - t2 < 10000, `the origin accepted ${await accepted()} of 21 events`);
      // Each request lets the edge flush what waits.
      await post(w, "/ofrep/v1/evaluate/flags/new-checkout", { context: { targetingKey: "user-0" } }, { key: key.secret });
      await new Promise((res) => setTimeout(res, 20));
    }

    // Rotating the SDK key without grace: the new key is published and the
    // old one deleted from KV (the edge forgets a cached key within 30 s,
    // auth.rs KEY_TTL_MS; a fresh isolate refuses it at once).
    const { json: rotated } = await api(o, "POST", `${env}/sdk-keys/${key.id}/rotate`, { graceSeconds: 0 });
    await published(o, env);
    await until(w, rotated.secret, "new-checkout", (v) => v === false, 1000);
    const oldEntry = `sdk-key:${sha256Hex(key.secret)}`;
    const deadline = performance.now() + 10000;
    while ((await w.kv.get(oldEntry)) !== null) {
      assert.ok(performance.now() < deadline, "the rotated key is still in KV");
      await new Promise((res) => setTimeout(res, 20));
    }
    assert.notEqual(await w.kv.get(`sdk-key:${sha256Hex(rotated.secret)}`), null);
    const fresh = await startWorker();
    try {
      for (const [k, v] of Object.entries(await kvDump(w.kv))) await fresh.kv.put(k, v);
      const r = await post(fresh, "/ofrep/v1/evaluate/flags/new-checkout", { context: { targetingKey: "u-1" } }, { key: key.secret });
      assert.equal(r.status, 403, "a fresh edge isolate refuses the rotated key");
    } finally {
      await fresh.mf.dispose();
    }
  } finally {
    origin.child.kill("SIGTERM");
    await new Promise((r) => origin.child.once("exit", r));
    rest.server.close();
    await w.mf.dispose();
  }
});
