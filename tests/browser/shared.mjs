// Drives headless Chromium (Debian's) against a running facerec server shared by collections:
//   node shared.mjs <base-url> <collection-a> <collection-b> <screenshot-dir>
// with FACEREC_TEST_OPERATOR_KEY (an operator key) and FACEREC_TEST_BOUND_KEY (a key bound to
// <collection-a>) in the environment.
// 1. with the operator key: the collection picker lists the collections; picking <collection-b>
//    lists its persons (faces, consent expiry); the settings view saves a target FPIR and a
//    retention, then shows the API's refusal of a bad target FPIR in its own status line only;
//    picking <collection-a> lists its persons; a reload keeps the choice;
// 2. with the bound key: no picker, no settings, the key's collection's persons.
// Prints one JSON line with what it saw; exits non-zero on failure.
// FACEREC_WEB_DIR=crates/server/web serves the page's files from disk instead of the server's
// (to work on the page without rebuilding the binary).
import { launch, pageWithKey as openPage, report } from "./report.mjs";
import { mkdirSync } from "node:fs";

const [base, nameA, nameB, shots] = process.argv.slice(2);
const operatorKey = process.env.FACEREC_TEST_OPERATOR_KEY;
const boundKey = process.env.FACEREC_TEST_BOUND_KEY;
mkdirSync(shots, { recursive: true });

const browser = await launch();

const pageWithKey = (key) => openPage(browser, key);

/// The persons table as shown: one object per row, by column.
const personRows = (page) =>
  page.$$eval("#person-rows tr", (rows) => rows.map((tr) => {
    const row = {};
    for (const td of tr.querySelectorAll("td[data-col]")) {
      row[td.dataset.col] = td.textContent;
      if (td.title) row[`${td.dataset.col}_title`] = td.title;
    }
    return row;
  }));

/// Every view's status line: its id and what it says.
const statusLines = (page) =>
  page.$$eval(".status", (lines) => Object.fromEntries(lines.map((l) => [l.id, l.textContent])));

async function waitForPersons(page, names) {
  await page.waitForFunction(
    (expected) => {
      const shown = [...document.querySelectorAll("#person-rows td[data-col=name]")].map((td) => td.textContent);
      return JSON.stringify(shown) === JSON.stringify(expected);
    },
    names,
    { timeout: 15000, polling: 100 },
  );
}

const result = {};
try {
  // ---- 1. the operator's key --------------------------------------------------------------------------
  const page = await pageWithKey(operatorKey);
  // Which collection each of the page's API calls named.
  const named = [];
  page.on("request", (request) => {
    const url = new URL(request.url());
    if (url.pathname.startsWith("/v1/")) {
      named.push({ path: url.pathname, collection: request.headers()["x-facerec-collection"] || null });
    }
  });
  await page.goto(`${base}/?tab=persons`);
  await page.waitForSelector("#collection-picker:not([hidden])", { timeout: 15000 });
  result.pickerOptions = await page.$$eval("#collection-select option", (os) => os.map((o) => o.textContent));
  result.initialWhoami = await page.textContent("#whoami");

  await page.selectOption("#collection-select", { label: nameB });
  await page.waitForSelector(`#whoami:has-text('${nameB}')`, { timeout: 15000 });
  result.chosenStored = await page.evaluate(() => sessionStorage.getItem("facerec.collection"));
  result.chosenValue = await page.inputValue("#collection-select");
  await page.waitForSelector("#person-rows tr", { timeout: 15000 });
  await page.waitForTimeout(300);
  result.personsB = await personRows(page);
  result.namedAfterChoosingB = named.filter((r) => r.path === "/v1/persons").slice(-1)[0] || null;
  await page.screenshot({ path: `${shots}/persons-b.png`, fullPage: true });

  // The settings of B: a target FPIR and a retention saved.
  await page.click("#settings-tab");
  await page.waitForSelector(`#settings-name:text-is('${nameB}')`, { timeout: 15000 });
  await page.fill("#settings-form input[name=target_fpir]", "0.05");
  await page.fill("#settings-form input[name=retention_days]", "90");
  await page.click("#settings-form button[type=submit]");
  await page.waitForSelector("#settings-status:has-text('Saved')", { timeout: 15000 });
  result.settingsSaved = await page.textContent("#settings-status");
  result.settingsShown = await page.$$eval("#settings-form input", (is) => Object.fromEntries(is.map((i) => [i.name, i.value])));
  await page.screenshot({ path: `${shots}/settings.png`, fullPage: true });

  // A bad target FPIR: the API's refusal, in the settings view's status line and no other.
  await page.fill("#settings-form input[name=target_fpir]", "2");
  await page.click("#settings-form button[type=submit]");
  await page.waitForSelector("#settings-status.error", { timeout: 15000 });
  result.settingsError = await page.textContent("#settings-status");
  result.statusesAfterError = await statusLines(page);
  result.settingsErrorVisible = await page.isVisible("#settings-status");
  await page.screenshot({ path: `${shots}/settings-error.png`, fullPage: true });
  // Another view does not show it.
  await page.click("nav button[data-tab=persons]");
  result.personsStatusVisibleText = await page.textContent("#persons-status");
  result.settingsErrorVisibleInPersons = await page.isVisible("#settings-status");

  // The accuracy view follows the collection too.
  await page.click("nav button[data-tab=accuracy]");
  await page.waitForFunction(() => document.querySelector("#accuracy-sentence").textContent.length > 0, null, { timeout: 30000 });
  result.accuracyB = {
    sentence: await page.textContent("#accuracy-sentence"),
    rates: await page.textContent("#accuracy-rates"),
    warningShown: await page.isVisible("#accuracy-fnir-warning"),
    status: await page.textContent("#accuracy-status"),
  };
  await page.screenshot({ path: `${shots}/accuracy-b.png`, fullPage: true });

  // Back to A, from the settings view: every view follows.
  await page.click("#settings-tab");
  await page.selectOption("#collection-select", { label: nameA });
  await page.waitForSelector(`#settings-name:text-is('${nameA}')`, { timeout: 15000 });
  result.statusesAfterSwitch = await statusLines(page);
  await page.click("nav button[data-tab=persons]");
  await page.waitForSelector(`#whoami:has-text('${nameA}')`, { timeout: 15000 });
  await page.waitForSelector("#person-rows tr", { timeout: 15000 });
  await page.waitForTimeout(300);
  result.personsA = await personRows(page);
  await page.screenshot({ path: `${shots}/persons-a.png`, fullPage: true });
  // The choice is kept in the tab: a reload still works in A.
  await page.reload();
  await page.waitForSelector("#collection-picker:not([hidden])", { timeout: 15000 });
  await page.waitForSelector("#person-rows tr", { timeout: 15000 });
  await page.waitForTimeout(300);
  result.afterReload = { whoami: await page.textContent("#whoami"), persons: await personRows(page) };
  result.namedCollections = [...new Set(named.map((r) => r.collection))];
  await page.context().close();

  // ---- 2. a key bound to A --------------------------------------------------------------------------
  const bound = await pageWithKey(boundKey);
  await bound.goto(`${base}/?tab=persons`);
  await bound.waitForSelector("#whoami:not(:empty)", { timeout: 15000 });
  await bound.waitForSelector("#person-rows tr", { timeout: 15000 });
  await bound.waitForTimeout(300);
  result.bound = {
    whoami: await bound.textContent("#whoami"),
    pickerShown: await bound.isVisible("#collection-picker"),
    settingsTabShown: await bound.isVisible("#settings-tab"),
    adminTabShown: await bound.isVisible("#admin-tab"),
    persons: await personRows(bound),
    statuses: await statusLines(bound),
  };
  await bound.screenshot({ path: `${shots}/bound-key.png`, fullPage: true });
  await bound.context().close();
  await report(browser, result, null, shots);
} catch (error) {
  await report(browser, result, error, shots);
}
