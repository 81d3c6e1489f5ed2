// Drives headless Chromium (Debian's) through the Review view of a running facerec server:
//   node review.mjs <base-url> <photo-of-the-stranger> <photo-of-another-stranger> <screenshot-dir>
// with FACEREC_TEST_OPERATOR_KEY (an operator key) in the environment. The server's default
// collection captures unknown faces, and the first photo's face was recognized from two sources
// (a cluster of 2 captured faces). Through the page:
// 1. Review: the cluster is listed with its count and its chips (fetched with the key); opened, its
//    captured faces; a search by the photo finds where it was seen; named (consent and a basis):
//    said in the Review view's status line, and the cluster is gone;
// 2. Settings: the collection's capture setting shown, and set to `all`;
// 3. Recognize: the photo is named; the second photo's unknown face is named from its box;
// 4. Review: the photo's recognition is a known capture; "Not this person" marks it rejected; it
//    is back with the strangers (a cluster), which is deleted (confirmed).
// Prints one JSON line with what it saw; exits non-zero on failure. Screenshots of every step go
// to <screenshot-dir>.
// FACEREC_WEB_DIR=crates/server/web serves the page's files from disk instead of the server's
// (to work on the page without rebuilding the binary).
import { launch, pageWithKey as openPage, report } from "./report.mjs";
import { mkdirSync } from "node:fs";

const [base, photo, stranger, shots] = process.argv.slice(2);
const operatorKey = process.env.FACEREC_TEST_OPERATOR_KEY;
mkdirSync(shots, { recursive: true });

const browser = await launch();

const result = { pageErrors: [], dialogs: [] };

/// A page whose tab holds `key`: its errors kept, every confirm() (deleting a cluster) accepted
/// and what it asked kept.
async function pageWithKey(key) {
  const page = await openPage(browser, key, (e) => result.pageErrors.push(String(e)));
  page.on("dialog", (dialog) => {
    result.dialogs.push(dialog.message());
    dialog.accept();
  });
  return page;
}

/// Waits until every chip under `selector` has loaded (or failed): their natural widths.
async function chipWidths(page, selector) {
  await page.waitForFunction(
    (s) => {
      const images = [...document.querySelectorAll(s)];
      return images.length > 0 && images.every((i) => i.classList.contains("missing") || (i.complete && i.naturalWidth > 0));
    },
    selector,
    { timeout: 15000, polling: 100 },
  );
  return page.$$eval(selector, (images) => images.map((i) => i.naturalWidth));
}

/// The clusters listed: id, count, what the card says, and its chips' natural widths.
const clusters = (page) =>
  page.$$eval("#review-clusters .cluster", (cards) => cards.map((c) => ({
    id: c.dataset.clusterId,
    count: Number(c.dataset.count),
    countText: c.querySelector(".cluster-count").textContent,
    meta: c.querySelector(".cluster-meta").textContent,
    chips: [...c.querySelectorAll("img.chip")].map((i) => i.naturalWidth),
  })));

/// The captures table as shown: one object per row, by column.
const captureRows = (page) =>
  page.$$eval("#review-capture-rows tr", (rows) => rows.map((tr) => {
    const row = { id: tr.dataset.captureId, status: tr.dataset.status, hasImage: tr.dataset.hasImage === "true" };
    for (const td of tr.querySelectorAll("td[data-col]")) row[td.dataset.col] = td.textContent;
    row.buttons = [...tr.querySelectorAll("button")].map((b) => b.textContent);
    return row;
  }));

const statusOf = async (page, view) => ({
  text: await page.textContent(`#${view}-status`),
  error: await page.$eval(`#${view}-status`, (el) => el.classList.contains("error")),
});

try {
  const page = await pageWithKey(operatorKey);
  await page.goto(`${base}/?tab=review`);

  // ---- 1. the stranger seen twice: one cluster, its chips ------------------------------------------
  await page.waitForSelector("#review-clusters .cluster", { timeout: 15000 });
  await chipWidths(page, "#review-clusters img.chip");
  result.clusters = await clusters(page);
  result.captureOffShown = await page.isVisible("#review-capture-off");
  result.captureMode = await page.textContent("#review-capture-mode");
  await page.screenshot({ path: `${shots}/1-clusters.png`, fullPage: true });

  await page.click("#review-clusters .cluster button");
  await page.waitForSelector("#review-cluster:not([hidden]) #review-cluster-captures label.pick", { timeout: 15000 });
  result.opened = {
    id: await page.getAttribute("#review-cluster", "data-cluster-id"),
    meta: await page.textContent("#review-cluster-meta"),
    chips: await chipWidths(page, "#review-cluster-captures img.chip"),
    captions: await page.$$eval("#review-cluster-captures label.pick span", (s) => s.map((e) => e.textContent)),
  };
  await page.screenshot({ path: `${shots}/2-cluster-open.png`, fullPage: true });

  // Search back in time with the same photo: when and by which source it was seen.
  await page.setInputFiles("#review-search-form input[name=image]", photo);
  await page.click("#review-search-form button[type=submit]");
  await page.waitForSelector("#review-search-rows tr", { timeout: 30000 });
  result.search = {
    rows: await page.$$eval("#review-search-rows tr", (rows) => rows.map((tr) => {
      const row = {};
      for (const td of tr.querySelectorAll("td[data-col]")) row[td.dataset.col] = td.textContent;
      row.seenAt = tr.querySelector("td[data-col=seen]").title;
      return row;
    })),
    chips: await chipWidths(page, "#review-search-rows img.chip"),
    status: await statusOf(page, "review"),
  };
  await page.screenshot({ path: `${shots}/3-search.png`, fullPage: true });

  // Named, with consent and its basis.
  await page.fill("#review-name-form input[name=name]", "Yao Ming");
  await page.check("#review-name-form input[name=consent]");
  await page.fill("#review-name-form input[name=consent_basis]", "asked in person at the door");
  await page.click("#review-name-form button[type=submit]");
  await page.waitForSelector("#review-status:has-text('Named Yao Ming')", { timeout: 30000 });
  result.named = {
    status: await statusOf(page, "review"),
    clusters: await clusters(page),
    emptyShown: await page.isVisible("#review-clusters-empty"),
    openPanelShown: await page.isVisible("#review-cluster"),
  };
  await page.screenshot({ path: `${shots}/4-named.png`, fullPage: true });

  // ---- 2. the settings: capture every face from now on ---------------------------------------------
  await page.click("#settings-tab");
  await page.waitForSelector("#settings-name:text-is('default')", { timeout: 15000 });
  await page.waitForFunction(() => document.querySelector("#settings-form select[name=capture]").value !== "", null,
    { timeout: 15000, polling: 100 });
  result.captureSettingShown = await page.inputValue("#settings-form select[name=capture]");
  await page.selectOption("#settings-form select[name=capture]", "all");
  await page.click("#settings-form button[type=submit]");
  await page.waitForSelector("#settings-status:has-text('Saved')", { timeout: 15000 });
  result.captureSettingSaved = await page.inputValue("#settings-form select[name=capture]");
  await page.screenshot({ path: `${shots}/5-settings.png`, fullPage: true });

  // ---- 3. recognize: the stranger named is known; another stranger named from their box --------------
  await page.click("nav button[data-tab=recognize]");
  await page.setInputFiles("#recognize-file", photo);
  await page.waitForFunction(
    () => [...document.querySelectorAll("#recognize-list li")].some((li) => li.textContent.includes("Yao Ming")),
    null,
    { timeout: 60000, polling: 200 },
  );
  result.recognized = await page.$$eval("#recognize-list li", (items) => items.map((li) => li.textContent));
  result.recognizeStatus = await statusOf(page, "recognize");
  await page.screenshot({ path: `${shots}/6-recognized.png`, fullPage: true });

  await page.setInputFiles("#recognize-file", stranger);
  await page.waitForSelector("#recognize-list li[data-known=false] button", { timeout: 60000 });
  result.strangerFaces = await page.$$eval("#recognize-list li", (items) => items.map((li) => li.textContent));
  // Clicking the unknown face's box offers the form.
  const box = await page.evaluate(() => {
    const canvas = document.querySelector("#recognize-canvas");
    const rect = canvas.getBoundingClientRect();
    return { left: rect.left, top: rect.top, sx: rect.width / canvas.width, sy: rect.height / canvas.height };
  });
  const bbox = (await page.getAttribute("#recognize-list li[data-known=false]", "data-bbox")).split(",").map(Number);
  await page.mouse.click(box.left + ((bbox[0] + bbox[2]) / 2) * box.sx, box.top + ((bbox[1] + bbox[3]) / 2) * box.sy);
  await page.waitForSelector("#recognize-name-form:not([hidden])", { timeout: 5000 });
  result.nameFormFace = await page.textContent("#recognize-name-face");
  await page.fill("#recognize-name-form input[name=name]", "Stranger One");
  await page.check("#recognize-name-form input[name=consent]");
  await page.fill("#recognize-name-form input[name=consent_basis]", "asked in person");
  await page.click("#recognize-name-form button[type=submit]");
  await page.waitForSelector("#recognize-status:has-text('Registered Stranger One')", { timeout: 30000 });
  result.strangerNamed = {
    status: await statusOf(page, "recognize"),
    list: await page.$$eval("#recognize-list li", (items) => items.map((li) => li.textContent)),
    formShown: await page.isVisible("#recognize-name-form"),
  };
  await page.screenshot({ path: `${shots}/7-stranger-named.png`, fullPage: true });

  // ---- 4. review: not this person ------------------------------------------------------------------
  await page.click("nav button[data-tab=review]");
  // The page's recognition of the photo is captured off the answer's path: reloaded until it shows.
  const known = "#review-capture-rows tr[data-status=known][data-has-image=true]";
  for (let i = 0; i < 60 && !(await page.$(known)); i++) {
    await page.waitForTimeout(500);
    if (!(await page.$(known))) await page.click("#review-reload");
  }
  await page.waitForSelector(known, { timeout: 15000 });
  await chipWidths(page, `${known} img.chip`);
  result.knownCaptures = await captureRows(page);
  const target = result.knownCaptures.find((r) => r.status === "known" && r.hasImage && r.person === "Yao Ming");
  if (!target) throw new Error(`no known capture of Yao Ming with a chip: ${JSON.stringify(result.knownCaptures)}`);
  result.knownChip = await page.$eval(`#review-capture-rows tr[data-capture-id="${target.id}"] img.chip`, (i) => i.naturalWidth);
  await page.screenshot({ path: `${shots}/8-known.png`, fullPage: true });
  await page.click(`#review-capture-rows tr[data-capture-id="${target.id}"] button:text-is('Not this person')`);
  await page.waitForSelector(`#review-capture-rows tr[data-capture-id="${target.id}"][data-status=rejected]`, { timeout: 15000 });
  const row = (await captureRows(page)).find((r) => r.id === target.id);
  result.rejected = { id: target.id, row, status: await statusOf(page, "review") };
  // Shown as rejected in the list of rejected captures too.
  await page.selectOption("#review-capture-status", "rejected");
  await page.waitForFunction(
    (id) => {
      const rows = [...document.querySelectorAll("#review-capture-rows tr")];
      return rows.some((tr) => tr.dataset.captureId === id) && rows.every((tr) => tr.dataset.status === "rejected");
    },
    target.id,
    { timeout: 15000, polling: 100 },
  );
  result.rejectedListed = (await captureRows(page)).map((r) => ({ id: r.id, status: r.status, person: r.person }));
  await page.screenshot({ path: `${shots}/9-rejected.png`, fullPage: true });

  // Back with the strangers: its cluster, deleted (confirmed).
  for (let i = 0; i < 20 && !(await page.$("#review-clusters .cluster")); i++) {
    await page.click("#review-reload");
    await page.waitForTimeout(500);
  }
  await page.waitForSelector("#review-clusters .cluster", { timeout: 15000 });
  result.rejectedCluster = await clusters(page);
  await page.click("#review-clusters .cluster button");
  await page.waitForSelector("#review-cluster:not([hidden])", { timeout: 15000 });
  await page.click("#review-cluster-delete");
  await page.waitForSelector("#review-status:has-text('Deleted the cluster')", { timeout: 15000 });
  result.deleted = {
    status: await statusOf(page, "review"),
    clusters: await clusters(page),
    emptyShown: await page.isVisible("#review-clusters-empty"),
  };
  await page.screenshot({ path: `${shots}/10-deleted.png`, fullPage: true });
  await page.context().close();
  await report(browser, result, null, shots);
} catch (error) {
  await report(browser, result, error, shots);
}
