// CPU profile of the edge worker in workerd (NOT a test). After
// `cargo xtask edge` (for function names, build without stripping:
// CARGO_PROFILE_WASM_STRIP=false), e.g.
//
//   node tests/edge/profile.mjs                       # single flag, 5 s
//   PROFILE_PATH=/ofrep/v1/evaluate/flags node tests/edge/profile.mjs
//   PROFILE_MODE=new-version node tests/edge/profile.mjs
//   PROFILE_MODE=pointer PROFILE_PACKED=1 node tests/edge/profile.mjs
//   PROFILE_KIND=heap node tests/edge/profile.mjs     # JS bytes per answer
//
// Serves the worker with workerd's V8 inspector open (miniflare's
// inspectorPort), seeds the 1,000-flag snapshot of bench.mjs, then profiles
// (Profiler.start/stop) either autocannon on one connection against
// PROFILE_PATH for PROFILE_SECONDS (mode "load", the default) or 20 rounds
// of "publish a new snapshot version to KV, one request, three more" with
// SNAPSHOT_TTL_SECONDS = 0 (mode "new-version"), or of "publish a new
// version to the environment's pointer (POST /edge/v1/snapshot), one request
// asking for it with flagConfigEtag (it waits for the pointer's answer and
// loads it), three more" (mode "pointer": the cold phase of bench.mjs with
// BENCH_VIA_POINTER=1; PROFILE_PACKED=1 publishes packed values, made by
// `bunting pack` as bench.mjs does, BUNTING_BIN; each timed request is
// profiled alone). The Durable Object's code shows in the same profile as
// the worker's (workerd has one inspector target for both), so the object's
// answer and the isolate's read are both there. Writes the profile (mode
// "pointer": the last request's) to PROFILE_OUT (default
// target/edge-worker.cpuprofile; Chrome DevTools opens it) and prints the
// functions with the most time, self and inclusive (PROFILE_TOP of them),
// in mode "pointer" per timed request and also by part of the question.
// EDGE_BUILD_DIR as in harness.mjs.
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import autocannon from "autocannon";
import WebSocket from "ws";
import { BODY, snapshot } from "./bench-data.mjs";
import { putKey, putSnapshot, root, startWorker } from "./harness.mjs";
import { bin, pack as packFile } from "./stack.mjs";

/** `bunting pack` of a snapshot text, in an ArrayBuffer of its own. */
const pack = (text) => new Uint8Array(packFile(text));

const MODE = process.env.PROFILE_MODE ?? "load";
// PROFILE_KIND=heap: a sampling heap profile of the load instead (bytes of
// JavaScript allocated per answer, by function).
const KIND = process.env.PROFILE_KIND ?? "cpu";
const PATH = process.env.PROFILE_PATH ?? "/ofrep/v1/evaluate/flags/flag-0";
const SECONDS = Number(process.env.PROFILE_SECONDS ?? 5);
const OUT = process.env.PROFILE_OUT ?? path.join(root, "target", "edge-worker.cpuprofile");
const PORT = Number(process.env.PROFILE_INSPECTOR_PORT ?? 9239);
const KEY = "sdk-profile";
// How many functions the report lists, self and inclusive.
const TOP = Number(process.env.PROFILE_TOP ?? 40);
const POINTER_SECRET = "profile-pointer-secret";
const PACKED = process.env.PROFILE_PACKED === "1";


const w = await startWorker({
  listen: true, checkOfrep: false, inspectorPort: PORT,
  bindings: MODE === "pointer"
    // KV read once, the isolate's own pointer checks paced out of the way.
    ? { SNAPSHOT_TTL_SECONDS: "3600", POINTER_CHECK_SECONDS: "3600", POINTER_SECRET }
    : { SNAPSHOT_TTL_SECONDS: MODE === "new-version" ? "0" : "5", POINTER_CHECK_SECONDS: "0.5" },
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
  // Mode "pointer" profiles each timed request alone (the publish before
  // it loads the snapshot too, to validate it): one profile per request,
  // reported together.
  const profiles = [];
  if (MODE !== "pointer") await send("Profiler.start");
  if (MODE === "new-version" || MODE === "pointer") {
    const post = async (query = "") => {
      const t0 = performance.now();
      const r = await fetch(new URL(PATH + query, w.url), { method: "POST", body: BODY,
        headers: { "content-type": "application/json", authorization: `Bearer ${KEY}` } });
      await r.text();
      return performance.now() - t0;
    };
    const fresh = [];
    // Packed values made before the profile starts (`bunting pack` runs
    // take longer than the requests).
    const values = new Map();
    for (let v = 2; v <= 21; v++) {
      const text = snapshot("bench", 1000, v);
      values.set(v, MODE === "pointer" && PACKED ? pack(text) : text);
    }
    for (let v = 2; v <= 21; v++) {
      if (MODE === "pointer") {
        const r = await fetch(new URL("/edge/v1/snapshot", w.url), { method: "POST", body: values.get(v),
          headers: { Authorization: `Bearer ${POINTER_SECRET}`,
            "Content-Type": PACKED ? "application/octet-stream" : "application/json" } });
        if (r.status !== 200) throw new Error(`publishing to the pointer: ${r.status} ${await r.text()}`);
        await send("Profiler.start");
        fresh.push(await post(`?flagConfigEtag=${v}`));
        profiles.push((await send("Profiler.stop")).result.profile);
      } else {
        await putSnapshot(w.kv, "bench", values.get(v));
        fresh.push(await post());
      }
      for (let i = 0; i < 3; i++) await post();
    }
    fresh.sort((a, b) => a - b);
    console.log(`new version: median ${fresh[fresh.length >> 1].toFixed(2)} ms over ${fresh.length} (profiler running)`);
  } else {
    const r = await load(SECONDS);
    console.log(`${PATH}: ${r.requests.average} req/s (profiler running)`);
  }
  if (MODE !== "pointer") profiles.push((await send("Profiler.stop")).result.profile);
  ws.close();
  mkdirSync(path.dirname(OUT), { recursive: true });
  // Mode "pointer": the last request's profile (the report sums them all).
  writeFileSync(OUT, JSON.stringify(profiles[profiles.length - 1]));
  console.log(`profile written to ${path.relative(root, OUT)}`);
  report(profiles);
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

/**
 * Prints the functions with the most samples, self and inclusive, over
 * `profiles` together; with several, also the milliseconds per profile
 * (per timed request in mode "pointer").
 */
function report(profiles) {
  const name = (n) => (n.callFrame.functionName || "(anonymous)").replace(/::h[0-9a-f]{16}.*$/, "").slice(0, 110);
  const self = new Map();
  const incl = new Map();
  const add = (m, k, c) => m.set(k, (m.get(k) ?? 0) + c);
  let total = 0;
  let us = 0;
  for (const profile of profiles) {
    const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
    const parent = new Map();
    for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
    const counts = new Map();
    // Each sample weighs the time to the next (the sampling interval
    // stretches under load).
    for (let i = 0; i < profile.samples.length; i++) {
      const dt = profile.timeDeltas[i + 1] ?? 0;
      counts.set(profile.samples[i], (counts.get(profile.samples[i]) ?? 0) + dt);
    }
    us += profile.endTime - profile.startTime;
    for (const [nid, c] of counts) {
      total += c;
      add(self, name(nodes.get(nid)), c);
      const seen = new Set();
      for (let x = nid; x !== undefined; x = parent.get(x)) {
        const k = name(nodes.get(x));
        if (!seen.has(k)) { seen.add(k); add(incl, k, c); }
      }
    }
  }
  const n = profiles.length;
  if (MODE === "pointer") breakdown(profiles);
  const top = (m, k) => [...m].sort((a, b) => b[1] - a[1]).slice(0, k)
    .map(([f, c]) => `  ${((100 * c) / total).toFixed(1).padStart(5)} %` +
      (n > 1 ? ` ${(c / 1000 / n).toFixed(3).padStart(7)} ms/profile` : "") + `  ${f}`).join("\n");
  const per = n > 1 ? `; ${n} profiles, ${(us / 1000 / n).toFixed(2)} ms each on average` : "";
  console.log(`\nself (${(total / 1000).toFixed(1)} ms sampled${per})\n${top(self, Math.ceil(TOP * 0.6))}\n\ninclusive\n${top(incl, TOP)}`);
}

/**
 * Mode "pointer": the sampled time per timed request by part, each sample
 * counted in the first part any function of its stack matches.
 */
function breakdown(profiles) {
  const parts = [
    ["object: storage reads (load)", /SnapshotPointer::load|append_chunk/],
    ["object: answer (value copied out, Response)", /SnapshotPointer::answer|From<worker::response::Response> for web_sys/],
    ["isolate: body read through a stream reader", /Response::bytes|ByteStream|wasm_streams|ReadableStreamDefaultReader/],
    ["isolate: body read, arrayBuffer()", /Response::array_buffer/],
    ["isolate: snapshot load (load_value)", /cache::load_value/],
    ["isolate: fingerprint, rest of apply_pointer", /apply_pointer/],
    ["isolate: rest of the question (fetch, copies, wakeups)", /ask_pointer/],
    ["isolate: the evaluation and the request", /worker_main::|entry::/],
    ["garbage collector", /^\(garbage collector\)$/],
    ["idle (waiting: I/O, the client, the profiler)", /^\(idle\)$/],
  ];
  const name = (n) => (n.callFrame.functionName || "(anonymous)").replace(/::h[0-9a-f]{16}.*$/, "");
  const sums = new Map();
  for (const profile of profiles) {
    const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
    const parent = new Map();
    for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
    for (let i = 0; i < profile.samples.length; i++) {
      const stack = [];
      for (let x = profile.samples[i]; x !== undefined; x = parent.get(x)) stack.push(name(nodes.get(x)));
      const part = parts.find(([, re]) => stack.some((f) => re.test(f)))?.[0] ?? "other (JavaScript glue, microtasks, runtime)";
      sums.set(part, (sums.get(part) ?? 0) + (profile.timeDeltas[i + 1] ?? 0));
    }
  }
  console.log("\nby part (sampled ms per timed request)");
  for (const [part] of [...parts, ["other (JavaScript glue, microtasks, runtime)"]]) {
    if (sums.has(part)) console.log(`  ${(sums.get(part) / 1000 / profiles.length).toFixed(3).padStart(7)} ms  ${part}`);
  }
}
