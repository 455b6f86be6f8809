// The OpenFeature web SDK with the OFREP web provider (npm) in a real
// browser (Playwright driving Debian's chromium) against the worker in
// workerd: the page is served from another origin than the worker
// (cross-origin: CORS, the event stream), one provider follows the
// advertised event stream (server-sent events) and one polls with ETag;
// a change published to the environment's pointer reaches both, the
// streaming one within about a second; a context change re-evaluates.
// The screenshot is written to target/edge-browser.png.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { createServer } from "node:http";
import path from "node:path";
import { chromium } from "playwright-core";
import { pack, root, startWorker, putKey, putSnapshot } from "./harness.mjs";

const chromiumPath = process.env.BUNTING_CHROMIUM ?? "/usr/bin/chromium";
const SECRET = "pointer-secret-0123456789";
const KEY = "bnt_client_browser-0123456789";

function snap(version, fallthrough) {
  return JSON.stringify({
    schemaVersion: 1, environment: "p", version, generatedAt: "2026-11-25T00:00:00Z",
    flags: [{
      key: "banner", type: "string", variants: { old: "old", new: "new", pro: "pro" }, offVariant: "old",
      rules: [{ id: "pro-plan", condition: 'plan == "pro"', serve: { variant: "pro" } }],
      fallthrough: { variant: fallthrough },
      clientSide: true,
    }],
  });
}

// ES modules of the SDK from node_modules (the provider brings its own
// @openfeature/ofrep-core): `module`, else the `import` export.
const modulesDir = path.join(root, "node_modules", "@openfeature");
function esm(dir) {
  const meta = JSON.parse(readFileSync(path.join(dir, "package.json"), "utf8"));
  const entry = meta.module ?? meta.exports?.import ?? meta.exports?.["."]?.import;
  return path.join(dir, entry);
}

function page(edgeUrl) {
  return `<!doctype html><html><head><meta charset="utf-8"><title>bunting push</title>
<script type="importmap">${JSON.stringify({ imports: {
    "@openfeature/web-sdk": "/m/web-sdk.js",
    "@openfeature/core": "/m/core.js",
    "@openfeature/ofrep-web-provider": "/m/ofrep-web-provider.js",
    "@openfeature/ofrep-core": "/m/ofrep-core.js",
  } })}</script>
<style>body{font:16px system-ui;margin:2em} td{padding:.3em 1em;border-bottom:1px solid #ccc} output{font-weight:bold}</style>
</head><body><h1>bunting: pushed flag changes</h1>
<table><tr><td>streaming (SSE) provider</td><td><output id="sse">…</output></td><td id="sse-at"></td></tr>
<tr><td>polling (ETag) provider</td><td><output id="poll">…</output></td><td id="poll-at"></td></tr></table>
<script type="module">
import { OpenFeature, ProviderEvents } from "@openfeature/web-sdk";
import { OFREPWebProvider } from "@openfeature/ofrep-web-provider";
const options = { baseUrl: ${JSON.stringify(edgeUrl.replace(/\/$/, ""))}, headers: [["Authorization", "Bearer ${KEY}"]], cacheMode: "disabled" };
window.changes = { sse: [], poll: [] };
async function start(domain, extra) {
  await OpenFeature.setProviderAndWait(domain, new OFREPWebProvider({ ...options, ...extra }));
  const client = OpenFeature.getClient(domain);
  const show = () => {
    const v = client.getStringValue("banner", "default");
    document.getElementById(domain).textContent = v;
    document.getElementById(domain + "-at").textContent = new Date().toISOString();
    window.changes[domain].push({ value: v, at: Date.now() });
  };
  client.addHandler(ProviderEvents.ConfigurationChanged, show);
  client.addHandler(ProviderEvents.ContextChanged, show);
  show();
}
await OpenFeature.setContext({ targetingKey: "visitor-1" });
await start("sse", { changeDetection: "sse", pollInterval: 60000 });
await start("poll", { changeDetection: "polling", pollInterval: 300 });
window.setPlan = (plan) => OpenFeature.setContext({ targetingKey: "visitor-1", plan });
window.ready = true;
</script></body></html>`;
}

test("the OpenFeature web SDK in chromium: cross-origin, pushed changes, ETag polling, a context change",
  { skip: !existsSync(chromiumPath) && `${chromiumPath} is missing (cargo xtask setup installs Debian's chromium)` }, async () => {
  const w = await startWorker({ listen: true, bindings: { POINTER_SECRET: SECRET, ALLOWED_ORIGINS: "*", SNAPSHOT_TTL_SECONDS: "3600", POINTER_CHECK_SECONDS: "0.5" } });
  const providerDir = path.join(modulesDir, "ofrep-web-provider");
  const modules = {
    "/m/web-sdk.js": esm(path.join(modulesDir, "web-sdk")),
    "/m/core.js": esm(path.join(modulesDir, "core")),
    "/m/ofrep-web-provider.js": esm(providerDir),
    "/m/ofrep-core.js": esm(path.join(providerDir, "node_modules", "@openfeature", "ofrep-core")),
  };
  const site = createServer((req, res) => {
    if (req.url === "/") {
      res.writeHead(200, { "content-type": "text/html" });
      res.end(page(w.url));
    } else if (modules[req.url]) {
      res.writeHead(200, { "content-type": "text/javascript" });
      res.end(readFileSync(modules[req.url]));
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  await new Promise((r) => site.listen(0, "127.0.0.1", r));
  const siteUrl = `http://127.0.0.1:${site.address().port}/`;
  assert.notEqual(new URL(siteUrl).origin, new URL(w.url).origin, "cross-origin");
  const browser = await chromium.launch({ executablePath: chromiumPath, args: ["--no-sandbox", "--disable-dev-shm-usage"] });
  try {
    await putKey(w.kv, KEY, "p", "client");
    await putSnapshot(w.kv, "p", snap(1, "old"));
    const p = await (await browser.newContext()).newPage();
    const errors = [];
    p.on("pageerror", (e) => errors.push(e.message));
    const statuses = [];
    const urls = [];
    p.on("response", (r) => {
      urls.push(`${r.status()} ${r.url()}`);
      if (r.url().includes("/ofrep/v1/evaluate/flags")) statuses.push(r.status());
    });
    await p.goto(siteUrl);
    await p.waitForFunction(() => window.ready === true, null, { timeout: 20000 });
    assert.equal(await p.textContent("#sse"), "old");
    assert.equal(await p.textContent("#poll"), "old");
    // The polling provider revalidates with its ETag: 304s.
    const t304 = performance.now();
    while (!statuses.includes(304)) {
      assert.ok(performance.now() - t304 < 20000, `no 304 among ${statuses}`);
      await new Promise((r) => setTimeout(r, 50));
    }

    // A change published to the pointer: pushed to the streaming provider.
    const publishedAt = Date.now();
    const r = await w.fetch("/edge/v1/snapshot", { method: "POST", headers: { Authorization: `Bearer ${SECRET}` }, body: new Uint8Array(pack(snap(2, "new"))) });
    assert.equal(r.status, 200);
    await p.waitForFunction(() => document.getElementById("sse").textContent === "new", null, { timeout: 20000 });
    const pushedAt = (await p.evaluate(() => window.changes.sse.find((c) => c.value === "new").at));
    await p.waitForFunction(() => document.getElementById("poll").textContent === "new", null, { timeout: 20000 });
    const polledAt = (await p.evaluate(() => window.changes.poll.find((c) => c.value === "new").at));
    console.log(`browser: pushed change shown ${pushedAt - publishedAt} ms after the publish (SSE); ` +
      `polling provider (300 ms, ETag) ${polledAt - publishedAt} ms`);

    // The streaming provider opened the advertised stream and re-fetched
    // with the version the event named.
    assert.ok(urls.some((u) => /^200 .*\/ofrep\/v1\/events\?environment=p&token=/.test(u)), urls.join("\n"));
    assert.ok(urls.some((u) => /^200 .*\/ofrep\/v1\/evaluate\/flags\?flagConfigEtag=2/.test(u)), urls.join("\n"));

    // A context change re-evaluates for the new context.
    await p.evaluate(() => window.setPlan("pro"));
    await p.waitForFunction(() => document.getElementById("sse").textContent === "pro", null, { timeout: 20000 });
    await p.waitForFunction(() => document.getElementById("poll").textContent === "pro", null, { timeout: 20000 });

    mkdirSync(path.join(root, "target"), { recursive: true });
    await p.screenshot({ path: path.join(root, "target", "edge-browser.png") });
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
    site.close();
    site.closeAllConnections();
    await w.mf.dispose();
  }
});
