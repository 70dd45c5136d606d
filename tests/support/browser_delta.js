// Drives Debian's chromium through playwright-core for tests/browser.rs (delta deploys,
// RFC 9842): opens PAGE_URL, reports the bundle's response as a JSON line (phase "v1"), then
// for each line "reload N" on stdin (the test has published version N) reloads, waits until
// the page runs version N, and reports again (phase "vN"); stdin closed ends it.
// playwright-core's path is in PLAYWRIGHT_CORE (see .ci/chromium).
"use strict";
const { chromium } = require(process.env.PLAYWRIGHT_CORE);
const readline = require("readline");

async function main() {
  const [pageUrl] = process.argv.slice(2);
  const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();
  const browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    // As root (CI), chromium's sandbox cannot start.
    args: ["--no-sandbox"],
  });
  try {
    const page = await (await browser.newContext()).newPage();
    let bundle = null;
    page.on("response", (r) => {
      if (new URL(r.url()).pathname.startsWith("/static/js/bundle.")) bundle = r;
    });
    const report = async (phase) => {
      const headers = await bundle.allHeaders();
      const sent = await bundle.request().allHeaders();
      const sizes = await bundle.request().sizes();
      console.log(JSON.stringify({
        phase,
        url: bundle.url(),
        status: bundle.status(),
        contentEncoding: headers["content-encoding"] || null,
        useAsDictionary: headers["use-as-dictionary"] || null,
        bodyBytes: sizes.responseBodySize,
        availableDictionary: sent["available-dictionary"] || null,
        acceptEncoding: sent["accept-encoding"] || null,
        title: await page.title(),
      }));
    };
    const runs = async (version) => {
      await page.waitForFunction((v) => document.title === v, version, { timeout: 60000 });
      await report(version);
    };
    await page.goto(pageUrl);
    await runs("v1");
    for (;;) {
      const { value, done } = await lines.next();
      if (done) break;
      const m = /^reload (\d+)$/.exec(value.trim());
      if (!m) throw new Error(`unexpected line ${JSON.stringify(value)}`);
      bundle = null;
      await page.reload();
      await runs(`v${m[1]}`);
    }
  } finally {
    await browser.close();
  }
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
