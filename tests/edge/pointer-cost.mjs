// The cost of the pointer check per evaluation (a benchmark, not a test):
// two workers in workerd (miniflare), the same 1,000-flag snapshot, one with
// the environments' pointer (the SnapshotPointer Durable Object, asked at most
// every POINTER_CHECK_SECONDS after a response) and one without the binding.
// Single-flag requests alternate between the two over one keep-alive
// connection each, so whatever else runs on the machine slows both alike;
// the figures are per arm and per block, to show the noise beside the
// difference.
//
//   node tests/edge/pointer-cost.mjs            # POINTER_COST_BLOCKS (5) × POINTER_COST_REQUESTS (4000) per arm
import http from "node:http";
import { startWorker, putKey, putSnapshot } from "./harness.mjs";

const BLOCKS = Number(process.env.POINTER_COST_BLOCKS ?? 5);
const PER_BLOCK = Number(process.env.POINTER_COST_REQUESTS ?? 4000);
const SECRET = "pointer-cost-secret";
const OPERATOR = "pointer-cost-operator";
const KEY = "sdk-pointer-cost";
const ENV = "cost";

// 1,000 flags, each a two-clause rule serving a 50/50 rollout.
const SNAPSHOT = JSON.stringify({
  schemaVersion: 1, environment: ENV, version: 1, generatedAt: "2026-12-03T00:00:00Z",
  flags: Array.from({ length: 1000 }, (_, i) => ({
    key: `flag-${i}`, type: "string", variants: { a: "a", b: "b", off: "off" }, offVariant: "off",
    rules: [{ id: "r", condition: `country in ["US", "CA"] && plan != "free"`,
      serve: { rollout: [{ variant: "a", weight: 50 }, { variant: "b", weight: 50 }] } }],
    fallthrough: { variant: "a" },
  })),
});
const BODY = JSON.stringify({ context: { targetingKey: "user-12345", country: "CA", plan: "pro" } });

function request(agent, url, path, { method = "POST", body = BODY, headers = { Authorization: `Bearer ${KEY}` } } = {}) {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const r = http.request(new URL(path, url), { agent, method, headers: { "Content-Type": "application/json", ...headers } }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (c) => (text += c));
      res.on("end", () => resolve({ status: res.statusCode, text, ms: Number(process.hrtime.bigint() - t0) / 1e6 }));
    });
    r.on("error", reject);
    r.end(method === "GET" ? undefined : body);
  });
}

const quantile = (xs, q) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
};
const stats = (xs) => ({ p50: quantile(xs, 0.5), p90: quantile(xs, 0.9), p99: quantile(xs, 0.99), p999: quantile(xs, 0.999), mean: xs.reduce((a, b) => a + b, 0) / xs.length });
const f = (ms) => ms.toFixed(3);

const arms = {};
for (const [name, pointer] of [["with pointer", true], ["without pointer", false]]) {
  const w = await startWorker({ listen: true, checkOfrep: false, pointer,
    bindings: { SNAPSHOT_TTL_SECONDS: "5", POINTER_CHECK_SECONDS: "0.5", POINTER_SECRET: SECRET, OPERATOR_SECRET: OPERATOR } });
  await putKey(w.kv, KEY, ENV, "server");
  await putSnapshot(w.kv, ENV, SNAPSHOT);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  if (pointer) {
    // The object holds the version KV serves: every question is answered 204.
    const p = await request(agent, w.url, "/edge/v1/snapshot", { body: SNAPSHOT, headers: { Authorization: `Bearer ${SECRET}` } });
    if (p.status !== 200) throw new Error(`publishing to the pointer: ${p.status} ${p.text}`);
  }
  const first = await request(agent, w.url, "/ofrep/v1/evaluate/flags/flag-7");
  const answer = JSON.parse(first.text);
  if (first.status !== 200 || answer.reason !== "SPLIT") throw new Error(`${name}: unexpected answer ${first.text}`);
  arms[name] = { w, agent, blocks: [] };
}

// Warm both (JIT, caches), then alternate A, B, A, B… within each block.
const names = Object.keys(arms);
for (let i = 0; i < 500; i++) for (const n of names) await request(arms[n].agent, arms[n].w.url, "/ofrep/v1/evaluate/flags/flag-7");
const started = Date.now();
for (let b = 0; b < BLOCKS; b++) {
  const lat = Object.fromEntries(names.map((n) => [n, []]));
  for (let i = 0; i < PER_BLOCK; i++) {
    const order = (i + b) % 2 === 0 ? names : [...names].reverse();
    for (const n of order) {
      const r = await request(arms[n].agent, arms[n].w.url, `/ofrep/v1/evaluate/flags/flag-${i % 1000}`);
      if (r.status !== 200) throw new Error(`${n}: HTTP ${r.status} ${r.text}`);
      lat[n].push(r.ms);
    }
  }
  for (const n of names) arms[n].blocks.push(lat[n]);
}
const seconds = (Date.now() - started) / 1000;

const health = JSON.parse((await request(arms["with pointer"].agent, arms["with pointer"].w.url, "/healthz", { method: "GET", headers: { Authorization: `Bearer ${OPERATOR}` } })).text);
const checks = health.pointers?.[ENV]?.checks ?? 0;

console.log(`pointer check cost: ${BLOCKS} blocks × ${PER_BLOCK} single-flag requests per arm, alternating, ${seconds.toFixed(1)} s`);
console.log(`questions to the pointer during the run: ${checks} (${(PER_BLOCK * BLOCKS / Math.max(checks, 1)).toFixed(0)} evaluations per question)\n`);
console.log("| arm | p50 ms | p90 ms | p99 ms | p99.9 ms | mean ms | p99 per block (ms) |");
console.log("|---|---|---|---|---|---|---|");
const rows = {};
for (const n of names) {
  const all = arms[n].blocks.flat();
  const s = stats(all);
  rows[n] = { ...s, blockP99: arms[n].blocks.map((b) => stats(b).p99) };
  console.log(`| ${n} | ${f(s.p50)} | ${f(s.p90)} | ${f(s.p99)} | ${f(s.p999)} | ${f(s.mean)} | ${rows[n].blockP99.map(f).join(", ")} |`);
}
const [a, b] = names.map((n) => rows[n]);
const spread = Math.max(...b.blockP99) - Math.min(...b.blockP99);
console.log(`\np99 with − without: ${f(a.p99 - b.p99)} ms; p50: ${f(a.p50 - b.p50)} ms; spread of the p99 over the blocks without the pointer: ${f(spread)} ms`);

for (const n of names) { arms[n].agent.destroy(); await arms[n].w.mf.dispose(); }
