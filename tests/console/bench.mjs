// The console with a big project, measured in Chromium (not a test: run by
// `cargo xtask console-bench`, figures in docs/performance.md). A release
// `bunting serve` (embedded SQLite, the console embedded in the binary)
// holds 1,000 flags in three environments and 100 experiments; each
// scenario runs ROUNDS times, interleaved, and prints its median and p90:
// - flags list: navigation to the list until all 1,000 rows are rendered;
// - search: one keystroke in the search box until the filtered count shows;
// - kill switch: a click until the switch shows the new state (API round trip);
// - flag page: navigation to a flag's targeting editor until it is ready;
// - experiments list: navigation until the 100 experiments are listed.
import path from "node:path";
import { performance } from "node:perf_hooks";
import { root } from "../edge/harness.mjs";
import { api, bin, browser, signedIn, startStack, seed } from "./harness.mjs";

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 9);
const FLAGS = Number(process.env.BENCH_FLAGS ?? 1000);
const EXPERIMENTS = Number(process.env.BENCH_EXPERIMENTS ?? 100);
const P = "/orgs/acme/projects/web";

function stats(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
  return { median: q(0.5), p90: q(0.9), n: s.length };
}

async function populate(o) {
  await seed(o);
  const t0 = performance.now();
  const batch = [];
  for (let i = 0; i < FLAGS; i++) {
    const key = `flag-${String(i).padStart(4, "0")}`;
    batch.push(
      api(o, "POST", `${P}/flags`, {
        key,
        flagType: i % 4 === 0 ? "string" : "boolean",
        variants: i % 4 === 0 ? { a: "alpha", b: "beta" } : { on: true, off: false },
        offVariant: i % 4 === 0 ? "a" : "off",
        description: `Flag number ${i} of the benchmark`,
        tags: [`team-${i % 10}`, i % 3 === 0 ? "beta" : "ga"],
      }),
    );
    if (batch.length === 16) await Promise.all(batch.splice(0));
  }
  await Promise.all(batch);
  for (const env of ["staging", "production"]) {
    for (let i = 0; i < FLAGS; i += 3) {
      const key = `flag-${String(i).padStart(4, "0")}`;
      batch.push(api(o, "POST", `${P}/flags/${key}/environments/${env}/toggle`, { enabled: true }));
      if (batch.length === 16) await Promise.all(batch.splice(0));
    }
  }
  await Promise.all(batch);
  await api(o, "POST", `${P}/metrics`, { key: "purchase", kind: "conversion", event: "purchase" });
  for (let i = 0; i < EXPERIMENTS; i++) {
    const flag = `flag-${String(i * 4 + 1).padStart(4, "0")}`;
    await api(o, "POST", `${P}/environments/production/experiments`, {
      key: `exp-${String(i).padStart(3, "0")}`, flag, control: "off", primaryMetric: "purchase",
      hypothesis: `Turning ${flag} on raises purchases`,
    });
  }
  console.log(`populated ${FLAGS} flags (x3 environments) and ${EXPERIMENTS} experiments in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}

async function main() {
  // The copy embedded in the binary, unless BENCH_CONSOLE_DIR names a build.
  const stack = await startStack({ consoleDir: process.env.BENCH_CONSOLE_DIR ?? null });
  const b = await browser();
  try {
    await populate(stack.base);
    const page = await signedIn(b, stack);
    const o = stack.base;
    const runs = { list: [], search: [], toggle: [], flag: [], experiments: [] };
    const rows = page.locator("table.flags tbody tr");
    for (let r = 0; r < ROUNDS; r++) {
      // The flags list, from navigation to every row rendered.
      let t = performance.now();
      await page.goto(`${o}${P}/flags`);
      await page.getByText(`${FLAGS} flags`, { exact: true }).waitFor();
      await rows.nth(FLAGS - 1).waitFor();
      runs.list.push(performance.now() - t);

      // One keystroke in the search box.
      const box = page.getByLabel("Search");
      await box.fill("flag-00");
      await page.getByText(`100 of ${FLAGS} flags`).waitFor();
      t = performance.now();
      await box.press("9");
      await page.getByText(`10 of ${FLAGS} flags`).waitFor();
      runs.search.push(performance.now() - t);

      // The kill switch of one flag (the list reloads after the API answers).
      const sw = page.getByRole("switch", { name: /^flag-0091 in Staging: / });
      const before = await sw.getAttribute("aria-checked");
      const after = before === "true" ? "on" : "off";
      t = performance.now();
      await sw.click();
      await page.getByRole("switch", { name: `flag-0091 in Staging: ${after}` }).waitFor();
      runs.toggle.push(performance.now() - t);

      // A flag's page: the targeting editor with the engine loaded.
      t = performance.now();
      await page.goto(`${o}${P}/flags/flag-0500?env=production`);
      await page.getByRole("heading", { name: "flag-0500" }).waitFor();
      await page.locator("[data-ready=true]").first().waitFor({ timeout: 30000 });
      runs.flag.push(performance.now() - t);

      // The experiments list.
      t = performance.now();
      await page.goto(`${o}${P}/experiments?env=production`);
      await page.getByText(`exp-${String(EXPERIMENTS - 1).padStart(3, "0")}`, { exact: true }).waitFor();
      runs.experiments.push(performance.now() - t);
    }
    const heap = await page.evaluate(() => performance.memory?.usedJSHeapSize ?? null);
    console.log(`\nconsole with ${FLAGS} flags and ${EXPERIMENTS} experiments, ${ROUNDS} rounds (ms):`);
    console.log(`  ${"scenario".padEnd(46)} ${"median".padStart(8)} ${"p90".padStart(8)}`);
    const names = {
      list: `flags list: navigate until ${FLAGS} rows render`,
      search: "search: one keystroke until filtered",
      toggle: "kill switch: click until shown (API + reload)",
      flag: "flag page: navigate until the editor is ready",
      experiments: `experiments list: navigate until ${EXPERIMENTS} listed`,
    };
    for (const [k, xs] of Object.entries(runs)) {
      const s = stats(xs);
      console.log(`  ${names[k].padEnd(46)} ${s.median.toFixed(0).padStart(8)} ${s.p90.toFixed(0).padStart(8)}`);
    }
    if (heap) console.log(`  JS heap after the rounds: ${(heap / 1048576).toFixed(1)} MiB`);
    console.log(`  (Chromium ${b.version()}, ${path.relative(root, bin)})`);
  } finally {
    await b.close();
    await stack.stop();
  }
}

await main();
