// The lag dashboard in headless Chromium, as an operator, while the test stops and restarts the
// aggregator: its lag in time and pending count grow on the charts, fall to zero once it runs,
// and the charts keep the last minutes across a reload (the server keeps the history). Run by
// the `pipeline_browser` integration test with BEACON_URL, BEACON_EMAIL, BEACON_PASSWORD,
// CHROMIUM and SCREENSHOT set; it prints BEHIND when it has seen the lag, and waits for the test
// to start the aggregator.
import { fail, launch } from "./browser.mjs";

const { BEACON_URL, BEACON_EMAIL, BEACON_PASSWORD, CHROMIUM, SCREENSHOT } = process.env;

const browser = await launch(CHROMIUM);
try {
  const page = await browser.newPage();
  await page.setViewport({ width: 1200, height: 1400 });
  page.on("pageerror", (e) => fail(`page error: ${e.message}`));
  await page.goto(`${BEACON_URL}/login`, { waitUntil: "networkidle0" });
  await page.type("#email", BEACON_EMAIL);
  await page.type("#password", BEACON_PASSWORD);
  await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
  // The dashboard shows its Pipeline link once /api/sites says the user is an operator.
  await page.waitForFunction(() => !document.getElementById("pipeline-link").hidden, { timeout: 20_000 })
    .catch(() => fail("an operator's dashboard hides the Pipeline link"));
  await page.goto(`${BEACON_URL}/pipeline`, { waitUntil: "networkidle0" });

  const aggregator = '[data-consumer$="aggregator"]';
  const lagLine = 'svg[data-chart="lag"] polyline[data-series$="aggregator"]';
  const pendingLine = 'svg[data-chart="pending"] polyline[data-series$="aggregator"]';
  // Behind: the card says so, and both charts' last points are above zero.
  await page.waitForFunction((card, lag, pending) => {
    const c = document.querySelector(card);
    const l = document.querySelector(lag);
    const p = document.querySelector(pending);
    return c && l && p && Number(c.dataset.lag) >= 3 && Number(l.dataset.last) >= 3 && Number(p.dataset.last) > 0;
  }, { timeout: 60_000 }, aggregator, lagLine, pendingLine).catch(async () => {
    fail(`the lag never showed: ${await page.$eval("main", (m) => m.innerText.slice(0, 600))}`);
  });
  const axis = await page.$$eval('svg[data-chart="lag"] text', (t) => t.map((e) => e.textContent));
  if (!axis.some((t) => /\d{1,2}:\d{2}/.test(t))) fail(`the lag chart has no time axis: ${axis}`);
  if (!axis.some((t) => / s$| min$/.test(t))) fail(`the lag chart's value axis has no unit: ${axis}`);
  console.log("BEHIND");

  // The test starts the aggregator: the lag and the pending count fall to zero.
  await page.waitForFunction((card, lag, pending) => {
    const c = document.querySelector(card);
    const l = document.querySelector(lag);
    const p = document.querySelector(pending);
    return c && c.dataset.state === "healthy" && Number(c.dataset.lag) === 0 && Number(c.dataset.pending) === 0
      && Number(l.dataset.last) === 0 && Number(p.dataset.last) === 0;
  }, { timeout: 120_000 }, aggregator, lagLine, pendingLine).catch(async () => {
    fail(`the lag never fell: ${await page.$eval("main", (m) => m.innerText.slice(0, 600))}`);
  });
  const before = await page.$eval(lagLine, (l) => Number(l.dataset.points));

  // A reload still shows the last minutes, the peak included.
  await page.reload({ waitUntil: "networkidle0" });
  await page.waitForSelector(lagLine);
  const after = await page.$eval(lagLine, (l) => ({ points: Number(l.dataset.points), peak: Math.max(...l.getAttribute("points").trim().split(" ").map((p) => -Number(p.split(",")[1]))) }));
  if (after.points < before || after.points < 3) fail(`after a reload the lag chart has ${after.points} points (before: ${before})`);
  const flat = await page.$eval(lagLine, (l) => new Set(l.getAttribute("points").trim().split(" ").map((p) => p.split(",")[1])).size);
  if (flat < 2) fail("after a reload the lag chart lost its peak");
  await page.screenshot({ path: SCREENSHOT, fullPage: true });
  console.log(`OK points=${after.points}`);
} finally {
  await browser.close();
}
