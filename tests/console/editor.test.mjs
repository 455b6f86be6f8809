// The flag editor end to end, in Chromium against a real `bunting serve`
// publishing to the edge worker (workerd): create a flag through the New
// flag dialog, write a rule with a broken condition and see the engine's
// error with its caret, fix it, compare draft and live in "Try it", save,
// flip the kill switch and see both served at the edge, read the history.
// Also: a 412 when someone else saved first, the editor by keyboard alone,
// the segments page, the axe audit of every tab, and a phone's width.
import assert from "node:assert/strict";
import { test } from "node:test";
import { post } from "../edge/harness.mjs";
import { published } from "../edge/stack.mjs";
import { ROOT_TOKEN, api, audit, browser, missing, noPageErrors, screenshot, seed, signedIn, startStack } from "./harness.mjs";

const ENV = "/orgs/acme/projects/web/environments/production";
const CONFIG = "/orgs/acme/projects/web/flags/new-checkout/environments/production";
const FLAG_PAGE = "/orgs/acme/projects/web/flags/new-checkout?env=production";
const IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1";

// Line 2, column 30: `geo.isEU` where `,` or `]` belongs.
const BROKEN = ['device.type == "mobile" &&', '  geo.country in ["US", "CA" geo.isEU'];
const FIXED = 'device.type == "mobile" && geo.country in ["US", "CA"]';

/** What the edge serves for new-checkout to a phone in Austin (BASE_CF), polled until `want`. */
async function edgeServes(worker, key, want, limitMs = 10000) {
  const start = performance.now();
  for (;;) {
    const r = await post(worker, "/ofrep/v1/evaluate/flags/new-checkout", { context: { targetingKey: "u-1" } }, { key, headers: { "User-Agent": IPHONE } });
    const body = await r.json();
    if (r.status === 200 && body.value === want.value && body.reason === want.reason) return body;
    if (performance.now() - start > limitMs) throw new Error(`the edge still answers ${r.status} ${JSON.stringify(body)}`);
    await new Promise((res) => setTimeout(res, 20));
  }
}

/** Presses Tab (or Shift+Tab) until the focused element matches `pred`. */
async function tabTo(page, pred, { back = false, max = 80 } = {}) {
  for (let i = 0; i < max; i++) {
    await page.keyboard.press(back ? "Shift+Tab" : "Tab");
    if (await page.evaluate(pred)) return;
  }
  throw new Error(`no focusable element matched after ${max} presses`);
}

/** The try-it table's cell of `field` on `side` (draft, live). */
const cell = (page, side, field) => page.locator(`td[data-side="${side}"][data-field="${field}"]`);

test("the flag editor, end to end", { skip: missing, timeout: 120_000 }, async (t) => {
  const stack = await startStack({ edge: true });
  const b = await browser();
  t.after(async () => {
    await b.close();
    await stack.stop();
  });
  const { base, worker } = stack;
  await seed(base);
  // A server key: the flag made in the editor is not available to client-side SDKs.
  const { json: sdkKey } = await api(base, "POST", `${ENV}/sdk-keys`, { kind: "server", name: "backend" });
  await api(base, "POST", `${ENV}/segments`, { key: "staff", condition: 'email ends_with "@bunting.dev"', description: "Employees" });
  const page = await signedIn(b, stack);
  page.setDefaultTimeout(10_000);

  await t.test("create a flag with the New flag dialog", async () => {
    await page.goto(`${base}/orgs/acme/projects/web/flags?env=production`);
    await page.getByRole("button", { name: "New flag" }).click();
    const dialog = page.getByRole("dialog", { name: "New flag" });
    await dialog.getByLabel("Key").fill("new-checkout");
    await dialog.getByLabel("Description").fill("One-page checkout");
    await dialog.getByLabel("Owner").fill("payments");
    await dialog.getByLabel("Tags (comma-separated)").fill("checkout, q4");
    await dialog.getByRole("button", { name: "Create flag" }).click();
    await page.waitForURL(/\/flags\/new-checkout/);
    await assert.doesNotReject(page.getByRole("heading", { level: 1, name: "new-checkout" }).waitFor());
    assert.equal(await page.locator(".flag-page .description").textContent(), "One-page checkout");
    assert.equal(await page.getByLabel("Environment").inputValue(), "production");
    // New flags start off; one click turns production on.
    const sw = page.getByRole("switch", { name: /new-checkout in Production/ });
    assert.equal(await sw.getAttribute("aria-checked"), "false");
    await sw.click();
    await page.getByRole("switch", { name: "new-checkout in Production: on" }).waitFor();
  });

  await t.test("a broken condition shows the engine's error with a caret; fixing it clears it", async () => {
    await page.getByRole("button", { name: "Add a rule" }).click();
    const rule = page.locator("li.rule").first();
    const editor = rule.getByRole("textbox", { name: "Rule 1 condition" });
    // Adding a rule puts the focus in its condition.
    assert.equal(await editor.evaluate((el) => el === document.activeElement), true);
    await page.keyboard.type(BROKEN[0]);
    await page.keyboard.press("Enter");
    await page.keyboard.type(BROKEN[1]);
    // Checked 120 ms after the last change: until then the rule may still show the
    // problem of an earlier text (its empty condition's 1:1 on a slow machine).
    const position = rule.locator(".condition-problems .position");
    await position.filter({ hasText: /^2:30$/ }).waitFor();
    assert.equal(await position.count(), 1);
    assert.match(await rule.locator(".condition-problems .problem p").textContent(), /^2:30: expected `,` or `]`, found identifier `geo\.isEU`$/);
    const [line, caret] = (await rule.locator("pre.caret").textContent()).split("\n");
    assert.equal(line, BROKEN[1]);
    assert.equal(caret.indexOf("^"), 29, "the caret is under column 30");
    assert.equal(caret.trim(), "^".repeat("geo.isEU".length));
    // The same span as a CodeMirror lint diagnostic.
    assert.equal(await rule.locator(".cm-lintRange-error").textContent(), "geo.isEU");
    await page.locator(".save-bar", { hasText: "1 problem" }).waitFor();
    // A schedule for everybody else, drawn as a timeline.
    await page.locator("#fallthrough-kind").selectOption("schedule");
    await page.locator(".timeline svg").waitFor();
    await page.locator(".save-bar", { hasText: "1 problem" }).waitFor();
    await screenshot(page, "flag-targeting");
    await audit(page, "the flag page's Targeting tab");

    // Saved anyway, the origin refuses it (422) and its problem goes to the rule too.
    await page.getByRole("button", { name: "Save to Production" }).click();
    await page.getByText("The origin refused the configuration").waitFor();
    assert.equal(await rule.locator(".condition-problems .position").count(), 1, "the origin's copy of the problem is shown once");

    await editor.fill(FIXED);
    await page.getByText("The origin refused the configuration").waitFor({ state: "detached" });
    await rule.locator(".condition-problems .problem").waitFor({ state: "detached" });
    await page.locator(".save-bar .state", { hasText: /· valid$/ }).waitFor();
    assert.equal(await rule.locator(".cm-lintRange-error").count(), 0);
  });

  await t.test("Try it: the draft and the live version side by side", async () => {
    await page.getByRole("tab", { name: /Targeting/ }).getByText("●").waitFor();
    await page.getByRole("tab", { name: "Try it" }).click();
    // A desktop in the US does not match the rule: the schedule serves.
    await page.getByLabel("Preset").selectOption({ label: "Customer in the US, on a desktop" });
    assert.equal(await page.getByLabel("geo.country").inputValue(), "US");
    await cell(page, "draft", "Reason").filter({ hasText: "SPLIT" }).waitFor();
    assert.equal(await cell(page, "draft", "Matching rule").textContent(), "—");
    assert.equal(await cell(page, "live", "Reason").textContent(), "STATIC");
    // The same customer on a phone matches it.
    await page.getByLabel("device.type").selectOption("mobile");
    await page.getByLabel("device.os").selectOption("iOS");
    await cell(page, "draft", "Variant").filter({ hasText: "on" }).waitFor();
    assert.equal(await cell(page, "draft", "Value").textContent(), "true");
    assert.equal(await cell(page, "draft", "Reason").textContent(), "TARGETING_MATCH");
    assert.equal(await cell(page, "draft", "Matching rule").textContent(), "rule-1");
    assert.equal(await cell(page, "live", "Value").textContent(), "false");
    assert.equal(await cell(page, "live", "Variant").textContent(), "off");
    assert.equal(await cell(page, "live", "Reason").textContent(), "STATIC");
    assert.equal(await cell(page, "live", "Matching rule").textContent(), "—");
    await screenshot(page, "flag-try-it");
    await audit(page, "the flag page's Try it tab");
    await page.getByLabel("Context (JSON)").fill("{ nope");
    await page.locator("#try-context-error", { hasText: /JSON/ }).waitFor();
  });

  await t.test("the draft survives switching tabs; saving publishes it to the edge", async () => {
    await page.getByRole("tab", { name: /Targeting/ }).click();
    assert.equal(await page.locator(".badge.unsaved").textContent(), "Unsaved changes");
    assert.equal(await page.getByRole("textbox", { name: "Rule 1 condition" }).textContent(), FIXED);
    await page.getByRole("button", { name: "Save to Production" }).click();
    await page.locator(".save-bar .state", { hasText: /^Saved/ }).waitFor();
    assert.equal(await page.locator(".badge.unsaved").count(), 0);
    const { json: config } = await api(base, "GET", CONFIG);
    assert.deepEqual(config.rules, [{ id: "rule-1", condition: FIXED, serve: { variant: "on" } }]);
    assert.equal(config.fallthrough.schedule.variant, "on");
    // An edit undone is no change.
    await page.getByRole("textbox", { name: "Rule 1 condition" }).click();
    await page.keyboard.type(" ");
    await page.locator(".badge.unsaved").waitFor();
    await page.keyboard.press("Backspace");
    await page.locator(".badge.unsaved").waitFor({ state: "detached" });
    await published(base, ENV);
    const served = await edgeServes(worker, sdkKey.secret, { value: true, reason: "TARGETING_MATCH" });
    assert.equal(served.variant, "on");
  });

  await t.test("the kill switch turns it off at the edge", async () => {
    await page.getByRole("switch", { name: "new-checkout in Production: on" }).click();
    await page.getByRole("switch", { name: "new-checkout in Production: off" }).waitFor();
    await published(base, ENV);
    await edgeServes(worker, sdkKey.secret, { value: false, reason: "DISABLED" });
  });

  await t.test("History: who, when, what, and the diffs", async () => {
    await page.getByRole("tab", { name: "History" }).click();
    const entries = page.locator("li.entry");
    await entries.first().waitFor();
    const heads = await page.locator(".entry-head").allTextContents();
    // Newest first: the kill switch, the save, the kill switch, …, the definition.
    assert.match(heads[0], /^update configuration in production by \S*admin@localhost/);
    assert.match(heads[1], /^update configuration in production/);
    assert.match(heads.at(-1), /^create definition by \S*admin@localhost/);
    const kill = entries.first().locator("figure.diff pre");
    assert.match(await kill.locator(".del").allTextContents().then((l) => l.join("\n")), /"enabled": true/);
    assert.match(await kill.locator(".add").allTextContents().then((l) => l.join("\n")), /"enabled": false/);
    const save = await entries.nth(1).locator("figure.diff pre .add").allTextContents();
    assert.ok(save.some((l) => l.includes(`"condition": ${JSON.stringify(FIXED)}`)), save.join("\n"));
    assert.match(await entries.nth(1).locator("figcaption").textContent(), /\+\d+ −\d+/);
    await screenshot(page, "flag-history");
    await audit(page, "the flag page's History tab");
  });

  await t.test("Settings: edit the definition", async () => {
    await page.getByRole("tab", { name: "Settings" }).click();
    await page.getByLabel("Description").fill("One-page checkout, with Apple Pay");
    // Available to client-side SDKs: off for a new flag, kept by later saves.
    const clientSide = page.getByLabel(/Available to client-side SDKs/);
    assert.equal(await clientSide.isChecked(), false);
    await clientSide.check();
    await page.getByRole("button", { name: "Save definition" }).click();
    await page.locator(".flag-page .description", { hasText: "with Apple Pay" }).waitFor();
    await audit(page, "the flag page's Settings tab");
    const { json: flag } = await api(base, "GET", "/orgs/acme/projects/web/flags/new-checkout");
    assert.equal(flag.description, "One-page checkout, with Apple Pay");
    assert.equal(flag.clientSide, true);
    await page.getByLabel("Owner").fill("payments");
    await page.getByRole("button", { name: "Save definition" }).click();
    const read = async () => (await api(base, "GET", "/orgs/acme/projects/web/flags/new-checkout")).json;
    for (let i = 0; i < 200 && (await read()).owner !== "payments"; i++) await new Promise((r) => setTimeout(r, 25));
    const again = await read();
    assert.equal(again.owner, "payments");
    assert.equal(again.clientSide, true, "a later save keeps it");
  });

  await t.test("saving over someone else's change: 412, compare, reload", async () => {
    await page.getByRole("tab", { name: "Targeting" }).click();
    await page.getByRole("button", { name: "Add a rule" }).click();
    await page.keyboard.type('plan == "pro"');
    // Behind the page's back: the fallthrough becomes `on`.
    const { json: now, etag } = await api(base, "GET", CONFIG);
    await api(base, "PUT", CONFIG, { enabled: now.enabled, rules: now.rules, fallthrough: { variant: "on" }, prerequisites: [] }, { headers: { "If-Match": etag } });
    await page.getByRole("button", { name: "Save to Production" }).click();
    const stale = page.locator(".note.stale");
    await stale.waitFor();
    assert.match(await stale.textContent(), /Changed by someone else — reload or compare/);
    const diff = (await stale.locator("figure.diff pre").textContent()).split("\n");
    assert.ok(diff.some((l) => l.startsWith("+") && l.includes('"condition": "plan == \\"pro\\""')), diff.join("\n"));
    assert.ok(diff.some((l) => l.startsWith("-") && l.includes('"variant": "on"')), diff.join("\n"));
    await page.getByRole("button", { name: "Reload theirs (discard yours)" }).click();
    await stale.waitFor({ state: "detached" });
    await page.locator("li.rule").nth(1).waitFor({ state: "detached" });
    await page.waitForFunction(() => document.querySelector("#fallthrough-kind")?.value === "variant");
    assert.equal(await page.locator("#fallthrough-variant").inputValue(), "on");
  });

  await t.test("the editor by keyboard alone: add a rule, type its condition, save", async () => {
    await page.goto(`${base}${FLAG_PAGE}`);
    await page.locator("li.rule").first().waitFor();
    await page.locator("body").focus();
    await tabTo(page, () => document.activeElement?.textContent === "Add a rule");
    await page.keyboard.press("Enter");
    await page.waitForFunction(() => document.activeElement?.getAttribute("aria-label") === "Rule 2 condition");
    await page.keyboard.type('segment("staff")');
    await page.locator(".save-bar .state", { hasText: /· valid$/ }).waitFor();
    // Undo and redo in the condition (CodeMirror groups typing closer than
    // 500 ms into one undo step, so pause between the two).
    await page.waitForTimeout(600);
    await page.keyboard.type(" && country");
    await page.keyboard.press("Control+z");
    assert.equal(await page.getByRole("textbox", { name: "Rule 2 condition" }).textContent(), 'segment("staff")');
    await page.keyboard.press("Control+y");
    assert.equal(await page.getByRole("textbox", { name: "Rule 2 condition" }).textContent(), 'segment("staff") && country');
    await page.keyboard.press("Control+z");
    await page.locator(".save-bar .state", { hasText: /· valid$/ }).waitFor();
    // The rule's variant: Tab to the serve select, then choose with the keyboard.
    await tabTo(page, () => document.activeElement?.id?.endsWith("-serve-variant"));
    await page.keyboard.type("of");
    await tabTo(page, () => document.activeElement?.textContent === "Save to Production", { back: true });
    await page.keyboard.press("Enter");
    await page.locator(".save-bar .state", { hasText: /^Saved/ }).waitFor();
    const { json: config } = await api(base, "GET", CONFIG);
    assert.equal(config.rules.length, 2);
    assert.deepEqual(config.rules[1], { id: "rule-2", condition: 'segment("staff")', serve: { variant: "off" } });
    assert.equal(config.fallthrough.variant, "on");
    // Moving a rule keeps the focus on it: rule 2 moves up, its "down" button has the focus.
    await tabTo(page, () => document.activeElement?.getAttribute("aria-label") === "Move rule 2 up");
    await page.keyboard.press("Enter");
    await page.waitForFunction(() => document.activeElement?.getAttribute("aria-label") === "Move rule 1 down");
    assert.equal(await page.locator("li.rule .rule-id").first().inputValue(), "rule-2");
    assert.equal(await page.getByRole("textbox", { name: "Rule 1 condition" }).textContent(), 'segment("staff")');
    await tabTo(page, () => document.activeElement?.textContent === "Discard", { back: true });
    await page.keyboard.press("Enter");
    await page.locator(".save-bar .state", { hasText: /^No changes/ }).waitFor();
    assert.equal(await page.locator("li.rule .rule-id").first().inputValue(), "rule-1");
  });

  await t.test("drafts are kept per environment; one that needs approvals opens a change request", async () => {
    await api(base, "PUT", "/orgs/acme/projects/web/environments/staging/policy", { requiredApprovals: 1 });
    await page.getByRole("button", { name: "Add a rule" }).click();
    await page.keyboard.type('plan == "enterprise"');
    await page.getByLabel("Environment").selectOption("staging");
    await page.locator(".save-bar .state", { hasText: /^No changes/ }).waitFor();
    assert.equal(await page.locator("li.rule").count(), 0, "staging has no rules");
    assert.match(await page.locator("#flag-env option[value=production]").textContent(), /unsaved/);
    await page.locator("#fallthrough-variant").selectOption("on");
    await page.getByRole("button", { name: "Request approval" }).click();
    const link = page.getByRole("link", { name: /^change request #\d+$/ });
    await link.waitFor();
    assert.match(await link.getAttribute("href"), /^\/orgs\/acme\/projects\/web\/changes\/staging\/\d+$/);
    const { json: staging } = await api(base, "GET", "/orgs/acme/projects/web/flags/new-checkout/environments/staging");
    assert.deepEqual(staging.fallthrough, { variant: "off" }, "nothing changes before the approval");
    await page.getByLabel("Environment").selectOption("production");
    await page.getByRole("textbox", { name: "Rule 3 condition" }).waitFor();
    assert.equal(await page.getByRole("textbox", { name: "Rule 3 condition" }).textContent(), 'plan == "enterprise"');
    await page.getByRole("button", { name: "Discard" }).click();
    await page.locator("li.rule").nth(2).waitFor({ state: "detached" });
  });

  await t.test("the segments page: create with validation, edit, delete", async () => {
    await page.getByRole("link", { name: "Segments" }).click();
    await page.getByRole("heading", { level: 1, name: "Segments" }).waitFor();
    await page.getByRole("row", { name: /staff/ }).waitFor();
    await page.getByRole("button", { name: "New segment" }).click();
    await page.getByLabel("Key", { exact: true }).fill("beta");
    await page.getByLabel("Description").fill("Beta testers");
    await page.getByLabel(/Always included/).fill("u-1\nu-2");
    const cond = page.getByRole("textbox", { name: "Segment condition" });
    await cond.click();
    await page.keyboard.type('lower(email) ends_with');
    const position = page.locator(".segment-editor .condition-problems .position");
    // As for rules: wait for this text's check, not an earlier text's problem.
    await position.filter({ hasText: /^1:23$/ }).waitFor();
    assert.equal(await position.count(), 1);
    await cond.fill('lower(email) ends_with "@example.com"');
    await position.waitFor({ state: "detached" });
    await audit(page, "the segments page with its editor");
    await page.getByRole("button", { name: "Create segment" }).click();
    await page.getByRole("row", { name: /beta/ }).waitFor();
    const { json: made } = await api(base, "GET", `${ENV}/segments/beta`);
    assert.deepEqual(made.segment, { key: "beta", included: ["u-1", "u-2"], condition: 'lower(email) ends_with "@example.com"', description: "Beta testers" });

    await page.getByRole("button", { name: "Edit staff" }).click();
    await page.getByLabel(/Always excluded/).fill("intern-1");
    await page.getByRole("button", { name: "Save segment" }).click();
    await page.getByRole("row", { name: /staff/ }).getByRole("cell", { name: "1", exact: true }).first().waitFor();
    const { json: staff } = await api(base, "GET", `${ENV}/segments/staff`);
    assert.deepEqual(staff.segment.excluded, ["intern-1"]);

    await page.getByRole("button", { name: "Edit beta" }).click();
    await screenshot(page, "segments");
    await page.getByRole("button", { name: "Cancel" }).click();
    await page.getByRole("button", { name: "Delete beta" }).click();
    await page.getByRole("dialog").getByRole("button", { name: "Delete the segment" }).click();
    await page.getByRole("row", { name: /beta/ }).waitFor({ state: "detached" });
    await audit(page, "the segments page");
  });

  await t.test("prerequisites: another flag and its variant", async () => {
    await api(base, "POST", "/orgs/acme/projects/web/flags", { key: "old-banner", flagType: "boolean", variants: { on: true, off: false }, offVariant: "off" });
    await api(base, "POST", "/orgs/acme/projects/web/flags/old-banner/environments/production/toggle", { enabled: true });
    await page.goto(`${base}/orgs/acme/projects/web/flags/old-banner?env=production`);
    await page.getByRole("button", { name: "Add a prerequisite" }).click();
    await page.locator("#prereq-0-flag").selectOption("new-checkout");
    await page.locator("#prereq-0-variant").selectOption("on");
    await page.locator(".save-bar .state", { hasText: /· valid$/ }).waitFor();
    // new-checkout is off in production: the prerequisite fails in the draft.
    await page.getByRole("tab", { name: "Try it" }).click();
    assert.equal(await cell(page, "draft", "Prerequisite failed").textContent(), "new-checkout");
    assert.equal(await cell(page, "draft", "Reason").textContent(), "DEFAULT");
    assert.equal(await cell(page, "live", "Prerequisite failed").textContent(), "—");
    await page.getByRole("tab", { name: /Targeting/ }).click();
    await page.getByRole("button", { name: "Save to Production" }).click();
    await page.locator(".save-bar .state", { hasText: /^Saved/ }).waitFor();
    const { json: config } = await api(base, "GET", "/orgs/acme/projects/web/flags/old-banner/environments/production");
    assert.deepEqual(config.prerequisites, [{ flag: "new-checkout", variant: "on" }]);
  });

  await t.test("Settings: delete a flag after a confirmation", async () => {
    await page.getByRole("tab", { name: "Settings" }).click();
    await page.getByRole("button", { name: "Delete old-banner…" }).click();
    const confirm = page.getByRole("dialog", { name: "Delete old-banner?" });
    await confirm.getByRole("button", { name: "Cancel" }).click();
    await confirm.waitFor({ state: "hidden" });
    await page.getByRole("button", { name: "Delete old-banner…" }).click();
    await confirm.getByRole("button", { name: "Delete the flag" }).click();
    // Staging needs approvals (above), which a deletion cannot wait for: break glass.
    await confirm.getByText(/need approvals/).waitFor();
    await confirm.getByLabel(/Reason to do it now/).fill("cleanup of a dead flag");
    await confirm.getByRole("button", { name: "Delete now (break glass)" }).click();
    await page.waitForURL((u) => u.pathname === "/orgs/acme/projects/web/flags");
    const r = await fetch(`${base}/api/v1/orgs/acme/projects/web/flags/old-banner`, { headers: { authorization: `Bearer ${ROOT_TOKEN}` } });
    assert.equal(r.status, 404);
  });

  await t.test("a phone's width: the flag page fits", async () => {
    const phone = await b.newContext({ viewport: { width: 390, height: 844 }, storageState: await page.context().storageState(), reducedMotion: "reduce" });
    const p = await phone.newPage();
    const errors = [];
    p.on("pageerror", (e) => errors.push(e.message));
    await p.goto(`${base}${FLAG_PAGE}`);
    await p.locator("li.rule").first().waitFor();
    const overflow = await p.evaluate(() => ({ page: document.documentElement.scrollWidth, body: document.body.scrollWidth, width: window.innerWidth }));
    assert.ok(overflow.page <= overflow.width && overflow.body <= overflow.width, `horizontal overflow: ${JSON.stringify(overflow)}`);
    await screenshot(p, "flag-phone");
    assert.deepEqual(errors, []);
    await phone.close();
  });

  noPageErrors(page);
});
