// Shared by the tests: the repository root, snapshot sealing, local HTTP
// servers on 127.0.0.1, waiting for a condition.
import { createServer } from "node:http";
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Engine } from "../dist/index.js";

export const pkgDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
export const root = path.resolve(pkgDir, "..", "..");
/** The cargo target directory holding native binaries (`BUNTING_TARGET_DIR`, else the repository's). */
export const targetDir = process.env.BUNTING_TARGET_DIR ?? path.join(root, "target");

export function readJson(rel) {
  return JSON.parse(readFileSync(path.join(root, rel), "utf8"));
}

/**
 * Seals a snapshot document (sets `checksum`) through the engine itself: a
 * wrong checksum makes its load fail with "content hashes to sha256:…".
 */
export function seal(doc) {
  const probe = { ...doc, checksum: "sha256:0" };
  try {
    new Engine(JSON.stringify(probe)).free();
  } catch (e) {
    const m = /content hashes to (sha256:[0-9a-f]{64})/.exec(String(e));
    if (m) return { ...doc, checksum: m[1] };
    throw e;
  }
  throw new Error("the engine accepted a wrong checksum");
}

/** The demo snapshot at `version`, environment `environment`, sealed. */
export function demo(version = 1, environment = "acme/web/production", edit = (d) => d) {
  const d = readJson("examples/demo-snapshot.json");
  d.version = version;
  d.environment = environment;
  return seal(edit(d));
}

/** An HTTP server on 127.0.0.1 whose handler can be swapped; records requests. */
export async function server(handler) {
  const state = { handler, requests: [] };
  const s = createServer(async (req, res) => {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const body = Buffer.concat(chunks).toString("utf8");
    state.requests.push({ method: req.method, url: req.url, headers: req.headers, body });
    try {
      await state.handler(req, res, body);
    } catch (e) {
      res.writeHead(500);
      res.end(String(e));
    }
  });
  await new Promise((r) => s.listen(0, "127.0.0.1", r));
  state.url = `http://127.0.0.1:${s.address().port}`;
  state.close = () => new Promise((r) => { s.closeAllConnections?.(); s.close(() => r()); });
  return state;
}

/** Waits until `pred()` is truthy (polling every 10 ms), failing after `ms`. */
export async function until(pred, ms = 10000, what = "condition") {
  const start = Date.now();
  for (;;) {
    const v = await pred();
    if (v) return v;
    if (Date.now() - start > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
