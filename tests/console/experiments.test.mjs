// The console's experiments, end to end in Chromium against a real
// `bunting serve`: design an experiment through the form (a metric created
// in the form's dialog, a 422 shown next to its field, a 412 compared and
// saved over), start it, feed it traffic through POST /api/v1/events over
// two days with a real effect in the treatment, and read the results page:
// every number shown is the API's, the uPlot chart draws the daily series
// (and its hidden table has the same numbers), the CSV download has the API
// CSV's rows, and an experiment fed 70/30 against a 50/50 plan shows the
// sample-ratio-mismatch banner (and its running design takes a secondary
// metric). Then decide, and delete a draft. axe audits and screenshots of the list, design and
// results pages.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { after, before, describe, test } from "node:test";
import { INGEST_SECRET, api, audit, browser, missing, noPageErrors, screenshot, seed, signedIn, startStack } from "./harness.mjs";

const P = "/orgs/acme/projects/web";
const ENV = "acme/web/production";
const XS = `${P}/environments/production/experiments`;
const HOUR = 3600_000;

// ---- The page's number formats, written out independently of the console. ----
const MINUS = "−";
const NONE = "—";
const sign = (text, v) => (v > 0 ? `+${text}` : v < 0 ? `${MINUS}${text}` : text);
const fmt = {
  users: (n) => (n == null ? NONE : n.toLocaleString("en-US")),
  value: (kind, v) => (v == null ? NONE : kind === "conversion" ? `${(100 * v).toFixed(2)}%` : v.toFixed(4)),
  relative: (v) => (v == null ? NONE : sign(`${Math.abs(100 * v).toFixed(2)}%`, v)),
  absolute: (kind, v) =>
    v == null ? NONE : kind === "conversion" ? sign(`${Math.abs(100 * v).toFixed(2)} pp`, v) : sign(Math.abs(v).toFixed(4), v),
  interval: (e, each) => (e ? `[${e.ciLow == null ? `${MINUS}∞` : each(e.ciLow)}, ${e.ciHigh == null ? "+∞" : each(e.ciHigh)}]` : NONE),
  p: (v) => (v == null ? NONE : v < 0.0001 ? "<0.0001" : v.toFixed(4)),
  chance: (v) => (v == null ? NONE : `${(100 * v).toFixed(1)}%`),
  verdict: (d) => ({ treatmentBetter: "Treatment better", treatmentWorse: "Treatment worse", continue: "Keep collecting" })[d] ?? NONE,
};

/** POSTs one batch to the ingestion endpoint (the edge's way in). */
async function ingest(base, body) {
  const r = await fetch(`${base}/api/v1/events`, {
    method: "POST",
    headers: { authorization: `Bearer ${INGEST_SECRET}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  assert.equal(r.status, 202, await r.text());
}

/** The results once `users` users are counted (ingestion writes in the background). */
async function resultsWith(base, experiment, users) {
  for (let i = 0; i < 200; i++) {
    const { json } = await api(base, "GET", `${XS}/${experiment}/results`);
    const seen = json.arms.reduce((s, a) => s + a.users, 0);
    if (seen === users && json.metrics.every((m) => m.arms.length > 0)) return json;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${experiment}: the results never counted ${users} users`);
}

/** The text of `[data-col=col]` in `scope`. */
const cell = (scope, col) => scope.locator(`[data-col="${col}"]`).first().innerText();

/** Splits a CSV text into rows of fields (no quoted fields in these keys). */
const csvRows = (text) =>
  text
    .trim()
    .split("\n")
    .map((l) => l.split(","));

describe("console: experiments", { skip: missing }, () => {
  let stack;
  let b;
  let page;
  before(async () => {
    stack = await startStack();
    await seed(stack.base);
    const base = stack.base;
    await api(base, "POST", `${P}/flags`, {
      key: "checkout",
      flagType: "boolean",
      variants: { on: true, off: false },
      offVariant: "off",
      description: "The one-page checkout",
    });
    await api(base, "POST", `${P}/flags`, {
      key: "banner",
      flagType: "string",
      variants: { a: "blue", b: "green" },
      offVariant: "a",
    });
    await api(base, "POST", `${P}/metrics`, { key: "revenue", kind: "mean", event: "purchase", description: "Revenue per user" });
    await api(base, "POST", `${P}/metrics`, { key: "errors", kind: "conversion", event: "error", higherIsBetter: false });
    b = await browser();
    page = await signedIn(b, stack);
  });
  after(async () => {
    await b?.close();
    await stack?.stop();
  });

  test("design an experiment in the form, with a metric made on the spot, a 422 and a 412", async () => {
    await page.goto(`${stack.base}${P}/experiments?env=production`);
    await page.getByRole("heading", { name: "Experiments", level: 1 }).waitFor();
    await page.getByText("No experiment in this environment yet").waitFor();
    await page.getByRole("link", { name: "New experiment" }).click();
    await page.getByRole("heading", { name: "New experiment" }).waitFor();
    assert.match(page.url(), /\/experiments\/new\?env=production$/);

    await page.locator("#x-key").fill("checkout-test");
    await page.locator("#x-hypothesis").fill("A one-page checkout converts better");
    await page.locator("#x-flag").selectOption("checkout");
    // The flag's variants are the arms; its off variant is the control.
    assert.equal(await page.getByLabel("off is the control").isChecked(), true);
    assert.equal(await page.getByLabel("Weight of on").inputValue(), "50");

    // The primary metric does not exist yet: make it in the dialog.
    await page.getByRole("button", { name: "New metric…" }).first().click();
    const dialog = page.getByRole("dialog", { name: "New metric" });
    await dialog.getByLabel("Key").fill("purchased");
    await dialog.getByLabel("Kind").selectOption("conversion");
    await dialog.getByLabel("Event", { exact: true }).fill("purchase");
    await dialog.getByRole("button", { name: "Create metric" }).click();
    await dialog.waitFor({ state: "hidden" });
    assert.equal(await page.locator("#x-primary").inputValue(), "purchased");

    await page.getByRole("checkbox", { name: "revenue" }).check();
    await page.getByRole("button", { name: "Add guardrail" }).click();
    const guardrail = page.getByRole("group", { name: "Guardrail 1" });
    await guardrail.getByLabel("Metric").selectOption("errors");
    await guardrail.getByLabel("Tolerance").fill("0.05");
    await guardrail.getByLabel("When it trips").selectOption("alert");
    await audit(page, "the experiment design form");
    await screenshot(page, "experiment-design");

    // A key the API refuses: its problem next to the key field.
    await page.locator("#x-key").fill("checkout test");
    await page.getByRole("button", { name: "Create draft" }).click();
    const problem = page.locator("#x-key-problems");
    await problem.waitFor();
    assert.match(await problem.innerText(), /\S/);
    assert.equal(await page.locator("#x-key").getAttribute("aria-invalid"), "true");
    await page.locator("#x-key").fill("checkout-test");
    await page.getByRole("button", { name: "Create draft" }).click();
    await page.waitForURL(/\/experiments\/production\/checkout-test$/);
    await page.getByRole("heading", { name: /checkout-test/, level: 1 }).waitFor();

    const { json: made } = await api(stack.base, "GET", `${XS}/checkout-test`);
    assert.equal(made.status, "draft");
    assert.equal(made.flag, "checkout");
    assert.equal(made.control, "off");
    assert.deepEqual(made.allocation, { on: 50, off: 50 });
    assert.equal(made.primaryMetric, "purchased");
    assert.deepEqual(made.secondaryMetrics, ["revenue"]);
    assert.deepEqual(made.guardrails, [{ metric: "errors", tolerance: 0.05, action: "alert" }]);

    // Someone else edits the draft while the form is open: 412, compare, save over.
    await page.getByRole("link", { name: "Edit" }).click();
    await page.getByRole("heading", { name: "Edit checkout-test" }).waitFor();
    // The form holds the version it read (its ETag) before the other edit lands.
    await page.locator("#x-hypothesis").waitFor();
    assert.equal(await page.locator("#x-hypothesis").inputValue(), "A one-page checkout converts better");
    const { etag } = await api(stack.base, "GET", `${XS}/checkout-test`);
    await api(stack.base, "PUT", `${XS}/checkout-test`, { ...strip(made), hypothesis: "theirs" }, { headers: { "if-match": etag } });
    await page.locator("#x-hypothesis").fill("A one-page checkout converts better, by at least 5 points");
    await page.getByRole("button", { name: "Save" }).click();
    await page.getByText("Changed by someone else.").waitFor();
    await page.getByRole("button", { name: "Reload and compare" }).click();
    const compare = page.getByRole("region", { name: /Your edit and the current version/ });
    await compare.waitFor();
    assert.match(await compare.getByRole("row", { name: /Hypothesis/ }).innerText(), /theirs/);
    await compare.getByRole("button", { name: "Save mine over it" }).click();
    await page.waitForURL(/\/experiments\/production\/checkout-test$/);
    const { json: saved } = await api(stack.base, "GET", `${XS}/checkout-test`);
    assert.equal(saved.hypothesis, "A one-page checkout converts better, by at least 5 points");
    assert.equal(saved.version, made.version + 2);
    noPageErrors(page);
  });

  let results;
  test("start it, feed it two days of traffic, and read the API's numbers on the results page", async () => {
    await page.getByText("A one-page checkout converts better, by at least 5 points").waitFor();
    await page.getByRole("button", { name: "Start", exact: true }).click();
    const confirm = page.getByRole("dialog", { name: "Start checkout-test?" });
    await confirm.getByRole("button", { name: "Start experiment" }).click();
    await page.locator("h1 .badge", { hasText: "running" }).waitFor();
    const { json: running } = await api(stack.base, "GET", `${XS}/checkout-test`);
    assert.equal(running.status, "running");

    // 600 users over the 23.9 hours after the start, 300 per arm: two UTC
    // days unless the experiment starts in the first six minutes of one
    // (23.5 hours left a run started before 00:30 UTC with a single day;
    // ingestion takes events up to 24 hours ahead, so no wider span).
    // About 10% of control buys and 20% of the treatment (a seeded draw,
    // so the days differ), 4% see an error.
    const random = mulberry32(13);
    const start = Date.parse(running.startedAt) + 1000;
    const users = 600;
    const exposures = [];
    const events = [];
    for (let i = 0; i < users; i++) {
      const variant = i % 2 ? "on" : "off";
      const k = Math.floor(i / 2);
      const time = start + Math.floor((i / users) * 23.9 * HOUR);
      exposures.push({ flag: "checkout", variant, bucketingKeyHash: `u${i}`, environment: ENV, time, snapshotVersion: 1 });
      if (random() < (variant === "on" ? 0.2 : 0.1)) {
        events.push({ name: "purchase", targetingKeyHash: `u${i}`, value: 20 + Math.round(random() * 30), timestamp: time + 60_000, id: `o-${i}` });
      }
      if (k % 25 === 0) events.push({ name: "error", targetingKeyHash: `u${i}`, timestamp: time + 30_000, id: `e-${i}` });
    }
    await ingest(stack.base, { kind: "exposures", exposures });
    await ingest(stack.base, { kind: "events", environment: ENV, events });
    results = await resultsWith(stack.base, "checkout-test", users);
    assert.ok(results.series.length >= 2, `a daily series of several days: ${JSON.stringify(results.series.map((p) => p.date))}`);
    const primary = results.metrics.find((m) => m.role === "primary");
    const on = primary.arms.find((a) => a.variant === "on");
    assert.ok(on.comparison.relative.estimate > 0.3, `the treatment converts better: ${JSON.stringify(on)}`);

    await page.getByRole("button", { name: "Refresh" }).click();
    await page.locator('section.metric[data-metric="purchased"] tr[data-arm="on"]').waitFor();
    // Not the stale empty results: the users are there.
    await page.waitForFunction(
      (n) => document.querySelector('.users-table tr[data-arm="on"] [data-col="users"]')?.textContent === n,
      fmt.users(results.arms.find((a) => a.variant === "on").users),
    );

    // Users per arm.
    for (const a of results.arms) {
      assert.equal(await cell(page.locator(`.users-table tr[data-arm="${a.variant}"]`), "users"), fmt.users(a.users));
    }
    // Every metric, every arm: values, lifts with intervals, p-values, the
    // sequential verdict and always-valid interval, the chance to beat control.
    for (const m of results.metrics) {
      const section = page.locator(`section.metric[data-metric="${m.key}"]`);
      assert.match(await section.getByRole("heading").innerText(), new RegExp(`${m.key}\\s+${m.role}`));
      for (const a of m.arms) {
        const row = section.locator(`tr[data-arm="${a.variant}"]`);
        assert.equal(await cell(row, "users"), fmt.users(a.users), `${m.key}/${a.variant} users`);
        assert.equal((await cell(row, "value")).split("\n")[0], fmt.value(m.kind, a.value), `${m.key}/${a.variant} value`);
        const c = a.comparison;
        if (!c) continue;
        const abs = (v) => fmt.absolute(m.kind, v);
        assert.equal(await cell(row, "relative"), fmt.relative(c.relative?.estimate), `${m.key}/${a.variant} lift`);
        assert.equal(await cell(row, "relative-ci"), fmt.interval(c.relative, fmt.relative));
        assert.equal(await cell(row, "absolute"), abs(c.absolute.estimate));
        assert.equal(await cell(row, "absolute-ci"), fmt.interval(c.absolute, abs));
        assert.equal(await cell(row, "p"), fmt.p(c.pValue));
        assert.equal(await cell(row, "chance"), fmt.chance(c.chanceToBeatControl));
        if (c.sequential) {
          assert.equal(await cell(row, "verdict"), fmt.verdict(c.sequential.decision));
          assert.equal(await cell(row, "seq-p"), fmt.p(c.sequential.pValue));
          assert.equal(await cell(row, "seq-ci"), fmt.interval(c.sequential.absolute, abs));
        }
      }
    }
    // The verdict card of the primary metric.
    const card = page.locator(`.verdict[data-arm="on"]`);
    assert.equal(await cell(card, "verdict"), fmt.verdict(on.comparison.sequential.decision));
    assert.equal(await cell(card, "relative"), fmt.relative(on.comparison.relative.estimate));
    assert.equal(await cell(card, "chance"), fmt.chance(on.comparison.chanceToBeatControl));
    assert.equal(await cell(card, "seq-p"), fmt.p(on.comparison.sequential.pValue));
    // Guardrail health: one row per guardrail × treatment, as the harm test says.
    const errors = results.metrics.find((m) => m.key === "errors");
    const harm = errors.arms.find((a) => a.variant === "on").comparison.guardrails[0];
    const health = !harm.sequential ? "not enough data" : harm.sequential.decision === "treatmentWorse" ? "harmed" : "healthy";
    const gRow = page.locator('.guardrail-table tr[data-guardrail="0"][data-arm="on"]');
    assert.equal(await cell(gRow, "health"), health);
    assert.equal(await cell(gRow, "harm-p"), fmt.p(harm.sequential?.pValue));
    // Sample ratio fine: no banner.
    assert.equal(await page.locator(".srm[role=alert]").count(), 0);
    noPageErrors(page);
  });

  test("the cumulative-lift chart is drawn by uPlot, with the same numbers in its text alternative", async () => {
    const figure = page.locator("figure.lift-chart");
    const canvas = figure.locator(".uplot canvas");
    await canvas.waitFor();
    const box = await canvas.boundingBox();
    assert.ok(box.width > 300 && box.height > 150, JSON.stringify(box));
    // Drawn, not blank: many pixels in the treatment's colour (#0a58ca).
    const drawn = await canvas.evaluate((c) => {
      const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
      let blue = 0;
      for (let i = 0; i < d.length; i += 4) if (d[i] < 60 && d[i + 1] > 60 && d[i + 1] < 120 && d[i + 2] > 170 && d[i + 3] > 200) blue++;
      return blue;
    });
    assert.ok(drawn > 50, `the lift line is drawn (${drawn} px)`);
    const labels = await figure.locator(".u-legend .u-series .u-label").allInnerTexts();
    assert.deepEqual(labels.slice(0, 4), ["Day", "on lift", "on upper 95%", "on lower 95%"]);
    assert.match(await figure.locator("figcaption").innerText(), /Cumulative relative lift of purchased over control \(off\)/);
    // The hidden table: one row per day and treatment, the series' numbers.
    const rows = figure.locator("table.lift-table tbody tr");
    assert.equal(await rows.count(), results.series.length);
    for (const p of results.series) {
      const arm = p.arms.find((a) => a.variant === "on");
      const row = figure.locator(`table.lift-table tr[data-day="${p.date.slice(0, 10)}"][data-arm="on"]`);
      assert.equal(await cell(row, "users"), fmt.users(arm.users));
      assert.equal(await cell(row, "lift"), fmt.relative(arm.relative?.estimate));
      assert.equal(await cell(row, "low"), fmt.relative(arm.relative?.ciLow));
      assert.equal(await cell(row, "high"), fmt.relative(arm.relative?.ciHigh));
    }
    await audit(page, "the experiment results page");
    await screenshot(page, "experiment-results");
    // At a phone's width the page does not scroll sideways (wide tables scroll in their own box).
    await page.setViewportSize({ width: 390, height: 844 });
    await page.waitForFunction(() => document.querySelector("figure.lift-chart .uplot").getBoundingClientRect().width <= 390);
    const wide = await page.evaluate(() =>
      [...document.querySelectorAll("body *")]
        .filter((e) => e.getBoundingClientRect().right > window.innerWidth + 1 && !e.closest(".table-wrap, .sr-only"))
        .map((e) => `${e.tagName.toLowerCase()}.${e.className}`),
    );
    assert.deepEqual(wide, [], "nothing wider than a phone but the tables, which scroll in their own box");
    assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), "no sideways scroll");
    await page.setViewportSize({ width: 1280, height: 860 });
  });

  test("the CSV download has the API CSV's rows", async () => {
    const [download] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: "Download CSV" }).click()]);
    assert.equal(download.suggestedFilename(), "checkout-test-results.csv");
    const mine = csvRows(await readFile(await download.path(), "utf8"));
    const r = await fetch(`${stack.base}/api/v1${XS}/checkout-test/results?format=csv`, {
      headers: { authorization: "Bearer e2e-root-token" },
    });
    const theirs = csvRows(await r.text());
    assert.deepEqual(mine[0], theirs[0], "the same columns");
    assert.equal(mine.length, 1 + results.metrics.reduce((s, m) => s + m.arms.length, 0));
    assert.equal(mine.length, theirs.length);
    const header = mine[0];
    for (let i = 1; i < mine.length; i++) {
      for (let j = 0; j < header.length; j++) {
        const [a, b] = [mine[i][j], theirs[i][j]];
        if (a !== "" && b !== "" && !Number.isNaN(Number(a)) && !Number.isNaN(Number(b))) {
          assert.ok(Math.abs(Number(a) - Number(b)) <= 1e-9 * Math.max(1, Math.abs(Number(b))), `row ${i} ${header[j]}: ${a} vs ${b}`);
        } else {
          assert.equal(a, b, `row ${i} ${header[j]}`);
        }
      }
    }
    // Spot check against the JSON: the treatment's primary-metric row.
    const row = mine.find((f) => f[0] === "purchased" && f[3] === "on");
    const on = results.metrics[0].arms.find((a) => a.variant === "on");
    assert.equal(Number(row[header.indexOf("users")]), on.users);
    assert.equal(Number(row[header.indexOf("relative_lift")]), on.comparison.relative.estimate);
    assert.equal(Number(row[header.indexOf("relative_ci_low")]), on.comparison.relative.ciLow);
    assert.equal(Number(row[header.indexOf("p_value")]), on.comparison.pValue);
    assert.equal(Number(row[header.indexOf("chance_to_beat_control")]), on.comparison.chanceToBeatControl);
  });

  test("a 70/30 split against a 50/50 plan shows the sample-ratio-mismatch banner", async () => {
    const base = stack.base;
    const { etag } = await api(base, "POST", XS, {
      key: "banner-test",
      flag: "banner",
      control: "a",
      primaryMetric: "purchased",
    });
    const { json: started } = await api(base, "POST", `${XS}/banner-test/start`, undefined, { headers: { "if-match": etag } });
    const t0 = Date.parse(started.startedAt) + 1000;
    const exposures = [];
    for (let i = 0; i < 300; i++) {
      exposures.push({ flag: "banner", variant: i < 210 ? "a" : "b", bucketingKeyHash: `s${i}`, environment: ENV, time: t0 + i * 1000 });
    }
    await ingest(base, { kind: "exposures", exposures });
    const srm = await resultsWith(base, "banner-test", 300);
    assert.equal(srm.untrustworthy, true);

    await page.goto(`${base}${P}/experiments/production/banner-test`);
    const banner = page.getByRole("alert").filter({ hasText: "Sample ratio mismatch" });
    await banner.waitFor();
    assert.match(await banner.innerText(), new RegExp(`p = ${fmt.p(srm.srm.pValue).replace(".", "\\.")}`));
    assert.equal(await cell(page.locator('.verdict[data-arm="b"]'), "verdict"), "no conclusion");
    assert.equal(await cell(page.locator('.users-table tr[data-arm="a"]'), "users"), "210");

    // A running experiment's form: what it keeps is fixed, a secondary metric may be added.
    await page.getByRole("link", { name: "Edit" }).click();
    await page.locator("#x-hypothesis").waitFor();
    assert.equal(await page.locator("#x-flag").isDisabled(), true);
    assert.equal(await page.locator("#x-primary").isDisabled(), true);
    await page.getByRole("checkbox", { name: "revenue" }).check();
    await page.getByRole("button", { name: "Save" }).click();
    await page.waitForURL(/\/experiments\/production\/banner-test$/);
    const { json: edited } = await api(base, "GET", `${XS}/banner-test`);
    assert.deepEqual([edited.status, edited.secondaryMetrics, edited.allocation], ["running", ["revenue"], {}]);
    noPageErrors(page);
  });

  test("decide; delete a draft; the list shows both experiments, filtered by status", async () => {
    await page.goto(`${stack.base}${P}/experiments/production/checkout-test`);
    await page.getByRole("button", { name: "Decide…" }).click();
    const dialog = page.getByRole("dialog", { name: "Decide checkout-test" });
    await dialog.getByLabel("Ship on").check();
    await dialog.getByLabel("Rationale").fill("+10 points of conversion, guardrail healthy");
    await dialog.getByRole("button", { name: "Record decision" }).click();
    await page.locator("h1 .badge", { hasText: "decided" }).waitFor();
    await page.getByText("Decided: ship on").waitFor();
    const { json } = await api(stack.base, "GET", `${XS}/checkout-test`);
    assert.equal(json.status, "decided");
    assert.deepEqual([json.decision.variant, json.decision.rationale], ["on", "+10 points of conversion, guardrail healthy"]);

    // A draft deleted from its page: back to the list, without it.
    await api(stack.base, "POST", XS, { key: "scratch", flag: "banner", control: "a", primaryMetric: "purchased" });
    await page.goto(`${stack.base}${P}/experiments/production/scratch`);
    await page.getByRole("button", { name: "Delete" }).click();
    await page.getByRole("dialog", { name: "Delete scratch?" }).getByRole("button", { name: "Delete experiment" }).click();
    await page.waitForURL(/\/experiments\?env=production$/);
    const rows = page.locator("table.experiment-list tbody tr");
    await rows.first().waitFor();
    assert.deepEqual(await rows.evaluateAll((r) => r.map((x) => x.dataset.experiment)), ["banner-test", "checkout-test"]);
    const checkout = page.locator('tr[data-experiment="checkout-test"]');
    assert.match(await checkout.innerText(), /decided[\s\S]*checkout[\s\S]*off \(control\)[\s\S]*on[\s\S]*purchased/);
    await page.getByLabel("Status").selectOption("running");
    assert.deepEqual(await rows.evaluateAll((r) => r.map((x) => x.dataset.experiment)), ["banner-test"]);
    await page.getByLabel("Status").selectOption("");
    await rows.nth(1).waitFor();
    await audit(page, "the experiments list");
    await screenshot(page, "experiments");
    noPageErrors(page);
  });
});

/** A small seeded PRNG (mulberry32): the same traffic on every run. */
function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** An experiment record's definition (what PUT takes). */
function strip(x) {
  const { id, environmentId, status, startedAt, stoppedAt, decision, version, ...spec } = x;
  return spec;
}
