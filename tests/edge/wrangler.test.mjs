// The deployment configuration (wrangler.toml) with the real wrangler CLI:
// a dry-run deploy bundles the built worker, and `wrangler dev` serves it in
// workerd with local KV. Offline: CI=true, no metrics, no cf.json fetch.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { setTimeout as sleep } from "node:timers/promises";
import { assertOfrep, pack, root, sha256Hex } from "./harness.mjs";

const wrangler = path.join(root, "node_modules", ".bin", "wrangler");
const env = {
  ...process.env,
  CI: "true", WRANGLER_SEND_METRICS: "false", WRANGLER_SEND_ERROR_REPORTS: "false",
  WRANGLER_HIDE_BANNER: "true", CLOUDFLARE_CF_FETCH_ENABLED: "false", NO_COLOR: "1",
};
const run = (args) => promisify(execFile)(wrangler, args, { cwd: root, env, maxBuffer: 1 << 24 });

test("wrangler.toml: compatibility date supported by the pinned workerd", () => {
  const toml = readFileSync(path.join(root, "wrangler.toml"), "utf8");
  const date = toml.match(/^compatibility_date\s*=\s*"([^"]+)"/m)[1];
  assert.ok(date <= "2026-05-03", `${date} is newer than workerd 1.20260426 supports`);
  assert.match(toml, /^main\s*=\s*"edge-worker\/build\/index\.js"/m);
});

test("wrangler deploy --dry-run bundles the worker with its KV, queue and rate-limiting bindings", async () => {
  const out = mkdtempSync(path.join(tmpdir(), "bunting-wrangler-"));
  try {
    const { stdout } = await run(["deploy", "--dry-run", "--outdir", out]);
    assert.match(stdout, /env\.FLAGS/);
    // Exposures and events: the queue producer (the worker also consumes it).
    assert.match(stdout, /env\.INGEST_QUEUE \(bunting-ingest\)\s+Queue/);
    assert.match(stdout, /env\.RATE_LIMITER/);
    assert.match(stdout, /Total Upload/);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

async function freePort() {
  const srv = createServer();
  await new Promise((r) => srv.listen(0, "127.0.0.1", r));
  const { port } = srv.address();
  await new Promise((r) => srv.close(r));
  return port;
}

test("wrangler dev serves OFREP from local KV", async () => {
  const state = mkdtempSync(path.join(tmpdir(), "bunting-wrangler-state-"));
  const key = "sdk-wrangler-dev";
  const kvPut = (k, v) => run(["kv", "key", "put", "--local", "--binding", "FLAGS", "--persist-to", state, k, v]);
  let child;
  try {
    await kvPut(`sdk-key:${sha256Hex(key)}`, JSON.stringify({ environment: "production", kind: "server" }));
    // Packed, as `bunting publish` writes it (the worker reads packed values only).
    const packed = path.join(state, "snapshot.bin");
    writeFileSync(packed, pack(readFileSync(path.join(root, "examples", "demo-snapshot.json"), "utf8")));
    await run(["kv", "key", "put", "--local", "--binding", "FLAGS", "--persist-to", state, "snapshot:production", "--path", packed]);
    const port = await freePort();
    // Own process group: wrangler starts node and workerd children; stop them all.
    child = spawn(wrangler, ["dev", "--ip", "127.0.0.1", "--port", String(port), "--inspector-port", "0",
      "--persist-to", state, "--show-interactive-dev-session=false"], { cwd: root, env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
    let log = "";
    child.stdout.on("data", (d) => (log += d));
    child.stderr.on("data", (d) => (log += d));
    const base = `http://127.0.0.1:${port}`;
    let health;
    for (let i = 0; i < 300 && !health; i++) {
      try {
        const r = await fetch(`${base}/healthz`);
        if (r.ok) health = await r.json();
      } catch {
        if (child.exitCode !== null) break;
        await sleep(100);
      }
    }
    assert.ok(health, `wrangler dev did not come up:\n${log}`);
    const r = await fetch(`${base}/ofrep/v1/evaluate/flags/holiday-promo`, {
      method: "POST",
      headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
      body: JSON.stringify({ context: { targetingKey: "user-chen", country: "CA" } }),
    });
    assert.equal(r.status, 200, log);
    await assertOfrep("POST", r.url, r);
    const b = await r.json();
    assert.equal(b.variant, "free-shipping");
    assert.equal(b.reason, "TARGETING_MATCH");
  } finally {
    if (child && child.exitCode === null) {
      try { process.kill(-child.pid, "SIGTERM"); } catch {}
      await new Promise((r) => (child.exitCode !== null ? r() : child.once("exit", r)));
    }
    rmSync(state, { recursive: true, force: true });
  }
});
