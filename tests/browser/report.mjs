// What every browser script shares: Debian's headless Chromium launched, a page whose tab holds an
// API key (the page's files served from disk with FACEREC_WEB_DIR=crates/server/web, to work on
// the page without rebuilding the binary), and the end: on a failure, the error and a screenshot
// of the page it was on; then the browser closed, one JSON line with what was seen, and the exit
// status.
import { chromium } from "playwright-core";
import { readFileSync } from "node:fs";
import { join } from "node:path";

export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    // playwright-core gives every launch a fresh, temporary --user-data-dir.
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"],
  });
}

/// A fresh browser context whose tab holds `key` where "Use key" puts it (sessionStorage); its
/// page's errors go to `onPageError` as well as to stderr.
export async function pageWithKey(browser, key, onPageError = () => {}) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  await context.addInitScript((k) => {
    if (!sessionStorage.getItem("facerec.apiKey")) sessionStorage.setItem("facerec.apiKey", k);
  }, key);
  const webDir = process.env.FACEREC_WEB_DIR;
  if (webDir) {
    const types = { "index.html": "text/html", "app.js": "text/javascript", "style.css": "text/css" };
    await context.route(/\/(app\.js|style\.css)?(\?.*)?$/, (route) => {
      const path = new URL(route.request().url()).pathname.slice(1) || "index.html";
      route.fulfill({ status: 200, contentType: `${types[path]}; charset=utf-8`, body: readFileSync(join(webDir, path)) });
    });
  }
  const page = await context.newPage();
  page.on("console", (m) => console.error(`[page] ${m.text()}`));
  page.on("pageerror", (e) => {
    console.error(`[page error] ${e}`);
    onPageError(e);
  });
  return page;
}

export async function report(browser, result, error, shots) {
  if (error) {
    result.error = String(error);
    try {
      const pages = browser.contexts().flatMap((c) => c.pages());
      if (pages.length) await pages[0].screenshot({ path: `${shots}/failure.png`, fullPage: true });
    } catch {}
  }
  await browser.close();
  console.log(JSON.stringify(result));
  process.exit(error ? 1 : 0);
}
