// The end every browser script shares: on a failure, the error and a screenshot of the page it
// was on; then the browser closed, one JSON line with what was seen, and the exit status.
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
