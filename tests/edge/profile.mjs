// CPU profile of the edge worker in workerd (NOT a test). After
// `cargo xtask edge` (for function names, build without stripping:
// CARGO_PROFILE_WASM_STRIP=false), e.g.
//
//   node tests/edge/profile.mjs                       # single flag, 5 s
//   PROFILE_PATH=/ofrep/v1/evaluate/flags node tests/edge/profile.mjs
//   PROFILE_MODE=new-version node tests/edge/profile.mjs
//   PROFILE_KIND=heap node tests/edge/profile.mjs     # JS bytes per answer
//
// Serves the worker with workerd's V8 inspector open (miniflare's
// inspectorPort), seeds the 1,000-flag snapshot of bench.mjs, then profiles
// (Profiler.start/stop) either autocannon on one connection against
// PROFILE_PATH for PROFILE_SECONDS (mode "load", the default) or 20 rounds
// of "publish a new snapshot version to KV, one request, three more" with
// SNAPSHOT_TTL_SECONDS = 0 (mode "new-version"). Writes the profile to
// PROFILE_OUT (default target/edge-worker.cpuprofile; Chrome DevTools opens
// it) and prints the functions with the most samples, self and inclusive.
// EDGE_BUILD_DIR as in harness.mjs.
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { performance } from "node:perf_hooks";
import autocannon from "autocannon";
import WebSocket from "ws";
import { BODY, snapshot } from "./bench-data.mjs";
import { putKey, putSnapshot, root, startWorker } from "./harness.mjs";

const MODE = process.env.PROFILE_MODE ?? "load";
// PROFILE_KIND=heap: a sampling heap profile of the load instead (bytes of
// JavaScript allocated per answer, by function).
const KIND = process.env.PROFILE_KIND ?? "cpu";
const PATH = process.env.PROFILE_PATH ?? "/ofrep/v1/evaluate/flags/flag-0";
const SECONDS = Number(process.env.PROFILE_SECONDS ?? 5);
const OUT = process.env.PROFILE_OUT ?? path.join(root, "target", "edge-worker.cpuprofile");
const PORT = Number(process.env.PROFILE_INSPECTOR_PORT ?? 9239);
const KEY = "sdk-profile";

const w = await startWorker({
  listen: true, checkOfrep: false, inspectorPort: PORT,
  bindings: { SNAPSHOT_TTL_SECONDS: MODE === "new-version" ? "0" : "5", POINTER_CHECK_SECONDS: "0.5" },
});
try {
  await putKey(w.kv, KEY, "bench", "server");
  await putSnapshot(w.kv, "bench", snapshot("bench", 1000));
  const load = (duration) => new Promise((resolve, reject) => autocannon({
    url: new URL(PATH, w.url).href, method: "POST", body: BODY, connections: 1, duration,
    headers: { "content-type": "application/json", authorization: `Bearer ${KEY}` },
  }, (e, r) => (e ? reject(e) : resolve(r))));
  await load(2); // warm-up: the snapshot is loaded, the code is compiled

  const targets = await (await fetch(`http://127.0.0.1:${PORT}/json/list`)).json();
  const target = targets.find((t) => String(t.id).includes("bunting-edge"));
  if (!target) throw new Error(`no inspector target for the worker in ${JSON.stringify(targets)}`);
  const ws = new WebSocket(target.webSocketDebuggerUrl ?? `ws://127.0.0.1:${PORT}/${target.id}`);
  await new Promise((resolve, reject) => { ws.once("open", resolve); ws.once("error", reject); });
  let id = 0;
  const pending = new Map();
  ws.on("message", (m) => {
    const x = JSON.parse(m);
    if (pending.has(x.id)) { pending.get(x.id)(x); pending.delete(x.id); }
  });
  const send = (method, params = {}) => new Promise((resolve) => {
    pending.set(++id, resolve);
    ws.send(JSON.stringify({ id, method, params }));
  });
  if (KIND === "heap") {
    // What the worker's JavaScript allocates per answer, by function
    // (objects collected since included): V8's sampling heap profiler.
    await send("HeapProfiler.enable");

    await send("HeapProfiler.startSampling", {
      samplingInterval: 1024, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true,
    });
    const r = await load(SECONDS);
    const { result } = await send("HeapProfiler.stopSampling");
    const usage = (await send("Runtime.getHeapUsage")).result;
    ws.close();
    reportHeap(result.profile, r.requests.total, usage);
    process.exitCode = 0;
  } else {
  await send("Profiler.enable");
  await send("Profiler.setSamplingInterval", { interval: 50 });
  await send("Profiler.start");
  if (MODE === "new-version") {
    const post = async () => {
      const t0 = performance.now();
      const r = await fetch(new URL(PATH, w.url), { method: "POST", body: BODY,
        headers: { "content-type": "application/json", authorization: `Bearer ${KEY}` } });
      await r.text();
      return performance.now() - t0;
    };
    const fresh = [];
    for (let v = 2; v <= 21; v++) {
      await putSnapshot(w.kv, "bench", snapshot("bench", 1000, v));
      fresh.push(await post());
      for (let i = 0; i < 3; i++) await post();
    }
    fresh.sort((a, b) => a - b);
    console.log(`new version: median ${fresh[fresh.length >> 1].toFixed(2)} ms over ${fresh.length} (profiler running)`);
  } else {
    const r = await load(SECONDS);
    console.log(`${PATH}: ${r.requests.average} req/s (profiler running)`);
  }
  const { result } = await send("Profiler.stop");
  ws.close();
  mkdirSync(path.dirname(OUT), { recursive: true });
  writeFileSync(OUT, JSON.stringify(result.profile));
  console.log(`profile written to ${path.relative(root, OUT)}`);
  report(result.profile);
  }
} finally {
  await w.mf.dispose();
}

/** Prints the bytes allocated per answer in all and by the functions that allocate most. */
function reportHeap(profile, answers, usage) {
  const bySelf = new Map();
  let total = 0;
  const walk = (n) => {
    const k = (n.callFrame.functionName || "(anonymous)").replace(/::h[0-9a-f]{16}.*$/, "").slice(0, 100) +
      (n.callFrame.url ? ` ${n.callFrame.url.split("/").pop()}:${n.callFrame.lineNumber}` : "");
    bySelf.set(k, (bySelf.get(k) ?? 0) + n.selfSize);
    total += n.selfSize;
    for (const c of n.children ?? []) walk(c);
  };
  walk(profile.head);
  console.log(`\nJS allocated: ${(total / 1024).toFixed(0)} KiB over ${answers} answers, ` +
    `≈ ${(total / Math.max(1, answers)).toFixed(0)} B per answer (sampled); ` +
    `heap now ${(usage.usedSize / 1024).toFixed(0)} of ${(usage.totalSize / 1024).toFixed(0)} KiB`);
  const top = [...bySelf].sort((a, b) => b[1] - a[1]).slice(0, 25);
  for (const [k, b] of top) console.log(`  ${(b / Math.max(1, answers)).toFixed(0).padStart(6)} B/answer  ${k}`);
}

/** Prints the functions with the most samples, self and inclusive. */
function report(profile) {
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const name = (n) => (n.callFrame.functionName || "(anonymous)").replace(/::h[0-9a-f]{16}.*$/, "").slice(0, 110);
  const self = new Map();
  const incl = new Map();
  const add = (m, k, c) => m.set(k, (m.get(k) ?? 0) + c);
  const counts = new Map();
  for (const s of profile.samples) counts.set(s, (counts.get(s) ?? 0) + 1);
  let total = 0;
  for (const [nid, c] of counts) {
    total += c;
    add(self, name(nodes.get(nid)), c);
    const seen = new Set();
    for (let x = nid; x !== undefined; x = parent.get(x)) {
      const k = name(nodes.get(x));
      if (!seen.has(k)) { seen.add(k); add(incl, k, c); }
    }
  }
  const top = (m, n) => [...m].sort((a, b) => b[1] - a[1]).slice(0, n)
    .map(([k, c]) => `  ${((100 * c) / total).toFixed(1).padStart(5)} %  ${k}`).join("\n");
  console.log(`\nself (${total} samples)\n${top(self, 25)}\n\ninclusive\n${top(incl, 40)}`);
}
