// Mutual-exclusion layers in Chromium against a real `bunting serve`: the
// Layers page (create, edit with a 412, delete refused while a flag holds a
// slot, the bar of the bucket space), a flag's layer slot, salt and bucketBy
// in its Settings (an overlap warned about and the origin's 422 shown, a bad
// range's problem next to its field), the slot in the published snapshot,
// the accessibility audit and a phone's width.
import { test } from "node:test";
import assert from "node:assert/strict";
import { api, audit, browser, missing, noPageErrors, screenshot, seed, signedIn, startStack } from "./harness.mjs";

const WEB = "/orgs/acme/projects/web";
const LAYERS = `${WEB}/layers`;

/** Polls `check` (an async predicate) until it holds, for up to 5 s. */
async function until(what, check) {
  for (let i = 0; i < 100; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`timed out waiting for ${what}`);
}

/** Whether the page scrolls sideways. */
const overflows = (p) => p.evaluate(() => document.documentElement.scrollWidth > window.innerWidth || document.body.scrollWidth > window.innerWidth);

test("layers: the page, a flag's slot in Settings, the snapshot, audit, phone", { skip: missing }, async () => {
  const stack = await startStack();
  const b = await browser();
  try {
    const o = stack.base;
    await seed(o);
    await api(o, "POST", LAYERS, { key: "checkout", salt: "checkout-2026" });
    const flag = (key, extra = {}) =>
      api(o, "POST", `${WEB}/flags`, { key, flagType: "boolean", variants: { on: true, off: false }, offVariant: "off", ...extra });
    await flag("new-checkout", { layer: { key: "checkout", start: 0, end: 50 } });
    await flag("one-click");

    const page = await signedIn(b, stack);
    await page.waitForURL(`${o}${WEB}/flags`);

    // The Layers page, from the navigation: the seeded layer with its flag.
    await page.getByRole("navigation", { name: "Sections" }).getByRole("link", { name: "Layers" }).click();
    await page.getByRole("heading", { level: 1, name: "Layers" }).waitFor();
    // The title follows the page's render (an effect): wait for it.
    await page.waitForFunction((t) => document.title === t, "Layers · web · bunting", { timeout: 10_000 }).catch(() => {});
    assert.equal(await page.title(), "Layers · web · bunting");
    const checkout = page.locator("section.layer-card", { has: page.getByRole("heading", { name: "checkout" }) });
    await checkout.waitFor();
    assert.equal(
      await checkout.getByRole("img").getAttribute("aria-label"),
      "Layer checkout: new-checkout 0–50 %; free 50–100 %",
    );
    assert.match(await checkout.locator("p.free").textContent(), /Free: 50–100 %/);
    assert.match(await checkout.locator("dl").textContent(), /Saltcheckout-2026/);

    // Create a layer: a bad key is refused next to the field, then created.
    await page.getByRole("button", { name: "New layer" }).click();
    await page.getByLabel("Key").fill("search");
    await page.getByLabel("Bucket by").fill("account..id");
    await page.getByRole("button", { name: "Create layer" }).click();
    await page.locator("#layer-bucket-by-problems", { hasText: "is not an attribute path" }).waitFor();
    await page.getByLabel("Bucket by").fill("account.id");
    await page.getByRole("button", { name: "Create layer" }).click();
    await page.getByRole("status").getByText("Created the layer.").waitFor();
    const search = page.locator("section.layer-card", { has: page.getByRole("heading", { name: "search" }) });
    assert.equal(await search.getByRole("img").getAttribute("aria-label"), "Layer search: free 0–100 %");
    const { json: created } = await api(o, "GET", `${LAYERS}/search`);
    assert.deepEqual(created.layer, { key: "search", bucketBy: "account.id" });
    // The same key again: the origin's 409, next to the key.
    await page.getByRole("button", { name: "New layer" }).click();
    await page.getByLabel("Key").fill("search");
    await page.getByRole("button", { name: "Create layer" }).click();
    await page.locator("#layer-key-problems", { hasText: 'layer key "search" already exists' }).waitFor();
    await page.getByRole("button", { name: "Cancel" }).click();

    // Edit over someone else's change: the 412 where it happened.
    await search.getByRole("button", { name: "Edit layer search" }).click();
    await api(o, "PUT", `${LAYERS}/search`, { key: "search", bucketBy: "account.id", salt: "s1" }, { headers: { "If-Match": '"1"' } });
    await page.getByLabel("Salt").fill("s2");
    await page.getByText("Saving a new salt moves users between this layer's slots").waitFor();
    await page.getByRole("button", { name: "Save layer" }).click();
    await page.locator(".layer-editor .note.error", { hasText: "Changed by someone else" }).waitFor();
    await page.getByRole("button", { name: "Reload and compare" }).click();
    await search.locator("dl", { hasText: "s1" }).waitFor();
    await search.getByRole("button", { name: "Edit layer search" }).click();
    await page.getByLabel("Salt").fill("s2");
    await page.getByRole("button", { name: "Save layer" }).click();
    await search.locator("dl", { hasText: "s2" }).waitFor();
    assert.equal((await api(o, "GET", `${LAYERS}/search`)).json.layer.salt, "s2");

    // With an environment that needs approvals, a new salt needs glass.
    await api(o, "PUT", "/orgs/acme/projects/web/environments/production/policy", { requiredApprovals: 1 });
    await search.getByRole("button", { name: "Edit layer search" }).click();
    await page.getByLabel("Salt").fill("s3");
    await page.getByRole("button", { name: "Save layer" }).click();
    await page.getByLabel(/^Reason to do it now/).fill("collides with the pricing test");
    await audit(page, "a layer edit refused until glass is broken");
    await page.getByRole("button", { name: "Save layer" }).click();
    await search.locator("dl", { hasText: "s3" }).waitFor();
    assert.equal((await api(o, "GET", `${LAYERS}/search`)).json.layer.salt, "s3");
    await api(o, "PUT", "/orgs/acme/projects/web/environments/production/policy", { requiredApprovals: 0 });

    // A flag's Settings: give one-click a slot of checkout.
    await page.goto(`${o}${WEB}/flags/one-click`);
    await page.getByRole("tab", { name: "Settings" }).click();
    const layerSelect = page.getByRole("combobox", { name: /^Layer/ });
    await layerSelect.locator("option", { hasText: "search" }).waitFor({ state: "attached" });
    await layerSelect.selectOption("checkout");
    // Prefilled with the layer's free stretch.
    const start = page.getByLabel("Slot start (%)");
    const end = page.getByLabel("Slot end (%)");
    assert.equal(await start.inputValue(), "50");
    assert.equal(await end.inputValue(), "100");
    const bar = page.locator(".bucketing .layer-bar").getByRole("img");
    assert.equal(await bar.getAttribute("aria-label"), "Layer checkout: new-checkout 0–50 %; one-click (this flag): 50–100 %");

    // An overlap is warned about before saving, and the origin refuses it.
    await start.fill("40");
    const warning = page.locator("#set-layer-overlap");
    await warning.waitFor();
    assert.match(await warning.textContent(), /40–100 % overlaps new-checkout \(0–50 %\) in checkout/);
    assert.match(await bar.getAttribute("aria-label"), /one-click \(this flag\): 40–100 %, overlapping new-checkout$/);
    await audit(page, "a flag's Settings with a layer slot and an overlap");
    await page.getByRole("button", { name: "Save definition" }).click();
    await page.locator("#set-layer-problems", { hasText: 'range overlaps flag "new-checkout" in layer "checkout"' }).waitFor();
    assert.equal((await api(o, "GET", `${WEB}/flags/one-click`)).json.layer, null);

    // A bad range: its problem next to the field, and nothing sent.
    await start.fill("50");
    await end.fill("120");
    await page.locator("#set-layer-end-problems", { hasText: "must be from 0 to 100" }).waitFor();
    assert.equal(await end.getAttribute("aria-invalid"), "true");
    await end.fill("49.9");
    await page.locator("#set-layer-end-problems", { hasText: "must be greater than the start" }).waitFor();
    await start.fill("0.0005");
    await page.locator("#set-layer-start-problems", { hasText: "at most three decimals" }).waitFor();
    await page.getByRole("button", { name: "Save definition" }).click();
    await page.locator(".settings .field-problems", { hasText: "layer slot start: at most three decimals" }).waitFor();

    // A good slot, a salt and a bucketBy: saved with the rest of the definition.
    await start.fill("50");
    await end.fill("100");
    assert.equal(await warning.count(), 0);
    await page.getByLabel("Bucketing salt").fill("one-click-v2");
    await page.getByText("A new salt reshuffles every user").waitFor();
    await page.getByLabel("Bucket by").fill("account.id");
    await page.getByRole("button", { name: "Save definition" }).click();
    let saved;
    await until("the slot saved", async () => {
      saved = (await api(o, "GET", `${WEB}/flags/one-click`)).json;
      return saved.layer !== null;
    });
    assert.deepEqual(saved.layer, { key: "checkout", start: 50, end: 100 });
    assert.equal(saved.salt, "one-click-v2");
    assert.equal(saved.bucketBy, "account.id");
    assert.deepEqual(saved.variants, { on: true, off: false });
    assert.equal(saved.offVariant, "off");
    // The page reloaded the definition: the fields show what is stored.
    await until("the page reloaded", async () => (await page.getByLabel("Bucketing salt").inputValue()) === "one-click-v2" && (await page.locator("#set-layer-overlap").count()) === 0);
    await audit(page, "a flag's Settings after saving a slot");

    // The snapshot carries the slot and the layer.
    const { json: snapshot } = await api(o, "GET", `${WEB}/environments/production/snapshot`);
    const inSnapshot = snapshot.flags.find((f) => f.key === "one-click");
    assert.deepEqual(inSnapshot.layer, { key: "checkout", start: 50, end: 100 });
    assert.equal(inSnapshot.salt, "one-click-v2");
    assert.deepEqual(snapshot.layers.find((l) => l.key === "checkout"), { key: "checkout", salt: "checkout-2026" });

    // Back on the Layers page: both flags on checkout's bar, no free space.
    await page.getByRole("link", { name: "mutual-exclusion layer" }).click();
    await checkout.waitFor();
    assert.equal(await checkout.getByRole("img").getAttribute("aria-label"), "Layer checkout: new-checkout 0–50 %; one-click 50–100 %");
    assert.deepEqual(await checkout.locator("tbody th").allTextContents(), ["new-checkout", "one-click"]);
    assert.match(await checkout.locator("p.free").textContent(), /none — the layer is full/);
    assert.match(await checkout.locator(".layer-head").textContent(), /2 flags, 100 % used/);
    await audit(page, "the Layers page");
    await screenshot(page, "layers");

    // Deleting a layer flags still use: confirmed, then the origin's 422 in the dialog.
    await checkout.getByRole("button", { name: "Delete layer checkout" }).click();
    const dialog = page.getByRole("dialog", { name: "Delete layer checkout?" });
    assert.match(await dialog.textContent(), /2 flags hold a slot in checkout \(new-checkout, one-click\)/);
    await audit(page, "the layer deletion dialog");
    await dialog.getByRole("button", { name: "Delete the layer" }).click();
    await dialog.locator(".note.error", { hasText: 'unknown layer "checkout"' }).waitFor();
    await dialog.getByRole("button", { name: "Cancel" }).click();
    await api(o, "GET", `${LAYERS}/checkout`);
    // An unused layer goes.
    await search.getByRole("button", { name: "Delete layer search" }).click();
    await page.getByRole("dialog", { name: "Delete layer search?" }).getByRole("button", { name: "Delete the layer" }).click();
    await page.getByRole("status").getByText("Deleted layer search.").waitFor();
    await search.waitFor({ state: "detached" });
    assert.deepEqual((await api(o, "GET", LAYERS)).json.items.map((l) => l.layer.key), ["checkout"]);

    // A flag's link opens its Settings, where the slot is.
    await checkout.getByRole("link", { name: "one-click" }).click();
    await page.getByRole("tab", { name: "Settings", selected: true }).waitFor();
    await page.getByLabel("Bucketing salt").waitFor();
    await page.goBack();

    // A phone's width: the Layers page and the flag's Settings fit.
    await page.setViewportSize({ width: 390, height: 844 });
    await checkout.getByRole("img").waitFor();
    assert.equal(await overflows(page), false, "the Layers page scrolls sideways at 390 px");
    await page.goto(`${o}${WEB}/flags/one-click`);
    await page.getByRole("tab", { name: "Settings" }).click();
    await page.locator(".bucketing .layer-bar").waitFor();
    assert.equal(await overflows(page), false, "the flag's Settings scroll sideways at 390 px");

    noPageErrors(page);
  } finally {
    await b.close();
    await stack.stop();
  }
});
