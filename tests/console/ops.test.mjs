// The console's operations pages in a real browser against a real
// `bunting serve` publishing to the edge worker in workerd: the audit log
// (filters, diffs, the chain's verification), change requests (a kill switch
// in a protected environment opens one; reviewed in the UI, approved by
// another principal, applied in the UI; another scheduled, with a 412 on the
// way), guarded rollouts (one rolled back by the monitor with its evidence,
// one watched, paused and resumed), and publishing (versions per target, an
// SDK key created — its secret shown once — rotated and revoked). Every
// page passes the axe-core audit; screenshots go to docs/console/.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { INGEST_SECRET, api, audit, browser, missing, noPageErrors, screenshot, seed, signedIn, startStack } from "./harness.mjs";

const P = "/orgs/acme/projects/web";
const PROD = `${P}/environments/production`;

let stack;
let b;
let page;
/** The editor token that approves what the signed-in administrator opens. */
let bob;

/** The guarded rollouts' users: `n` per arm, an `errors` share of each arm reports `checkout_error`. */
async function traffic(base, flag, n, errors) {
  const t = Date.now();
  const exposures = [];
  const events = [];
  for (const [variant, share] of Object.entries(errors)) {
    for (let i = 0; i < n; i++) {
      const user = `${flag}-${variant}-${i}`;
      exposures.push({ flag, variant, bucketingKeyHash: user, environment: "acme/web/production", time: t });
      // Deterministic: the first `share` of each arm errs.
      if (i < n * share) events.push({ name: "checkout_error", targetingKeyHash: user, timestamp: t + 1, id: `e-${user}` });
    }
  }
  const post = async (body) => {
    const r = await fetch(`${base}/api/v1/events`, {
      method: "POST",
      headers: { authorization: `Bearer ${INGEST_SECRET}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    assert.ok(r.ok, `POST /events: ${r.status} ${await r.text()}`);
  };
  await post({ kind: "exposures", exposures });
  await post({ kind: "events", environment: "acme/web/production", events });
}

async function until(what, check, limitMs = 15000) {
  const start = Date.now();
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() - start > limitMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

before(async () => {
  if (missing) return;
  stack = await startStack({ edge: true, extra: ["--monitor-seconds", "0.2"] });
  const o = stack.base;
  await seed(o);
  // dark-mode is available to client-side SDKs: the publishing test evaluates it with a client key.
  const flag = (key) => api(o, "POST", `${P}/flags`, { key, flagType: "boolean", variants: { on: true, off: false }, offVariant: "off", clientSide: key === "dark-mode" });
  const configure = async (key, spec) => {
    const cfg = `${P}/flags/${key}/environments/production`;
    const { etag } = await api(o, "GET", cfg);
    await api(o, "PUT", cfg, spec, { headers: { "if-match": etag } });
  };
  for (const key of ["checkout", "search-v2", "recs-v3", "dark-mode", "new-nav"]) await flag(key);
  // Enough history for more than one page of the audit log.
  await Promise.all(Array.from({ length: 40 }, (_, i) => flag(`legacy-${String(i).padStart(2, "0")}`)));
  const hour = 3600_000;
  const iso = (ms) => new Date(Date.now() + ms).toISOString().replace(/\.\d+Z$/, "Z");
  await configure("checkout", {
    enabled: true,
    rules: [],
    fallthrough: {
      schedule: {
        variant: "on",
        otherwise: "off",
        steps: [
          { at: iso(-hour), percentage: 25 },
          { at: iso(2 * hour), percentage: 50 },
          { at: iso(4 * hour), percentage: 100 },
        ],
      },
    },
  });
  await configure("recs-v3", {
    enabled: true,
    rules: [],
    fallthrough: {
      schedule: { variant: "on", otherwise: "off", steps: [{ at: iso(-hour), percentage: 10 }, { at: iso(3 * hour), percentage: 50 }] },
    },
  });
  await configure("search-v2", { enabled: true, rules: [], fallthrough: { rollout: [{ variant: "on", weight: 50 }, { variant: "off", weight: 50 }] } });
  await api(o, "POST", `${P}/metrics`, { key: "checkout-errors", kind: "conversion", event: "checkout_error", higherIsBetter: false });
  await api(o, "POST", `${PROD}/guarded-rollouts`, {
    flag: "checkout",
    control: "off",
    guardrails: [{ metric: "checkout-errors", tolerance: 0, action: "rolloutToZero" }],
    minUsersPerArm: 50,
    description: "New checkout, ramped over the day",
  });
  await api(o, "POST", `${PROD}/guarded-rollouts`, {
    flag: "search-v2",
    control: "off",
    guardrails: [{ metric: "checkout-errors", tolerance: 0.2, action: "serveControl" }],
    minUsersPerArm: 20,
  });
  await api(o, "POST", `${PROD}/guarded-rollouts`, {
    flag: "recs-v3",
    control: "off",
    guardrails: [{ metric: "checkout-errors", tolerance: 0.01, action: "rolloutToZero" }],
    minUsersPerArm: 200,
    gateRamp: true,
  });
  await new Promise((r) => setTimeout(r, 20));
  // A regression in checkout's treatment (2% → 40% errors); search-v2 even.
  await traffic(o, "checkout", 300, { on: 0.4, off: 0.02 });
  await traffic(o, "search-v2", 60, { on: 0.05, off: 0.05 });
  await until("checkout to be rolled back", async () => (await api(o, "GET", `${PROD}/guarded-rollouts/checkout`)).json.status === "rolledBack");
  for (const f of ["search-v2", "recs-v3"]) await until(`${f}'s health`, async () => (await api(o, "GET", `${PROD}/guarded-rollouts/${f}`)).json.health);
  // Production needs one approval from an editor (or more); Bob is one.
  await api(o, "PUT", `${PROD}/policy`, { requiredApprovals: 1, approverRoles: ["editor"] });
  bob = (await api(o, "POST", "/orgs/acme/tokens", { name: "bob", role: "editor" })).json.secret;
  b = await browser();
  page = await signedIn(b, stack);
});

// While developing: OPS_DEBUG_SHOTS=1 keeps a screenshot of each failure in /tmp.
async function shotOnFailure(name, body) {
  try {
    await body();
  } catch (e) {
    if (process.env.OPS_DEBUG_SHOTS) await page?.screenshot({ path: `/tmp/ops-fail-${name}.png`, fullPage: true });
    throw e;
  }
}

after(async () => {
  await b?.close();
  await stack?.stop();
});

test("a kill switch in a protected environment opens a change request: commented, approved, applied", { skip: missing }, () =>
  shotOnFailure("change", async () => {
    const o = stack.base;
    await page.goto(`${o}${P}/flags`);
    await page.getByRole("switch", { name: "dark-mode in Production: off" }).click();
    // (Every switch has its dialog; the open one is this switch's.)
    const dialog = page.locator("dialog[open]");
    await dialog.getByRole("heading", { name: "Turn dark-mode on in Production?" }).waitFor();
    await dialog.getByText(/needs 1 approval/).waitFor();
    await dialog.getByRole("button", { name: "Open a change request" }).click();
    await page.getByRole("link", { name: /change request #\d+/ }).click();
    await page.getByRole("heading", { level: 1, name: /#\d+/ }).waitFor();
    const id = Number(page.url().match(/\/changes\/production\/(\d+)/)[1]);
    // The diff: the kill switch from off to on, against what is live.
    const diff = page.locator(".diff-item").first();
    await diff.getByText("flagConfig dark-mode").waitFor();
    assert.match(await diff.locator(".json-diff-body .del").allInnerTexts().then((t) => t.join("\n")), /"enabled": false/);
    assert.match(await diff.locator(".json-diff-body .add").allInnerTexts().then((t) => t.join("\n")), /"enabled": true/);
    await page.getByText("0 of 1 required").waitFor();
    // The author comments but may not approve their own request.
    await page.getByText("You opened this request: someone else approves it.").waitFor();
    assert.equal(await page.getByRole("button", { name: "Approve" }).count(), 0);
    assert.equal(await page.getByRole("button", { name: "Apply now" }).count(), 0);
    await page.getByLabel("Comment").fill("Dark mode passed QA in staging.");
    await page.getByRole("button", { name: "Comment", exact: true }).click();
    await page.locator(".reviews").getByText("Dark mode passed QA in staging.").waitFor();
    // Bob approves through the API; the page shows it after a reload.
    await api(o, "POST", `${PROD}/change-requests/${id}/reviews`, { verdict: "approve", comment: "lgtm" }, { token: bob });
    await page.reload();
    await page.locator(".reviews").getByText(/^token:\d+/).waitFor();
    await page.getByText("1 of 1 required").waitFor();
    await audit(page, "an approved change request");
    await screenshot(page, "change-request");
    await page.getByRole("button", { name: "Apply now" }).click();
    await page.locator(".badge.status-applied").waitFor();
    await page.getByText(/by user:admin@localhost/).first().waitFor();
    const { json: cfg } = await api(o, "GET", `${P}/flags/dark-mode/environments/production`);
    assert.equal(cfg.enabled, true);
    noPageErrors(page);
  }));

test("a change request is scheduled; a stale version answers 412 next to the form", { skip: missing }, () =>
  shotOnFailure("schedule", async () => {
    const o = stack.base;
    const { json: cr } = await api(o, "POST", `${PROD}/change-requests`, {
      title: "Launch the new navigation",
      description: "Marketing launch, JIRA-42",
      changes: [{ kind: "flagConfig", flag: "new-nav", config: { enabled: true, rules: [], fallthrough: { variant: "on" } } }],
    });
    // The list: pending requests of production, this one among them.
    await page.goto(`${o}${P}/changes?env=production`);
    await page.getByRole("heading", { name: "Policy of Production" }).waitFor();
    await page.getByText("1 — protected").waitFor();
    await page.getByRole("link", { name: "Launch the new navigation" }).waitFor();
    assert.equal(await page.getByRole("link", { name: /Turn dark-mode/ }).count(), 0, "applied requests are not pending");
    await page.getByLabel("Status").selectOption("applied");
    await page.locator("table.changes tbody tr").first().waitFor();
    assert.equal(await page.getByRole("link", { name: "Launch the new navigation" }).count(), 0);
    await audit(page, "the change requests");
    await page.getByLabel("Status").selectOption("pending");
    await page.getByRole("link", { name: "Launch the new navigation" }).click();
    await page.getByRole("heading", { level: 1, name: `#${cr.id} Launch the new navigation` }).waitFor();
    // Someone schedules it meanwhile: the page's version is stale.
    const { etag } = await api(o, "GET", `${PROD}/change-requests/${cr.id}`);
    await api(o, "PUT", `${PROD}/change-requests/${cr.id}/schedule`, { applyAt: "2030-01-01T08:00:00Z" }, { headers: { "if-match": etag } });
    const when = page.getByLabel(/Apply by itself at/);
    await when.fill("2030-01-02T09:30");
    await page.getByRole("button", { name: "Schedule", exact: true }).click();
    await page.getByText("Changed by someone else.").waitFor();
    await page.getByRole("button", { name: "Reload and compare" }).click();
    await page.getByText(/applies by itself at/).waitFor();
    await when.fill("2030-01-02T09:30");
    await page.getByRole("button", { name: "Schedule", exact: true }).click();
    await until("the schedule", async () => {
      const { json } = await api(o, "GET", `${PROD}/change-requests/${cr.id}`);
      return json.applyAt && Date.parse(json.applyAt) === new Date("2030-01-02T09:30").getTime();
    });
    await page.getByText("Changed by someone else.").waitFor({ state: "detached" });
    // What is live moves (glass broken elsewhere): the change is stale until rebased.
    const cfg = `${P}/flags/new-nav/environments/production`;
    const { etag: live } = await api(o, "GET", cfg);
    await api(o, "PUT", cfg, { enabled: false, rules: [], fallthrough: { variant: "off" } }, {
      headers: { "if-match": live, "bunting-bypass-reason": "INC-9: nav errors" },
    });
    await page.reload();
    const item = page.locator(".diff-item").first();
    await item.getByText("stale", { exact: true }).waitFor();
    await page.getByText("What is live changed since this request was made.").waitFor();
    await page.getByRole("button", { name: "Rebase" }).click();
    await item.getByText("stale", { exact: true }).waitFor({ state: "detached" });
    // Break glass: the administrator applies it without the approval, with a reason.
    await page.getByLabel("Break glass: reason to apply without approvals").fill("launch moved up, see JIRA-42");
    await page.getByRole("button", { name: "Apply without approvals" }).click();
    await page.locator(".badge.status-applied").waitFor();
    assert.equal((await api(o, "GET", cfg)).json.enabled, true);
    // The policy, edited in the UI: two approvals.
    await page.goto(`${o}${P}/changes?env=production`);
    await page.getByRole("button", { name: "Edit policy" }).click();
    await page.getByLabel(/Required approvals/).fill("2");
    await page.getByRole("button", { name: "Save policy" }).click();
    await page.getByText("2 — protected").waitFor();
    assert.equal((await api(o, "GET", `${PROD}/policy`)).json.requiredApprovals, 2);
    noPageErrors(page);
  }));

test("the audit log: filters, diffs, pages and the chain's verification", { skip: missing }, () =>
  shotOnFailure("audit", async () => {
    const o = stack.base;
    await page.goto(`${o}/orgs/acme/audit`);
    await page.getByText(/Chain verified/).waitFor();
    assert.match(await page.locator(".verification").innerText(), /up to #\d+/);
    await page.getByRole("link", { name: "Export (JSON lines)" }).waitFor();
    // The monitor's rollback, by actor.
    await page.getByLabel("Actor").fill("auto-rollback");
    await page.getByRole("button", { name: "Apply filters" }).click();
    await page.waitForURL(/actor=auto-rollback/);
    const rows = page.locator("table.audit tbody tr:not(.detail)");
    await rows.first().waitFor();
    const actors = await page.locator("table.audit tbody button.actor").allInnerTexts();
    assert.ok(actors.length > 0 && actors.every((a) => a === "auto-rollback"), actors.join());
    // The export link carries the filters: JSON lines of the monitor's entries only.
    const href = await page.getByRole("link", { name: "Export (JSON lines)" }).getAttribute("href");
    assert.match(href, /actor=auto-rollback/);
    const lines = (await page.evaluate((h) => fetch(h).then((r) => r.text()), href)).trim().split("\n").map((l) => JSON.parse(l));
    assert.ok(lines.length >= 2 && lines.every((e) => e.actor === "auto-rollback"), JSON.stringify(lines.map((e) => e.actor)));
    const rollback = rows.filter({ has: page.locator(".badge", { hasText: "rollback" }) }).filter({ hasText: "flagConfig" }).first();
    await rollback.getByRole("button", { name: /Show diff/ }).click();
    await page.locator("tr.detail .json-diff").first().getByText(/"metric": "checkout-errors"/).waitFor();
    await audit(page, "the audit log with a diff");
    await screenshot(page, "audit");
    // An entity's entries: a click on its key filters by type and id.
    await page.getByRole("button", { name: "Clear" }).click();
    await page.waitForURL((u) => !u.search.includes("actor"));
    await page.getByLabel("Entity type").selectOption("changeRequest");
    await page.getByRole("button", { name: "Apply filters" }).click();
    await page.waitForURL(/entityType=changeRequest/);
    const types = await until("the change requests' entries", async () => {
      const t = await page.locator("table.audit tbody td:nth-child(5) .muted").allInnerTexts();
      return t.length >= 3 && t.every((x) => x === "changeRequest") && t;
    });
    assert.ok(types.length >= 3);
    // A click on an entity's key narrows to that entity; the form follows.
    const key = page.locator("table.audit tbody td:nth-child(5) button").first();
    const title = await key.getAttribute("title");
    const entityId = title.match(/#(\d+)/)[1];
    await key.click();
    await page.waitForURL(new RegExp(`entityId=${entityId}`));
    assert.equal(await page.getByLabel("Entity id").inputValue(), entityId);
    await until("one change request's entries", async () => {
      const titles = await page.locator("table.audit tbody td:nth-child(5) button").evaluateAll((bs) => bs.map((x) => x.title));
      return titles.length >= 3 && titles.every((t) => t === title);
    });
    // Pages of 50, forward and back.
    await page.getByRole("button", { name: "Clear" }).click();
    await page.getByLabel("Per page").selectOption("50");
    await page.getByRole("button", { name: "Apply filters" }).click();
    await page.getByText(/Entries #\d+–#\d+, oldest first; more on the next page/).waitFor();
    const first = await page.locator("table.audit tbody td.num").first().innerText();
    await page.getByRole("button", { name: "Next page →" }).click();
    await page.waitForURL(/after=\d+/);
    await page.waitForFunction((f) => document.querySelector("table.audit tbody td.num")?.textContent !== f, first);
    assert.ok(Number(await page.locator("table.audit tbody td.num").first().innerText()) > Number(first));
    await page.getByRole("button", { name: "← Previous page" }).click();
    await page.waitForFunction((f) => document.querySelector("table.audit tbody td.num")?.textContent === f, first);
    noPageErrors(page);
  }));

test("guarded rollouts: a rollback with its evidence, a watched rollout paused and resumed", { skip: missing }, () =>
  shotOnFailure("rollouts", async () => {
    const o = stack.base;
    await page.goto(`${o}${P}/rollouts?env=production`);
    const checkout = page.locator("article.rollout", { has: page.getByRole("heading", { name: "checkout" }) });
    await checkout.getByText("rolled back", { exact: true }).waitFor();
    // The evidence of a rolled-back guard is open at once.
    const evidence = checkout.locator(".evidence li.evidence-flagConfig-rollback").first();
    await evidence.getByText("Rolled back").waitFor();
    assert.match(await evidence.innerText(), /checkout-errors[\s\S]*vs control\s+off[\s\S]*p-value/);
    // What it serves now: the ramp went to zero (rolloutToZero: the schedule's `otherwise`).
    await checkout.getByText("default: serves off").waitFor();
    const search = page.locator("article.rollout", { has: page.getByRole("heading", { name: "search-v2" }) });
    await search.getByText("active", { exact: true }).waitFor();
    await search.getByText(/^(healthy|not healthy)$/).waitFor();
    const arms = await search.locator("table.guardrails tbody tr").allInnerTexts();
    assert.match(arms.join("\n"), /checkout-errors[\s\S]*on\s+60 \/ 60/, arms.join("\n"));
    await search.getByText("default: 50% on, 50% off").waitFor();
    // A gated ramp without enough users: its current step and the next, not healthy.
    const recs = page.locator("article.rollout", { has: page.getByRole("heading", { name: "recs-v3" }) });
    await recs.getByText(/default: ramp: 10% get on, the rest off \(step 1 of 2, since .*\); next 50% at /).waitFor();
    await recs.getByText("not healthy", { exact: true }).waitFor();
    await recs.getByText("gated by the guardrails").waitFor();
    await audit(page, "the guarded rollouts");
    await screenshot(page, "rollouts");
    await search.getByRole("button", { name: "Pause" }).click();
    await search.getByText("paused", { exact: true }).waitFor();
    assert.equal((await api(o, "GET", `${PROD}/guarded-rollouts/search-v2`)).json.status, "disabled");
    await search.getByRole("button", { name: "Resume" }).click();
    await search.getByText("active", { exact: true }).waitFor();
    assert.equal((await api(o, "GET", `${PROD}/guarded-rollouts/search-v2`)).json.status, "active");
    noPageErrors(page);
  }));

test("publishing: versions at the edge, an SDK key created (secret once), rotated and revoked", { skip: missing }, () =>
  shotOnFailure("publishing", async () => {
    const o = stack.base;
    await page.goto(`${o}${P}/publishing?env=production`);
    const { json: state } = await api(o, "GET", `${PROD}/publish`);
    await page.getByText("acme/web/production").waitFor();
    await page.locator(".publish-facts").getByText(String(state.snapshotVersion), { exact: true }).waitFor();
    await page.getByText("up to date everywhere").waitFor();
    await page.locator("table.targets tbody tr").first().getByText("current").waitFor();
    // Create: the secret is shown once.
    await page.getByLabel("Name").fill("storefront");
    await page.getByLabel("Kind").selectOption("client");
    await page.getByRole("button", { name: "Create SDK key" }).click();
    await page.getByText("You will not see this secret again.").waitFor();
    const secret = await page.locator(".secret-value").innerText();
    assert.ok(secret.length > 20, secret);
    const row = page.locator("table.sdk-keys tbody tr", { hasText: "storefront" });
    await row.getByText("active").waitFor();
    assert.ok(secret.startsWith((await row.locator("code").innerText()).replace("…", "")));
    await audit(page, "the publishing page with a new secret");
    await screenshot(page, "publishing");
    // The key works at the edge once published.
    await until("the key at the edge", async () => {
      const r = await stack.worker.fetch("/ofrep/v1/evaluate/flags/dark-mode", {
        method: "POST",
        headers: { authorization: `Bearer ${secret}`, "content-type": "application/json" },
        body: JSON.stringify({ context: { targetingKey: "u-1" } }),
      });
      await r.text();
      return r.status === 200;
    });
    await page.reload();
    await row.waitFor();
    assert.equal(await page.getByText(secret).count(), 0, "the secret is gone after a reload");
    assert.equal(await page.locator(".secret-value").count(), 0);
    // Rotate with a day's grace: a new secret, the old key stops tomorrow.
    await row.getByRole("button", { name: "Rotate storefront" }).click();
    const rotate = page.getByRole("dialog", { name: "Rotate storefront" });
    await rotate.getByLabel("Grace period of the old key").selectOption(String(86400));
    await rotate.getByRole("button", { name: "Rotate", exact: true }).click();
    await page.getByText("New key for storefront — copy it now").waitFor();
    const rotated = await page.locator(".secret-value").innerText();
    assert.notEqual(rotated, secret);
    await row.first().getByText(/stops /).waitFor();
    const { json: keys } = await api(o, "GET", `${PROD}/sdk-keys`);
    assert.equal(keys.items.length, 2);
    // Revoke the new one, after a confirmation.
    await page.getByRole("button", { name: "I have stored it" }).click();
    const revokeButtons = page.locator("table.sdk-keys tbody tr").filter({ hasText: "active" }).getByRole("button", { name: "Revoke storefront" });
    await revokeButtons.click();
    const confirm = page.getByRole("dialog", { name: "Revoke storefront?" });
    await confirm.getByRole("button", { name: "Revoke now" }).click();
    await page.locator("table.sdk-keys tbody tr").filter({ hasText: "stopped" }).waitFor();
    const { json: after } = await api(o, "GET", `${PROD}/sdk-keys`);
    const newest = after.items.find((k) => rotated.startsWith(k.prefix));
    assert.ok(newest?.expiresAt && Date.parse(newest.expiresAt) <= Date.now(), JSON.stringify(after));
    // At a phone's width nothing makes the page scroll sideways (wide tables scroll in their own box).
    await page.setViewportSize({ width: 390, height: 844 });
    for (const path of [`${P}/publishing?env=production`, `${P}/rollouts?env=production`, `${P}/changes?env=production`, "/orgs/acme/audit"]) {
      await page.goto(`${o}${path}`);
      await page.locator("main h1").waitFor();
      await page.waitForLoadState("networkidle");
      const wide = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      if (process.env.OPS_DEBUG_SHOTS) await page.screenshot({ path: `/tmp/ops-phone-${path.split("/")[path.split("/").length - 1].split("?")[0]}.png`, fullPage: true });
      const culprits = wide > 0 ? await page.evaluate(() => [...document.querySelectorAll("body *")].filter((e) => e.getBoundingClientRect().right > window.innerWidth + 1).slice(0, 5).map((e) => `${e.tagName}.${e.className} ${Math.round(e.getBoundingClientRect().right)}`)) : [];
      assert.ok(wide <= 0, `${path} is ${wide}px wider than a phone: ${culprits.join(", ")}`);
    }
    await page.setViewportSize({ width: 1280, height: 860 });
    noPageErrors(page);
  }));
