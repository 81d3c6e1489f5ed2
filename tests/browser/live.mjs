// Drives headless Chromium (Debian's) against a running facerec server:
//   node live.mjs <base-url> <fake-camera.y4m> <photo-to-register> <expected-live-name> <screenshot-dir>
// 1. registers a person through the page and waits for them in the list;
// 2. opens the live view with a fake camera playing the .y4m and waits for the expected name.
// Prints one JSON line with what it saw; exits non-zero on failure.
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";

const [base, y4m, photo, expectedName, shots] = process.argv.slice(2);
mkdirSync(shots, { recursive: true });
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--no-first-run", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
    `--use-file-for-fake-video-capture=${y4m}`,
  ],
});
const result = { registered: false, listed: false, liveName: null };
let failed = false;
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  await context.grantPermissions(["camera"], { origin: base });
  // The API key goes where the page keeps it after "Use key": this tab's sessionStorage.
  if (process.env.FACEREC_TEST_API_KEY) {
    await context.addInitScript((key) => sessionStorage.setItem("facerec.apiKey", key), process.env.FACEREC_TEST_API_KEY);
  }
  const page = await context.newPage();
  page.on("console", (m) => console.error(`[page] ${m.text()}`));

  // Register through the page.
  await page.goto(`${base}/?tab=persons`);
  await page.fill("#register-form input[name=name]", "Page Registered");
  await page.setInputFiles("#register-form input[name=image]", photo);
  await page.check("#register-form input[name=consent]");
  await page.click("#register-form button[type=submit]");
  await page.waitForSelector("#status:has-text('Registered Page Registered')", { timeout: 30000 });
  result.registered = true;
  await page.waitForSelector("#person-rows td:text-is('Page Registered')", { timeout: 10000 });
  result.listed = true;
  await page.screenshot({ path: `${shots}/persons.png`, fullPage: true });

  // Live view with the fake camera.
  await page.goto(`${base}/?autostart=live`);
  await page.waitForFunction(
    (name) => document.querySelector("#live-names")?.textContent.includes(name),
    expectedName,
    { timeout: 60000, polling: 200 },
  );
  result.liveName = await page.textContent("#live-names");
  result.stats = await page.textContent("#live-stats");
  await page.waitForTimeout(500);
  await page.screenshot({ path: `${shots}/live.png`, fullPage: true });
} catch (error) {
  failed = true;
  result.error = String(error);
  try {
    const pages = browser.contexts().flatMap((c) => c.pages());
    if (pages.length) await pages[0].screenshot({ path: `${shots}/failure.png`, fullPage: true });
  } catch {}
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
process.exit(failed ? 1 : 0);
