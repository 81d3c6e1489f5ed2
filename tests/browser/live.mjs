// Drives headless Chromium (Debian's) against a running facerec server:
//   node live.mjs <base-url> <fake-camera.y4m> <photo-to-register> <expected-live-name> <screenshot-dir>
// 0. with FACEREC_TEST_ATTACK=1: a page of another origin (served here, on another port) tries to
//    register (a no-cors fetch and a plain HTML form), to read the persons, and to stream a photo;
// 1. registers a person through the server's own page and waits for them in the list;
// 2. opens the live view with a fake camera playing the .y4m and waits for the expected name.
// Prints one JSON line with what it saw; exits non-zero on failure.
import { chromium } from "playwright-core";
import { report } from "./report.mjs";
import { mkdirSync, readFileSync } from "node:fs";
import { createServer } from "node:http";

// What a hostile page could try against a facerec on this machine. Returns what it got.
async function attackFromAnotherOrigin(browser, base, photoPath) {
  const photo = readFileSync(photoPath);
  const html = `<!doctype html><html><body>
    <form id="f" method="POST" enctype="multipart/form-data" target="sink">
      <input type="file" name="image"><input name="name" value="Injected By A Form">
      <input name="consent" value="true"></form>
    <iframe name="sink"></iframe></body></html>`;
  const site = createServer((req, res) => {
    if (req.url === "/photo") {
      res.writeHead(200, { "content-type": "image/png" });
      res.end(photo);
    } else {
      res.writeHead(200, { "content-type": "text/html" });
      res.end(html);
    }
  });
  await new Promise((resolve) => site.listen(0, "127.0.0.1", resolve));
  const origin = `http://127.0.0.1:${site.address().port}`;
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    await page.goto(`${origin}/`);
    const seen = await page.evaluate(async (base) => {
      const out = {};
      const blob = await (await fetch("/photo")).blob();
      const file = () => new File([blob], "p.png", { type: "image/png" });
      const body = new FormData();
      body.append("image", file());
      body.append("name", "Injected By Another Site");
      body.append("consent", "true");
      try {
        await fetch(`${base}/v1/register`, { method: "POST", mode: "no-cors", body });
        out.noCorsSent = true;
      } catch (e) {
        out.noCorsSent = String(e);
      }
      try {
        out.read = await (await fetch(`${base}/v1/persons`)).text();
      } catch (e) {
        out.read = null;
      }
      const form = document.getElementById("f");
      form.action = `${base}/v1/register`;
      const files = new DataTransfer();
      files.items.add(file());
      form.querySelector("input[type=file]").files = files.files;
      form.submit();
      await new Promise((resolve) => setTimeout(resolve, 2000));
      out.ws = await new Promise((resolve) => {
        const events = [];
        const ws = new WebSocket(`${base.replace("http", "ws")}/v1/stream`);
        ws.binaryType = "arraybuffer";
        ws.onopen = () => {
          events.push("open");
          blob.arrayBuffer().then((b) => ws.send(b));
        };
        ws.onmessage = (m) => events.push(`message: ${String(m.data).slice(0, 200)}`);
        ws.onerror = () => events.push("error");
        ws.onclose = () => {
          events.push("close");
          resolve(events);
        };
        setTimeout(() => resolve(events), 5000);
      });
      return out;
    }, base);
    return { origin, ...seen };
  } finally {
    await context.close();
    site.close();
  }
}

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
try {
  if (process.env.FACEREC_TEST_ATTACK === "1") {
    result.attack = await attackFromAnotherOrigin(browser, base, photo);
  }
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  await context.grantPermissions(["camera", "clipboard-read", "clipboard-write"], { origin: base });
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
  await page.waitForSelector("#persons-status:has-text('Registered Page Registered')", { timeout: 30000 });
  result.registered = true;
  await page.waitForSelector("#person-rows td:text-is('Page Registered')", { timeout: 10000 });
  result.listed = true;
  await page.screenshot({ path: `${shots}/persons.png`, fullPage: true });

  // The accuracy view: the calibration drawn, and its sentence.
  await page.goto(`${base}/?tab=accuracy`);
  await page.click("#accuracy-recalibrate");
  await page.waitForSelector("#accuracy-status:has-text('Recalibrated')", { timeout: 30000 });
  result.accuracy = await page.textContent("#accuracy-sentence");
  result.accuracyDrawn = await page.evaluate(() => {
    // Pixels the page drew on each canvas (not blank).
    const inked = (id) => {
      const canvas = document.querySelector(id);
      const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
      let count = 0;
      for (let i = 3; i < data.length; i += 4) if (data[i] > 0) count++;
      return count;
    };
    return { histograms: inked("#accuracy-histograms"), curve: inked("#accuracy-curve") };
  });
  await page.screenshot({ path: `${shots}/accuracy.png`, fullPage: true });

  // The key's collection and scopes, and (an operator key is an admin) collections and keys: create a
  // collection and a key of it, copy the secret shown once, use it, then delete the collection.
  await page.goto(`${base}/?tab=admin`);
  await page.waitForSelector("#whoami:has-text('default')", { timeout: 10000 });
  if (!process.env.FACEREC_TEST_API_KEY) {
    // Without keys the page acts as the local operator, until the first key exists: from then on
    // every request needs one. So the first key made here is an admin key the page then uses.
    await page.selectOption("#key-collection", "default");
    for (const scope of ["recognize", "enroll", "manage", "admin"]) {
      await page.check(`#key-scopes input[value=${scope}]`);
    }
    await page.fill("#key-create-form input[name=label]", "page admin");
    await page.click("#key-create-form button[type=submit]");
    await page.waitForSelector("#new-key-box:not([hidden])", { timeout: 10000 });
    const adminKey = await page.textContent("#new-key");
    result.pageAdminKey = adminKey;
    for (const scope of ["enroll", "manage", "admin"]) {
      await page.uncheck(`#key-scopes input[value=${scope}]`);
    }
    result.keylessAfterFirstKey = await page.evaluate(async () => (await fetch("/v1/persons")).status);
    await page.fill("#api-key", adminKey);
    await page.click("#key-form button[type=submit]");
    await page.waitForSelector("#whoami:has-text('admin')", { timeout: 10000 });
  }
  result.whoami = await page.textContent("#whoami");
  result.adminTabShown = await page.isVisible("#admin-tab");
  await page.fill("#collection-form input[name=name]", "lobby");
  await page.click("#collection-form button[type=submit]");
  await page.waitForSelector("#collection-rows tr[data-collection=lobby]", { timeout: 10000 });
  await page.selectOption("#key-collection", "lobby");
  await page.fill("#key-create-form input[name=label]", "page key");
  await page.click("#key-create-form button[type=submit]");
  await page.waitForSelector("#new-key-box:not([hidden])", { timeout: 10000 });
  await page.waitForSelector("#key-rows td:text-is('page key')", { timeout: 10000 });
  result.newKey = await page.textContent("#new-key");
  await page.click("#new-key-copy");
  await page.waitForSelector("#admin-status:has-text('Copied')", { timeout: 10000 });
  result.copied = await page.evaluate(() => navigator.clipboard.readText());
  result.newKeyMe = await page.evaluate(async (key) => {
    const response = await fetch("/v1/me", { headers: { Authorization: `Bearer ${key}` } });
    return response.json();
  }, result.newKey);
  await page.screenshot({ path: `${shots}/admin.png`, fullPage: true });
  page.once("dialog", (dialog) => dialog.accept());
  await page.click("#collection-rows tr[data-collection=lobby] button");
  await page.waitForSelector("#admin-status:has-text('Deleted lobby')", { timeout: 10000 });
  result.collectionsAfterDelete = await page.$$eval("#collection-rows tr", (rows) => rows.map((r) => r.dataset.collection));

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
  await report(browser, result, null, shots);
} catch (error) {
  await report(browser, result, error, shots);
}
