// Publish-to-visible benchmark (NOT a test: node --test only picks up
// *.test.mjs). After `cargo xtask edge` and
// `cargo build -p bunting-origin --bin bunting`:
//
//   node tests/edge/propagation.mjs
//
// A real origin (`bunting serve`, SQLite in memory) publishes through its
// Cloudflare KV REST publisher (a loopback stand-in writing miniflare's KV)
// and, with the pointer, to the worker's `POST /edge/v1/snapshot`; the
// worker runs in workerd with wrangler.toml's [vars] (SNAPSHOT_TTL_SECONDS,
// POINTER_CHECK_SECONDS: production settings, not a zero TTL). Each round
// flips a flag through the origin's API and polls the edge's single-flag
// endpoint every 5 ms until it serves the new value: the time from the API
// call to that answer is publish-to-visible. Printed for three set-ups:
//   - pointer: the pointer, KV as it is (local KV is immediate);
//   - pointer, KV held back: the KV stand-in never stores later snapshots
//     (KV's propagation delay of up to a minute, made endless);
//   - KV only: no --edge-url (the worker's behaviour before the pointer).
// Environment: PROPAGATION_ROUNDS (default 40), PROPAGATION_JSON (also
// write the figures there).
import { readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { root, startWorker, post } from "./harness.mjs";
import { acmeProduction, api, freePort, kvRestServer, startOrigin } from "./stack.mjs";

const ROUNDS = Number(process.env.PROPAGATION_ROUNDS ?? 40);
const SECRET = "propagation-secret-0123456789";

/** wrangler.toml's [vars] (flat `NAME = "value"` lines). */
function wranglerVars() {
  const text = readFileSync(path.join(root, "wrangler.toml"), "utf8");
  const section = text.split(/^\[vars\]$/m)[1].split(/^\[/m)[0];
  return Object.fromEntries([...section.matchAll(/^(\w+)\s*=\s*"([^"]*)"/gm)].map((m) => [m[1], m[2]]));
}

const quantile = (sorted, q) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)];

async function scenario(name, { pointer, holdKv }) {
  const vars = wranglerVars();
  const w = await startWorker({ listen: true, checkOfrep: false, bindings: { ...vars, INGEST_URL: "", POINTER_SECRET: SECRET } });
  let hold = false;
  const kv = {
    put: async (k, v) => { if (!(hold && k.startsWith("snapshot:"))) await w.kv.put(k, v); },
    delete: (k) => w.kv.delete(k),
  };
  const rest = await kvRestServer(kv);
  const port = await freePort();
  const origin = await startOrigin(rest.url, port, pointer ? ["--edge-url", w.url, "--edge-pointer-secret", SECRET] : []);
  try {
    const o = origin.base;
    const env = await acmeProduction(o);
    await api(o, "POST", "/orgs/acme/projects/web/flags", {
      key: "kill", flagType: "boolean", variants: { on: true, off: false }, offVariant: "off",
    });
    const { json: key } = await api(o, "POST", `${env}/sdk-keys`, { kind: "server", name: "bench" });
    const cfg = "/orgs/acme/projects/web/flags/kill/environments/production";
    let last;
    const value = async () => {
      const r = await post(w, "/ofrep/v1/evaluate/flags/kill", { context: { targetingKey: "u-1" } }, { key: key.secret });
      last = `${r.status} ${await r.clone().text()}`;
      return r.status === 200 ? (await r.json()).value : undefined;
    };
    const until = async (want, limitMs = 20000) => {
      const start = performance.now();
      while ((await value()) !== want) {
        if (performance.now() - start > limitMs) throw new Error(`${name}: not visible after ${limitMs} ms: ${last}\n${origin.log()}`);
        await new Promise((r) => setTimeout(r, 5));
      }
    };
    // Enabled, it serves `on`; the rounds toggle it.
    const { etag } = await api(o, "GET", cfg);
    await api(o, "PUT", cfg, { enabled: false, rules: [], fallthrough: { variant: "on" } }, { headers: { "if-match": etag } });
    await until(false);
    hold = holdKv;
    const times = [];
    let enabled = false;
    for (let i = 0; i < ROUNDS; i++) {
      enabled = !enabled;
      const t0 = performance.now();
      await api(o, "POST", `${cfg}/toggle`, { enabled });
      await until(enabled);
      times.push(performance.now() - t0);
      // Rounds start at no particular phase of the isolate's checks.
      await new Promise((r) => setTimeout(r, 50 + Math.random() * 500));
    }
    times.sort((a, b) => a - b);
    const figures = {
      name, rounds: ROUNDS, p50: quantile(times, 0.5), p99: quantile(times, 0.99), max: times.at(-1),
      snapshotTtlSeconds: vars.SNAPSHOT_TTL_SECONDS, pointerCheckSeconds: vars.POINTER_CHECK_SECONDS,
    };
    console.log(`${name.padEnd(26)} p50 ${figures.p50.toFixed(0).padStart(5)} ms  p99 ${figures.p99.toFixed(0).padStart(5)} ms  max ${figures.max.toFixed(0).padStart(5)} ms  (${ROUNDS} changes)`);
    return figures;
  } finally {
    origin.child.kill();
    rest.server.close();
    await w.mf.dispose();
  }
}

const vars = wranglerVars();
console.log(`publish-to-visible: origin API call -> edge answer; wrangler.toml SNAPSHOT_TTL_SECONDS=${vars.SNAPSHOT_TTL_SECONDS}, POINTER_CHECK_SECONDS=${vars.POINTER_CHECK_SECONDS}`);
console.log(`machine: ${os.cpus().length} x ${os.cpus()[0]?.model}, node ${process.version}, ${new Date().toISOString()}`);
const results = [];
results.push(await scenario("pointer", { pointer: true, holdKv: false }));
results.push(await scenario("pointer, KV held back", { pointer: true, holdKv: true }));
results.push(await scenario("KV only (no pointer)", { pointer: false, holdKv: false }));
if (process.env.PROPAGATION_JSON) writeFileSync(process.env.PROPAGATION_JSON, JSON.stringify(results, null, 2));
