// The console's entry and its flags list in Chromium against a real
// `bunting serve`: the sign-in page, signing in with the one-time link, the
// list with its filters, creating a flag (a 422 shown next to its field),
// the kill switch (one click, and a confirmation with a reason where the
// environment needs approvals), the accessibility audit and a phone's width.
import { test } from "node:test";
import assert from "node:assert/strict";
import { api, audit, browser, missing, noPageErrors, screenshot, seed, signedIn, startStack } from "./harness.mjs";

const FLAGS = "/orgs/acme/projects/web/flags";

test("the flags list: sign in, filter, create, kill switch, audit, phone", { skip: missing }, async () => {
  const stack = await startStack();
  const b = await browser();
  try {
    const o = stack.base;
    await seed(o);
    const flag = (key, tags, extra = {}) =>
      api(o, "POST", FLAGS, {
        key, flagType: "boolean", variants: { on: true, off: false }, offVariant: "off", tags, ...extra,
      });
    await flag("new-checkout", ["checkout", "payments"], { description: "One-page checkout" });
    await flag("dark-mode", ["ui"]);
    await api(o, "POST", FLAGS, {
      key: "banner-text", flagType: "string", variants: { a: "Hello", b: "Welcome" }, offVariant: "a", tags: ["ui"],
    });
    await api(o, "POST", `${FLAGS}/dark-mode/environments/staging/toggle`, { enabled: true });

    // Signed out: where to sign in, and nothing else.
    const anon = await (await b.newContext()).newPage();
    await anon.goto(`${o}/orgs/acme/projects/web/flags`);
    await anon.getByRole("link", { name: /sign in with your identity provider/i }).waitFor();
    await audit(anon, "the sign-in page");
    await screenshot(anon, "sign-in");

    // Signed in: the link lands on the first project's flags.
    const page = await signedIn(b, stack);
    await page.waitForURL(`${o}${FLAGS}`);
    const rows = page.locator("table.flags tbody tr");
    await assert.doesNotReject(rows.first().waitFor());
    assert.equal(await rows.count(), 3);
    // The title follows the page's render (an effect): wait for it.
    await page.waitForFunction((t) => document.title === t, "Flags · web · bunting", { timeout: 10_000 }).catch(() => {});
    assert.equal(await page.title(), "Flags · web · bunting");
    // Each environment's state, from the list's one request per page.
    const darkStaging = page.getByRole("switch", { name: "dark-mode in Staging: on" });
    assert.equal(await darkStaging.getAttribute("aria-checked"), "true");
    assert.equal(await page.getByRole("switch", { name: "dark-mode in Production: off" }).getAttribute("aria-checked"), "false");

    // Filters: search, tag, type.
    await page.getByLabel("Search", { exact: true }).fill("checkout");
    await page.getByText("1 of 3 flags").waitFor();
    assert.deepEqual(await rows.locator("th a").allTextContents(), ["new-checkout"]);
    await page.getByLabel("Search", { exact: true }).fill("");
    await page.getByLabel("Tag", { exact: true }).selectOption("ui");
    assert.deepEqual((await rows.locator("th a").allTextContents()).sort(), ["banner-text", "dark-mode"]);
    await page.getByLabel("Type", { exact: true }).selectOption("string");
    assert.deepEqual(await rows.locator("th a").allTextContents(), ["banner-text"]);
    await page.getByLabel("Tag", { exact: true }).selectOption("");
    await page.getByLabel("Type", { exact: true }).selectOption("");
    await audit(page, "the flags list");
    await screenshot(page, "flags");

    // Create: the API's 422 goes next to the key field.
    await page.getByRole("button", { name: "New flag" }).click();
    const dialog = page.getByRole("dialog", { name: "New flag" });
    await dialog.getByLabel("Key").fill("no spaces allowed");
    await dialog.getByRole("button", { name: "Create flag" }).click();
    const keyProblem = dialog.locator("#key-problems li");
    await keyProblem.first().waitFor();
    assert.match(await keyProblem.first().textContent(), /\S/);
    assert.equal(await dialog.getByLabel("Key").getAttribute("aria-invalid"), "true");
    await audit(page, "the New flag dialog with a problem");
    await dialog.getByLabel("Key").fill("search-v2");
    await dialog.getByLabel("Tags (comma-separated)").fill("search, beta");
    await dialog.getByRole("button", { name: "Create flag" }).click();
    await page.waitForURL(`${o}${FLAGS}/search-v2`);
    const { json: created } = await api(o, "GET", `${FLAGS}/search-v2`);
    assert.deepEqual(created.tags, ["search", "beta"]);
    assert.deepEqual(created.variants, { on: true, off: false });

    // The kill switch: one click in staging.
    await page.goto(`${o}${FLAGS}`);
    await page.getByRole("switch", { name: "search-v2 in Staging: off" }).click();
    await page.getByRole("switch", { name: "search-v2 in Staging: on" }).waitFor();
    const { json: staging } = await api(o, "GET", `${FLAGS}/search-v2/environments/staging`);
    assert.equal(staging.enabled, true);

    // Production needs an approval: the switch asks; with a reason it breaks glass.
    await api(o, "PUT", "/orgs/acme/projects/web/environments/production/policy", { requiredApprovals: 1 });
    await page.reload();
    await page.getByRole("switch", { name: "new-checkout in Production: off" }).click();
    const confirm = page.getByRole("dialog", { name: "Turn new-checkout on in Production?" });
    await confirm.getByText("needs 1 approval").waitFor();
    await audit(page, "the kill switch's confirmation");
    await confirm.getByLabel(/reason/i).fill("incident 42: turn it on now");
    await confirm.getByRole("button", { name: "Turn on now" }).click();
    await page.getByRole("switch", { name: "new-checkout in Production: on" }).waitFor();
    const { json: log } = await api(o, "GET", "/orgs/acme/audit?limit=20");
    assert.ok(
      JSON.stringify(log).includes("incident 42: turn it on now"),
      "the break-glass reason is in the audit log",
    );
    // Without a reason it opens a change request instead.
    await page.getByRole("switch", { name: "new-checkout in Production: on" }).click();
    await page.getByRole("dialog", { name: "Turn new-checkout off in Production?" })
      .getByRole("button", { name: "Open a change request" }).click();
    await page.getByRole("link", { name: /change request #\d+/ }).waitFor();
    const { json: crs } = await api(o, "GET", "/orgs/acme/projects/web/environments/production/change-requests");
    const open = crs.items.filter((c) => c.status === "open");
    assert.equal(open.length, 1, JSON.stringify(crs.items));
    assert.equal((await api(o, "GET", `${FLAGS}/new-checkout/environments/production`)).json.enabled, true);
    // Archive: out of the list and of every snapshot, back on restore.
    await page.goto(`${o}${FLAGS}/dark-mode?env=staging`);
    await page.getByRole("tab", { name: "Settings" }).click();
    await page.getByRole("button", { name: "Archive dark-mode" }).click();
    // Production needs approvals: archiving is refused until glass is broken.
    await page.getByLabel(/^Reason to do it now/).fill("retired after the redesign");
    await page.getByRole("button", { name: "Archive dark-mode" }).click();
    await page.getByText(/^Archived: no environment serves this flag/).waitFor();
    const snapshotKeys = async () =>
      (await api(o, "GET", "/orgs/acme/projects/web/environments/staging/snapshot")).json.flags.map((f) => f.key);
    assert.ok(!(await snapshotKeys()).includes("dark-mode"), "an archived flag is out of the snapshot");
    await page.goto(`${o}${FLAGS}`);
    await page.getByText("3 flags", { exact: true }).waitFor();
    assert.ok(!(await rows.locator("th a").allTextContents()).includes("dark-mode"));
    await page.getByLabel("Show", { exact: true }).selectOption("archived");
    await page.getByText("1 archived flags", { exact: true }).waitFor();
    assert.deepEqual(await rows.locator("th a").allTextContents(), ["dark-mode"]);
    assert.equal(await page.getByRole("switch", { name: "dark-mode in Staging: on" }).isDisabled(), true);
    await rows.locator("th a").first().click();
    await page.getByRole("tab", { name: "Settings" }).click();
    await page.getByRole("button", { name: "Restore dark-mode" }).click();
    await page.getByLabel(/^Reason to do it now/).fill("needed again");
    await page.getByRole("button", { name: "Restore dark-mode" }).click();
    await page.getByRole("button", { name: "Archive dark-mode" }).waitFor();
    assert.ok((await snapshotKeys()).includes("dark-mode"), "a restored flag is served again");
    noPageErrors(page);

    // A session that ends: the next request brings the sign-in page back.
    const ended = await b.newContext({ storageState: await page.context().storageState() });
    const later = await ended.newPage();
    await later.goto(`${o}${FLAGS}`);
    await later.locator("table.flags tbody tr").first().waitFor();
    await ended.clearCookies();
    await later.getByRole("switch", { name: "search-v2 in Staging: on" }).click();
    await later.getByRole("link", { name: /sign in with your identity provider/i }).waitFor();
    await ended.close();

    // A phone's width: the page reflows, the table scrolls inside itself.
    const phone = await b.newContext({ viewport: { width: 390, height: 844 }, storageState: await page.context().storageState() });
    const small = await phone.newPage();
    await small.goto(`${o}${FLAGS}`);
    await small.locator("table.flags tbody tr").first().waitFor();
    const overflow = await small.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(overflow <= 0, `the page is ${overflow}px wider than a phone`);
    await audit(small, "the flags list at a phone's width");
    await screenshot(small, "flags-phone");
  } finally {
    await b.close();
    await stack.stop();
  }
});
