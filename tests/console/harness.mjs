// Shared setup of the console's browser tests (tests/console/*.test.mjs): a
// real `bunting serve` (embedded SQLite) serving the built console
// (console/dist, `cargo xtask console`) with `--console-dir`, optionally
// publishing to the edge worker in workerd (tests/edge/stack.mjs), and
// Debian's Chromium driven by playwright-core. Also: signing in with the
// one-time link the origin prints, the axe-core accessibility audit, and
// the screenshots of docs/console/.
import assert from "node:assert/strict";
import { existsSync, mkdirSync } from "node:fs";
import path from "node:path";
import { AxeBuilder } from "@axe-core/playwright";
import { chromium } from "playwright-core";
import { root, startWorker } from "../edge/harness.mjs";
import { INGEST_SECRET, ROOT_TOKEN, api, bin, freePort, kvRestServer, startOrigin } from "../edge/stack.mjs";

export { api, ROOT_TOKEN, INGEST_SECRET, bin };

/** The built console. */
export const dist = process.env.BUNTING_CONSOLE_DIR ?? path.join(root, "console", "dist");
/** Debian's Chromium (`cargo xtask setup` installs it). */
export const chromiumPath = process.env.BUNTING_CHROMIUM ?? "/usr/bin/chromium";
/** Where the screenshots go (linked from README.md). */
export const shots = path.join(root, "docs", "console");

/** Why the browser tests cannot run here, or `false`. */
export const missing =
  (!existsSync(bin) && `${bin} is not built`) ||
  (!existsSync(path.join(dist, "index.html")) && `${dist} is not built (cargo xtask console)`) ||
  (!existsSync(chromiumPath) && `${chromiumPath} is missing (cargo xtask setup installs Debian's chromium)`) ||
  false;

/**
 * Starts the origin serving the console; with `edge`, also the edge worker
 * in workerd, which the origin publishes to. `consoleDir: null` serves the
 * copy embedded in the binary. Returns { base, origin, worker?,
 * stop() }.
 */
export async function startStack({ edge = false, extra = [], consoleDir = dist } = {}) {
  const port = await freePort();
  let worker;
  let rest;
  if (edge) {
    worker = await startWorker({
      bindings: { INGEST_URL: `http://127.0.0.1:${port}/api/v1/events`, INGEST_SECRET, INGEST_FLUSH_SECONDS: "0" },
    });
    rest = await kvRestServer(worker.kv);
  }
  const origin = await startOrigin(rest?.url, port, [
    ...(consoleDir ? ["--console-dir", consoleDir] : []), "--schedule-seconds", "1", ...extra,
  ]);
  return {
    base: origin.base,
    origin,
    worker,
    async stop() {
      origin.child.kill();
      rest?.server.close();
      await worker?.mf.dispose();
    },
  };
}

/** The one-time sign-in link the origin printed on standard output. */
export async function signInLink(origin) {
  for (let i = 0; i < 100; i++) {
    const m = origin.out().match(/(http:\/\/\S+\/auth\/\S+)/);
    if (m) return m[1];
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`no sign-in link on the origin's standard output:\n${origin.out()}\n${origin.log()}`);
}

/** Launches Chromium. */
export async function browser() {
  return chromium.launch({
    executablePath: chromiumPath,
    // Root in a container: no user namespaces for Chromium's sandbox.
    args: ["--no-sandbox", "--disable-dev-shm-usage"],
  });
}

/**
 * A signed-in page (desktop size unless `viewport`): follows the origin's
 * sign-in link, which starts a session and lands on the console. Fails on
 * any error the page logs or throws.
 */
export async function signedIn(b, stack, { viewport = { width: 1280, height: 860 } } = {}) {
  const context = await b.newContext({ viewport, reducedMotion: "reduce" });
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(`pageerror: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error" && !/the server responded with a status of (4\d\d)/.test(m.text())) errors.push(`console: ${m.text()}`);
  });
  page.errors = errors;
  await page.goto(await signInLink(stack.origin));
  await page.waitForURL((u) => !u.pathname.startsWith("/auth/"));
  return page;
}

/**
 * The axe-core audit of the page as it is (WCAG 2.1 A and AA rules): fails
 * with every violation, its rule, and the elements.
 */
export async function audit(page, what) {
  const result = await new AxeBuilder({ page }).withTags(["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]).analyze();
  const found = result.violations.map(
    (v) => `${v.id} (${v.impact}): ${v.help}\n    ${v.nodes.map((n) => n.target.join(" ")).join("\n    ")}`,
  );
  assert.deepEqual(found, [], `accessibility violations on ${what}:\n${found.join("\n")}`);
}

/** A full-page screenshot into docs/console/NAME.png. */
export async function screenshot(page, name) {
  mkdirSync(shots, { recursive: true });
  await page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true, animations: "disabled" });
}

/** Fails if the page logged or threw an error. */
export function noPageErrors(page) {
  assert.deepEqual(page.errors, [], "the page logged errors");
}

/** An organization `acme` with project `web` and environments staging and production. */
export async function seed(base) {
  await api(base, "POST", "/orgs", { key: "acme", name: "Acme" });
  await api(base, "POST", "/orgs/acme/projects", { key: "web", name: "Web shop" });
  await api(base, "POST", "/orgs/acme/projects/web/environments", { key: "staging", name: "Staging" });
  await api(base, "POST", "/orgs/acme/projects/web/environments", { key: "production", name: "Production" });
}
