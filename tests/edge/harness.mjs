// Shared setup for tests/edge/*.test.mjs: runs the built worker
// (edge-worker/build/, `cargo xtask edge`) in workerd through miniflare's
// programmatic API, with an in-memory KV namespace. No network needed.
//
// Every response a test receives through `w.fetch`/`post`, and through the
// loopback URL of `listen: true` (real HTTP clients such as the OpenFeature
// SDK), is validated against OFREP's response schemas (ofrep-schema.mjs):
// `w.fetch` throws on a violation; the loopback proxy records it and
// `w.mf.dispose()` throws with every one recorded.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Miniflare } from "miniflare";
import { assertOfrep, ofrepViolations } from "./ofrep-schema.mjs";

export { assertOfrep };

export const root = fileURLToPath(new URL("../..", import.meta.url));
// EDGE_BUILD_DIR (a directory inside the repository, e.g. a copy under
// target/) runs another build of the worker: before/after comparisons.
export const buildDir = process.env.EDGE_BUILD_DIR
  ? path.resolve(root, process.env.EDGE_BUILD_DIR)
  : path.join(root, "edge-worker", "build");
export const COMPATIBILITY_DATE = "2026-04-01";
// The `bunting` CLI (`cargo build -p bunting-origin`): packs snapshots.
export const bin = process.env.BUNTING_BIN ?? path.join(root, "target", "debug", "bunting");

// A complete request.cf: worker's `Cf` type unwraps some fields, so the
// worker reads the raw object, but keep the defaults realistic anyway.
export const BASE_CF = {
  colo: "DFW", country: "US", city: "Austin", region: "Texas", regionCode: "TX",
  continent: "NA", timezone: "America/Chicago", latitude: "30.27130", longitude: "-97.74260",
  asn: 395747, asOrganization: "", httpProtocol: "HTTP/1.1", tlsVersion: "TLSv1.3",
  tlsCipher: "AEAD-AES128-GCM-SHA256", clientTcpRtt: 0, requestPriority: "",
  edgeRequestKeepAliveStatus: 1,
};

export const sha256Hex = (s) => createHash("sha256").update(s).digest("hex");

export function readJson(rel) {
  return JSON.parse(readFileSync(path.join(root, rel), "utf8"));
}

// Entry first, then the wasm module and any wasm-bindgen snippets.
function modules() {
  const entry = path.join(buildDir, "index.js");
  if (!existsSync(entry)) {
    throw new Error(`${entry} is missing: build the worker with \`cargo xtask edge\``);
  }
  const files = [entry];
  const walk = (d) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) {
        if (d !== buildDir || e.name === "snippets") walk(p);
      } else if (/\.(m?js|wasm)$/.test(e.name) && p !== entry) files.push(p);
    }
  };
  walk(buildDir);
  return files.map((p) => ({ type: p.endsWith(".wasm") ? "CompiledWasm" : "ESModule", path: p }));
}

/**
 * Starts the worker. `bindings` are [vars]; `listen` also serves HTTP on a
 * loopback port (for real HTTP clients); `outbound(request)` answers the
 * worker's own fetches; `checkOfrep: false` (benchmarks only: the proxy
 * would be measured too) skips the OFREP schema checks; `pointer: false`
 * leaves out the SNAPSHOT_POINTER Durable Object binding; `workerOptions`
 * are more of miniflare's worker options (e.g. `queueProducers`,
 * `ratelimits`); `inspectorPort` opens workerd's V8 inspector there.
 * Returns { mf, kv, fetch, url }.
 */
export async function startWorker({ bindings = {}, listen = false, cf = BASE_CF, outbound, checkOfrep = true, pointer = true, workerOptions = {}, inspectorPort, persistDurableObjects } = {}) {
  const mf = new Miniflare({
    cf,
    // A directory keeping the Durable Objects' storage across workers
    // (pointer.test.mjs: an object read back from its storage).
    ...(persistDurableObjects ? { durableObjectsPersist: persistDurableObjects } : {}),
    // The V8 inspector of workerd (tests/edge/profile.mjs takes CPU profiles).
    ...(inspectorPort ? { inspectorPort } : {}),
    ...(listen ? { host: "127.0.0.1", port: 0 } : {}),
    workers: [{
      name: "bunting-edge",
      modules: modules(),
      // Module names relative to the repository, whatever the working
      // directory (workerd refuses names starting with `..`).
      modulesRoot: root,
      compatibilityDate: COMPATIBILITY_DATE,
      kvNamespaces: { FLAGS: "flags" },
      // The environments' pointers (wrangler.toml); `pointer: false` runs without.
      ...(pointer ? { durableObjects: { SNAPSHOT_POINTER: { className: "SnapshotPointer", useSQLite: true } } } : {}),
      bindings: { SNAPSHOT_TTL_SECONDS: "0", ...bindings },
      // Every fetch() the worker makes (the ingest POSTs) goes here: no network.
      ...(outbound ? { outboundService: outbound } : {}),
      ...workerOptions,
    }],
  });
  let workerUrl;
  try {
    workerUrl = await mf.ready;
  } catch (e) {
    await mf.dispose().catch(() => {}); // else workerd keeps the test process alive
    throw e;
  }
  const kv = await mf.getKVNamespace("FLAGS");
  const violations = [];
  const url = listen && checkOfrep ? await validatingProxy(workerUrl, violations) : workerUrl;
  const dispose = mf.dispose.bind(mf);
  mf.dispose = async () => {
    await dispose();
    await url.close?.();
    if (violations.length) throw new Error(`responses breaking the OFREP schema:\n${violations.join("\n")}`);
  };
  return {
    mf,
    kv,
    url: String(url),
    fetch: async (p, init = {}) => {
      const href = new URL(p, "http://edge.test").href;
      const r = await mf.dispatchFetch(href, init);
      // An event stream never ends: not read here.
      if (checkOfrep && !isEventStream(r)) await assertOfrep(init.method ?? "GET", href, r);
      return r;
    },
  };
}

const isEventStream = (r) => (r.headers.get("content-type") ?? "").startsWith("text/event-stream");

/**
 * A loopback HTTP server relaying to the worker at `target` and checking
 * every response against OFREP; resolves to its URL (a `URL` with `close`).
 */
async function validatingProxy(target, violations) {
  const server = http.createServer(async (req, res) => {
    try {
      const chunks = [];
      for await (const c of req) chunks.push(c);
      const headers = new Headers();
      for (const [k, v] of Object.entries(req.headers)) {
        if (k !== "host" && k !== "connection") headers.set(k, Array.isArray(v) ? v.join(", ") : v);
      }
      const hasBody = !["GET", "HEAD"].includes(req.method);
      const r = await fetch(new URL(req.url, target), { method: req.method, headers, body: hasBody ? Buffer.concat(chunks) : undefined });
      if (isEventStream(r)) {
        // Relayed as it comes (server-sent events), not validated.
        const out = { "content-type": r.headers.get("content-type") };
        r.headers.forEach((v, k) => { if (k.startsWith("access-control-") || k === "cache-control") out[k] = v; });
        res.writeHead(r.status, out);
        res.flushHeaders();
        res.on("close", () => r.body.cancel().catch(() => {}));
        try {
          for await (const chunk of r.body) res.write(chunk);
        } catch {}
        res.end();
        return;
      }
      const body = Buffer.from(await r.arrayBuffer());
      const problems = ofrepViolations({ method: req.method, url: req.url, status: r.status, contentType: r.headers.get("content-type"), body: body.toString("utf8") });
      if (problems.length) {
        const line = `${req.method} ${req.url} → ${r.status}: ${problems.join("; ")}; body ${body.toString("utf8").slice(0, 300)}`;
        violations.push(line);
        console.error(`OFREP schema violation: ${line}`);
      }
      const out = {};
      r.headers.forEach((v, k) => {
        if (!["content-encoding", "content-length", "transfer-encoding", "connection", "set-cookie"].includes(k)) out[k] = v;
      });
      const cookies = r.headers.getSetCookie();
      if (cookies.length) out["set-cookie"] = cookies;
      res.writeHead(r.status, out);
      res.end(body);
    } catch (e) {
      res.writeHead(502, { "content-type": "text/plain" });
      res.end(String(e));
    }
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = new URL(`http://127.0.0.1:${server.address().port}/`);
  url.close = () => new Promise((resolve) => { server.closeAllConnections(); server.close(resolve); });
  return url;
}

/**
 * Stores an SDK key (only its hash) for `environment`, of `kind` ("client"
 * or "server"); without a kind, the record is one published before keys had
 * one (`{"environment"}` only).
 */
export async function putKey(kv, key, environment, kind) {
  await kv.put(`sdk-key:${sha256Hex(key)}`, JSON.stringify(kind ? { environment, kind } : { environment }));
}

const packed = new Map();

/**
 * `bunting pack --tables-output` of a snapshot text in the packed format's
 * `formatVersion`: `{ value, tables }`, the packed bytes (the text carried
 * inside) and the same without the text, what publishers put under
 * `snapshot:<environment>` and `snapshot-tables:<environment>`. Snapshots
 * with problems are packed too (`--allow-problems`): tests check how the
 * edge serves them. Remembered by text.
 */
function packBoth(text, formatVersion) {
  const key = `${formatVersion}:${text}`;
  if (!packed.has(key)) {
    const dir = mkdtempSync(path.join(tmpdir(), "bunting-pack-"));
    const file = (name) => path.join(dir, name);
    try {
      writeFileSync(file("s.json"), text);
      execFileSync(
        bin,
        ["pack", "--allow-problems", "--format-version", String(formatVersion), file("s.json"),
          "--output", file("s.bin"), "--tables-output", file("t.bin")],
        { stdio: ["ignore", "ignore", "pipe"] },
      );
      packed.set(key, { value: readFileSync(file("s.bin")), tables: readFileSync(file("t.bin")) });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  return packed.get(key);
}

/**
 * `bunting pack` of a snapshot text: the packed bytes (a Buffer of their
 * own), the text carried inside, in the packed format's `formatVersion`
 * (the current one, 2, by default; 1 is what workers before precompiled
 * conditions read).
 */
export function pack(text, formatVersion = 2) {
  return Buffer.from(packBoth(text, formatVersion).value);
}

/**
 * The same snapshot without its JSON text (a Buffer of its own), what
 * publishers put under `snapshot-tables:<environment>`.
 */
export function packTables(text) {
  return Buffer.from(packBoth(text, 2).tables);
}

/**
 * Puts a snapshot (its text, or an object written as JSON) into KV as
 * `snapshot:<environment>`, packed as publishers write it: the worker
 * reads packed values only.
 */
export async function putSnapshot(kv, environment, snapshot) {
  const text = typeof snapshot === "string" ? snapshot : JSON.stringify(snapshot);
  await kv.put(`snapshot:${environment}`, new Uint8Array(pack(text)).buffer);
}

/**
 * Puts a snapshot as the origin publishes it to the KV edge workers read:
 * `snapshot:<environment>` packed with its text ([`putSnapshot`]), then
 * its tables alone under `snapshot-tables:<environment>`.
 */
export async function putSnapshotAndTables(kv, environment, snapshot) {
  const text = typeof snapshot === "string" ? snapshot : JSON.stringify(snapshot);
  await putSnapshot(kv, environment, text);
  await kv.put(`snapshot-tables:${environment}`, new Uint8Array(packTables(text)).buffer);
}

/** Contexts the tests of examples/flags.yaml evaluate with: a targeting rule, a rollout, a segment. */
export const EXAMPLE_CONTEXTS = [
  { targetingKey: "user-1", country: "CA", plan: "pro", email: "jane@example.com" },
  { targetingKey: "user-2", country: "DE", plan: "free" },
  { targetingKey: "admin-1", email: "ops@bunting.dev", app: { version: "2.4.1" } },
];

/**
 * A sealed snapshot of examples/flags.yaml for `environment`, version
 * `version`, as JSON text (`bunting snapshot`; `pretty` indents it).
 */
export function sealedExample(environment, version, { pretty = false } = {}) {
  if (!existsSync(bin)) throw new Error(`${bin} is missing: cargo build -p bunting-origin`);
  return execFileSync(bin, ["snapshot", path.join(root, "examples/flags.yaml"), "--env", environment,
    "--version", String(version), "--generated-at", "2026-11-25T00:00:00Z", ...(pretty ? ["--pretty"] : [])],
  { encoding: "utf8" });
}

/** Puts a snapshot's JSON text into KV as it is (a value the worker refuses). */
export async function putJsonSnapshot(kv, environment, snapshot) {
  const text = typeof snapshot === "string" ? snapshot : JSON.stringify(snapshot);
  await kv.put(`snapshot:${environment}`, text);
}

/** POST JSON with an SDK key. */
export function post(w, p, body, { key, headers = {}, ...rest } = {}) {
  return w.fetch(p, {
    method: "POST",
    headers: {
      "Content-Type": "application/json",
      ...(key ? { Authorization: `Bearer ${key}` } : {}),
      ...headers,
    },
    body: typeof body === "string" ? body : JSON.stringify(body),
    ...rest,
  });
}
