// npm run bench: evaluations per second, single-threaded, through each
// layer of the package (the raw engine, BuntingClient, the OpenFeature
// client), for one flag and for evaluate-all, on 1 000 seeded random
// contexts over the demo snapshot; then process start → first evaluation.
// The native reference runs in the same bench on the same snapshot and
// contexts: `target/release/examples/native_bench` (`cargo build --release
// -p bunting-core --example native_bench`), whose medians give the ratios.
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { OpenFeature } from "@openfeature/server-sdk";
import { BuntingClient, BuntingProvider, Engine } from "../dist/index.js";
import { generator } from "../test/contexts.mjs";
import { demo, pkgDir, targetDir } from "../test/helpers.mjs";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 2);
const snapshot = demo(1);
const text = JSON.stringify(snapshot);
const next = generator(42);
const contexts = Array.from({ length: 1000 }, () => {
  const c = next();
  c.targetingKey = `user-${Math.floor(Math.random() * 1e6)}`;
  return c;
});
const now = Date.parse("2026-12-01T00:00:00Z");
const flags = snapshot.flags.length;

// The native figures, measured first on the same snapshot and contexts.
const nativeBin = path.join(targetDir, "release", "examples", "native_bench");
let native = null;
if (existsSync(nativeBin)) {
  const dir = mkdtempSync(path.join(tmpdir(), "bunting-native-"));
  writeFileSync(path.join(dir, "snapshot.json"), text);
  writeFileSync(path.join(dir, "contexts.json"), JSON.stringify(contexts));
  const r = spawnSync(nativeBin, [path.join(dir, "snapshot.json"), path.join(dir, "contexts.json"), "checkout-button-copy", String(now)], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`native_bench failed: ${r.stderr}`);
  native = JSON.parse(r.stdout);
} else {
  console.log(`(no native reference: build it with \`cargo build --release -p bunting-core --example native_bench\`)`);
}

function measure(label, fn, perCall = 1, nativeUs = native?.oneUs) {
  for (let i = 0; i < 2000; i++) fn(i); // warm-up
  let n = 0;
  const start = performance.now();
  const end = start + SECONDS * 1000;
  while (performance.now() < end) {
    for (let i = 0; i < 500; i++) fn(n++);
  }
  const ms = performance.now() - start;
  const evals = (n * perCall) / (ms / 1000);
  const ratio = nativeUs ? `  ${(1e6 / evals / nativeUs).toFixed(1).padStart(6)}× native` : "";
  console.log(`${label.padEnd(58)} ${Math.round(evals).toLocaleString("en-US").padStart(11)} evaluations/s  ${(1e6 / evals).toFixed(2).padStart(6)} µs/evaluation${ratio}`);
}

async function measureAsync(label, fn, nativeUs = native?.oneUs) {
  for (let i = 0; i < 2000; i++) await fn(i);
  let n = 0;
  const start = performance.now();
  const end = start + SECONDS * 1000;
  while (performance.now() < end) {
    for (let i = 0; i < 500; i++) await fn(n++);
  }
  const ms = performance.now() - start;
  const evals = n / (ms / 1000);
  const ratio = nativeUs ? `  ${(1e6 / evals / nativeUs).toFixed(1).padStart(6)}× native` : "";
  console.log(`${label.padEnd(58)} ${Math.round(evals).toLocaleString("en-US").padStart(11)} evaluations/s  ${(1e6 / evals).toFixed(2).padStart(6)} µs/evaluation${ratio}`);
}

console.log(`Node ${process.version}, demo snapshot (${flags} flags), 1 000 random contexts, ${SECONDS} s per line, single-threaded\n`);
if (native) {
  console.log(`${"native bunting-core, one flag".padEnd(58)} ${Math.round(1e6 / native.oneUs).toLocaleString("en-US").padStart(11)} evaluations/s  ${native.oneUs.toFixed(2).padStart(6)} µs/evaluation`);
  console.log(`${`native bunting-core, evaluateAll, per flag`.padEnd(58)} ${Math.round(1e6 / native.allPerFlagUs).toLocaleString("en-US").padStart(11)} evaluations/s  ${native.allPerFlagUs.toFixed(2).padStart(6)} µs/evaluation`);
}
const engine = new Engine(text);
measure("engine.evaluate (raw wasm-bindgen), one flag", (i) => engine.evaluate("checkout-button-copy", contexts[i % 1000], now, "string"));
measure(`engine.evaluateAll (raw), ${flags} flags, per flag`, (i) => engine.evaluateAll(contexts[i % 1000], now), flags, native?.allPerFlagUs);

const source = { name: "memory", location: "bench", fetch: async () => ({ kind: "snapshot", text }) };
const client = new BuntingClient({ source, clock: () => now });
await client.start();
measure("BuntingClient.evaluate, one flag, no exposures", (i) => client.evaluate("checkout-button-copy", contexts[i % 1000], { expectedType: "string" }));
measure(`BuntingClient.evaluateAll, ${flags} flags, per flag`, (i) => client.evaluateAll(contexts[i % 1000]), flags, native?.allPerFlagUs);

// Exposures recorded (queued and deduplicated) but never sent: an ingest URL nobody listens on, a long flush interval.
const reporting = new BuntingClient({ source, clock: () => now, sdkKey: "bench", ingestUrl: "http://127.0.0.1:9/api/v1/events", flushIntervalMs: 3_600_000, flushAt: 1e9, maxQueuedExposures: 1e9 });
await reporting.start();
measure("BuntingClient.evaluate, one SPLIT flag, exposures on", (i) => reporting.evaluate("checkout-button-copy", contexts[i % 1000], { expectedType: "string" }));

const provider = new BuntingProvider({ source, clock: () => now });
await OpenFeature.setProviderAndWait("bench", provider);
const of = OpenFeature.getClient("bench");
await measureAsync("OpenFeature client.getStringDetails, one flag", (i) => of.getStringDetails("checkout-button-copy", "x", contexts[i % 1000]));
measure(`BuntingProvider.resolveAll, ${flags} flags, per flag`, (i) => provider.resolveAll(contexts[i % 1000]), flags, native?.allPerFlagUs);
await OpenFeature.close();
await reporting.close();

// Process start → first evaluation: a fresh node process imports the
// package, loads a bootstrap-free directory snapshot and evaluates once.
const dir = mkdtempSync(path.join(tmpdir(), "bunting-bench-"));
const { encodeKey } = await import("../dist/index.js");
writeFileSync(path.join(dir, encodeKey("snapshot:acme/web/production")), text);
const script = `
  const t0 = performance.now();
  const { BuntingClient } = await import(${JSON.stringify(path.join(pkgDir, "dist", "index.js"))});
  const t1 = performance.now();
  const c = new BuntingClient({ directory: { path: ${JSON.stringify(dir)}, environment: "acme/web/production" } });
  await c.start();
  c.evaluate("checkout-button-copy", { targetingKey: "u1" });
  const t2 = performance.now();
  console.log(JSON.stringify({ sinceProcessStart: t2, importMs: t1 - t0, startAndEvaluateMs: t2 - t1 }));`;
const runs = [];
for (let i = 0; i < 5; i++) {
  const t = performance.now();
  const r = spawnSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8" });
  const wall = performance.now() - t;
  runs.push({ wall, ...JSON.parse(r.stdout) });
}
const median = (xs) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
console.log(`\nprocess start → first evaluation (median of 5): ${median(runs.map((r) => r.sinceProcessStart)).toFixed(1)} ms in-process ` +
  `(import incl. WebAssembly compile ${median(runs.map((r) => r.importMs)).toFixed(1)} ms, first load + evaluation ` +
  `${median(runs.map((r) => r.startAndEvaluateMs)).toFixed(1)} ms); spawn to exit ${median(runs.map((r) => r.wall)).toFixed(1)} ms`);
