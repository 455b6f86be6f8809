// Shared setup for tests/edge/*.test.mjs: runs the built worker
// (edge-worker/build/, `cargo xtask edge`) in workerd through miniflare's
// programmatic API, with an in-memory KV namespace. No network needed.
import { createHash } from "node:crypto";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Miniflare } from "miniflare";

export const root = fileURLToPath(new URL("../..", import.meta.url));
export const buildDir = path.join(root, "edge-worker", "build");
export const COMPATIBILITY_DATE = "2026-04-01";

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
 * worker's own fetches. Returns { mf, kv, fetch, url }.
 */
export async function startWorker({ bindings = {}, listen = false, cf = BASE_CF, outbound } = {}) {
  const mf = new Miniflare({
    cf,
    ...(listen ? { host: "127.0.0.1", port: 0 } : {}),
    workers: [{
      name: "bunting-edge",
      modules: modules(),
      compatibilityDate: COMPATIBILITY_DATE,
      kvNamespaces: { FLAGS: "flags" },
      bindings: { SNAPSHOT_TTL_SECONDS: "0", ...bindings },
      // Every fetch() the worker makes (the ingest POSTs) goes here: no network.
      ...(outbound ? { outboundService: outbound } : {}),
    }],
  });
  const url = await mf.ready;
  const kv = await mf.getKVNamespace("FLAGS");
  return {
    mf,
    kv,
    url,
    fetch: (p, init) => mf.dispatchFetch(new URL(p, "http://edge.test").href, init),
  };
}

/** Stores an SDK key (only its hash) for `environment`. */
export async function putKey(kv, key, environment) {
  await kv.put(`sdk-key:${sha256Hex(key)}`, JSON.stringify({ environment }));
}

export async function putSnapshot(kv, environment, snapshot) {
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
