// End to end: automatic rollback through the real stack. The origin
// (`bunting serve`, guardrail monitor every 200 ms) runs an experiment on a
// 50/50 flag served by the edge worker in workerd; a traffic simulator
// evaluates the flag at the edge for new users (the edge sends exposures to
// the origin) and reports checkout errors through the edge's POST /events,
// ten times as often in the treatment. The monitor's sequential harm test
// trips, the flag is rolled back to control and published, and the edge
// serves control to everybody. Events-to-rollback and time-to-rollback are
// printed.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { startWorker, post } from "./harness.mjs";
import { INGEST_SECRET, api, bin, freePort, kvRestServer, published, startOrigin } from "./stack.mjs";

// Deterministic pseudo-random numbers (mulberry32).
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

test("a regression in the treatment is rolled back and the edge serves control", { skip: !existsSync(bin) && `${bin} is not built` }, async () => {
  const port = await freePort();
  const w = await startWorker({ bindings: {
    INGEST_URL: `http://127.0.0.1:${port}/api/v1/events`, INGEST_SECRET, INGEST_FLUSH_SECONDS: "0",
  } });
  const rest = await kvRestServer(w.kv);
  const origin = await startOrigin(rest.url, port, ["--monitor-seconds", "0.2"]);
  try {
    const o = origin.base;
    const p = "/orgs/acme/projects/web";
    const env = `${p}/environments/production`;
    await api(o, "POST", "/orgs", { key: "acme", name: "Acme" });
    await api(o, "POST", "/orgs/acme/projects", { key: "web", name: "Web" });
    await api(o, "POST", `${p}/environments`, { key: "production", name: "Production" });
    await api(o, "POST", `${p}/flags`, {
      key: "one-page-checkout", flagType: "boolean", variants: { on: true, off: false }, offVariant: "off",
      clientSide: true, // evaluated below with a client key
    });
    const cfg = `${p}/flags/one-page-checkout/environments/production`;
    const { etag } = await api(o, "GET", cfg);
    await api(o, "PUT", cfg, { enabled: true, rules: [], fallthrough: { rollout: [
      { variant: "on", weight: 50 }, { variant: "off", weight: 50 }] } }, { headers: { "if-match": etag } });
    await api(o, "POST", `${p}/metrics`, { key: "purchased", kind: "conversion", event: "purchase" });
    await api(o, "POST", `${p}/metrics`, {
      key: "checkout-errors", kind: "conversion", event: "checkout_error", higherIsBetter: false,
    });
    const { json: x } = await api(o, "POST", `${env}/experiments`, {
      key: "one-page", flag: "one-page-checkout", control: "off", primaryMetric: "purchased",
      guardrails: [{ metric: "checkout-errors", tolerance: 0, action: "serveControl" }],
    });
    await api(o, "POST", `${env}/experiments/one-page/start`, null, { headers: { "if-match": `"${x.version}"` } });
    const { json: key } = await api(o, "POST", `${env}/sdk-keys`, { kind: "client", name: "web" });
    await published(o, env);

    // Traffic: 2% errors in control, 20% in the treatment.
    const random = rng(7);
    const t0 = performance.now();
    let users = 0, events = 0, rolledBackAt = null;
    while (performance.now() - t0 < 60000) {
      const batch = [];
      for (let i = 0; i < 20; i++, users++) {
        const user = `user-${users}`;
        batch.push((async () => {
          const r = await post(w, "/ofrep/v1/evaluate/flags/one-page-checkout", { context: { targetingKey: user } }, { key: key.secret });
          const body = await r.json();
          assert.equal(r.status, 200, JSON.stringify(body));
          if (body.reason === "SPLIT" && random() < (body.variant === "on" ? 0.2 : 0.02)) {
            events++;
            const e = await post(w, "/events", { events: [{ name: "checkout_error", targetingKey: user, id: `err-${user}` }] }, { key: key.secret });
            assert.equal(e.status, 202);
          }
          return body;
        })());
      }
      const answers = await Promise.all(batch);
      if (answers.every((a) => a.reason !== "SPLIT" && a.variant === "off")) {
        rolledBackAt = performance.now() - t0;
        break;
      }
    }
    assert.ok(rolledBackAt !== null, `no rollback after ${users} users`);
    const { json: exp } = await api(o, "GET", `${env}/experiments/one-page`);
    assert.equal(exp.status, "stopped");
    const { json: audit } = await api(o, "GET", "/orgs/acme/audit?actor=auto-rollback");
    const rollback = audit.items.find((e) => e.action === "rollback");
    assert.ok(rollback, JSON.stringify(audit));
    const evidence = JSON.parse(rollback.after).evidence;
    assert.equal(evidence.metric, "checkout-errors");
    console.log(
      `auto-rollback: ${users} users evaluated and ${events} error events sent through the edge before it ` +
      `served control to everybody, ${rolledBackAt.toFixed(0)} ms after traffic started ` +
      `(effect ${evidence.effect?.toFixed(4)}, p ${evidence.pValue?.toExponential(2)}, monitor every 200 ms)`,
    );
  } finally {
    origin.child.kill("SIGTERM");
    await new Promise((r) => origin.child.once("exit", r));
    rest.server.close();
    await w.mf.dispose();
  }
});
