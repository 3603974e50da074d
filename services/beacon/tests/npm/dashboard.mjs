// The dashboard in headless Chromium: sign in, check the numbers shown equal the API's, apply a
// filter by clicking a row, switch imported data on and off, and save a screenshot. Run by the `browser` integration tests with
// BEACON_URL, BEACON_EMAIL, BEACON_PASSWORD, BEACON_SITE, BEACON_KEY, CHROMIUM and SCREENSHOT set.
import { fail, launch } from "./browser.mjs";

const { BEACON_URL, BEACON_EMAIL, BEACON_PASSWORD, BEACON_SITE, BEACON_KEY, CHROMIUM, SCREENSHOT, PERIOD, IMPORTED_VISITORS } = process.env;
const period = PERIOD || "30d";

async function api(path) {
  const response = await fetch(`${BEACON_URL}${path}`, { headers: { authorization: `Bearer ${BEACON_KEY}` } });
  if (!response.ok) fail(`${path}: ${response.status} ${await response.text()}`);
  return response.json();
}

const browser = await launch(CHROMIUM);
try {
  const page = await browser.newPage();
  await page.setViewport({ width: 1200, height: 1100 });
  page.on("pageerror", (e) => fail(`page error: ${e.message}`));

  // Signed out, the dashboard sends us to the sign-in form.
  await page.goto(`${BEACON_URL}/`, { waitUntil: "networkidle0" });
  if (!page.url().endsWith("/login")) fail(`not redirected to /login: ${page.url()}`);

  // A wrong password is refused.
  await page.type("#email", BEACON_EMAIL);
  await page.type("#password", "not the password");
  await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
  if (!(await page.$eval("#failed", (e) => !e.hidden))) fail("a wrong password was not refused");

  await page.type("#email", BEACON_EMAIL);
  await page.type("#password", BEACON_PASSWORD);
  await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
  const cookies = await page.cookies();
  const session = cookies.find((c) => c.name === "beacon_session");
  if (!session || !session.httpOnly || session.sameSite !== "Strict") fail(`session cookie: ${JSON.stringify(session)}`);

  await page.goto(`${BEACON_URL}/#site=${BEACON_SITE}&period=${period}`, { waitUntil: "networkidle0" });
  await page.waitForFunction(
    (p) => document.getElementById("period").value === p && document.body.dataset.loading === "false" && document.querySelector('[data-metric="visitors"]'),
    {}, period).catch(async (e) => {
    const state = await page.evaluate(() => ({
      period: document.getElementById("period").value,
      loading: document.body.dataset.loading,
      error: document.getElementById("error").hidden ? null : document.getElementById("error").textContent,
      url: location.href,
    }));
    fail(`the dashboard did not finish loading: ${JSON.stringify(state)} (${e.message})`);
  });

  const shown = async () => page.$$eval("[data-metric]", (els) => Object.fromEntries(els.map((e) => [e.dataset.metric, e.dataset.value ?? e.textContent])));
  const numbers = await shown();
  const aggregate = await api(`/api/v1/stats/aggregate?site_id=${BEACON_SITE}&period=${period}&metrics=visitors,visits,pageviews,bounce_rate,visit_duration,views_per_visit`);
  for (const [metric, { value }] of Object.entries(aggregate.results)) {
    if (String(numbers[metric]) !== String(value)) fail(`${metric}: dashboard shows ${numbers[metric]}, API says ${value}`);
  }
  if (Number(aggregate.results.visitors.value) === 0) fail("no visitors: the test has no data");

  const series = await api(`/api/v1/stats/timeseries?site_id=${BEACON_SITE}&period=${period}&metrics=visitors,pageviews`);
  const plotted = await page.$eval('svg polyline[data-series="visitors"]', (l) => l.getAttribute("points").trim().split(" ").length);
  if (plotted !== series.results.length) fail(`the graph plots ${plotted} points, the series has ${series.results.length}`);
  const drawn = await page.$eval('svg polyline[data-series="visitors"]', (l) => l.getBBox().width);
  if (!(drawn > 100)) fail(`the graph's line is not drawn (width ${drawn})`);
  // Axes: dates along the bottom, values up the side (the top one at least the highest point).
  const times = await page.$$eval('#chart text[data-axis="time"]', (t) => t.map((e) => e.textContent));
  if (times.length < 3 || !times.every((t) => /^[A-Z][a-z]{2} \d{1,2}$/.test(t))) fail(`the time axis: ${times}`);
  const values = await page.$$eval('#chart text[data-axis="value"]', (t) => t.map((e) => Number(e.textContent.replace(/,/g, ""))));
  const highest = Math.max(...series.results.map((p) => Math.max(p.visitors, p.pageviews)));
  if (values.length !== 3 || Math.max(...values) < highest) fail(`the value axis ${values} does not reach ${highest}`);

  const pagesShown = await page.$$eval('[data-panel="event:page"] .row', (rows) => rows.map((r) => [r.dataset.value, Number(r.dataset.visitors)]));
  const pages = await api(`/api/v1/stats/breakdown?site_id=${BEACON_SITE}&period=${period}&property=event:page&limit=10`);
  if (JSON.stringify(pagesShown) !== JSON.stringify(pages.results.map((r) => [r.page, r.visitors]))) {
    fail(`top pages: dashboard ${JSON.stringify(pagesShown)}, API ${JSON.stringify(pages.results)}`);
  }

  // The goals panel: the configured goals with the API's visitors and conversion rates.
  const goalsShown = await page.$$eval('[data-panel="event:goal"] .row', (rows) => rows.map((r) => [r.dataset.value, Number(r.dataset.visitors), Number(r.dataset.conversionRate)]));
  const goals = await api(`/api/v1/stats/breakdown?site_id=${BEACON_SITE}&period=${period}&property=event:goal&metrics=visitors,conversion_rate&limit=10`);
  if (goals.results.length === 0) fail("no goal conversions: the test has no goal data");
  if (JSON.stringify(goalsShown) !== JSON.stringify(goals.results.map((r) => [r.goal, r.visitors, r.conversion_rate]))) {
    fail(`goals: dashboard ${JSON.stringify(goalsShown)}, API ${JSON.stringify(goals.results)}`);
  }

  // Click the top source: the numbers become those of the filter.
  const source = await page.$eval('[data-panel="visit:source"] .row', (r) => r.dataset.value);
  await page.click('[data-panel="visit:source"] .row');
  await page.waitForFunction(() => !document.getElementById("filter").hidden && document.body.dataset.loading === "false");
  await page.waitForFunction((v) => document.getElementById("filter-label").textContent.includes(v), {}, source);
  const filtered = await shown();
  const expected = await api(`/api/v1/stats/aggregate?site_id=${BEACON_SITE}&period=${period}&metrics=visitors,visits&filters=${encodeURIComponent(`visit:source==${source}`)}`);
  for (const metric of ["visitors", "visits"]) {
    if (String(filtered[metric]) !== String(expected.results[metric].value)) fail(`filtered ${metric}: dashboard ${filtered[metric]}, API ${expected.results[metric].value}`);
  }
  if (Number(filtered.visitors) >= Number(numbers.visitors) && Number(numbers.visitors) > 1) fail("the filter did not narrow the numbers");

  // Clear the filter before the screenshot, then look at it on a phone too.
  await page.click("#clear-filter");
  await page.waitForFunction(() => document.getElementById("filter").hidden && document.body.dataset.loading === "false");

  // Imported data is off until asked for; then the numbers are the API's with_imported ones, and
  // a note says what imported visitors are.
  if (!(await page.$eval("#imports-note", (e) => e.hidden))) fail("the imports note shows with imports off");
  await page.click("#with-imported");
  await page.waitForFunction(() => !document.getElementById("imports-note").hidden && document.body.dataset.loading === "false");
  const note = await page.$eval("#imports-note", (e) => e.textContent);
  if (!note.includes("summed")) fail(`imports note: ${note}`);
  const withImported = await shown();
  const importedAggregate = await api(`/api/v1/stats/aggregate?site_id=${BEACON_SITE}&period=${period}&metrics=visitors,visits&with_imported=true`);
  for (const metric of ["visitors", "visits"]) {
    if (String(withImported[metric]) !== String(importedAggregate.results[metric].value)) fail(`with imports, ${metric}: dashboard ${withImported[metric]}, API ${importedAggregate.results[metric].value}`);
  }
  const extra = Number(IMPORTED_VISITORS || 0);
  if (Number(withImported.visitors) !== Number(numbers.visitors) + extra) fail(`with imports, visitors ${withImported.visitors} is not ${numbers.visitors} + ${extra}`);
  await page.click("#with-imported");
  await page.waitForFunction(() => document.getElementById("imports-note").hidden && document.body.dataset.loading === "false");
  await page.screenshot({ path: SCREENSHOT, fullPage: true });
  await page.setViewport({ width: 390, height: 844, isMobile: true });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  if (overflow > 2) fail(`the dashboard is ${overflow}px wider than a phone screen`);
  console.log(`OK visitors=${numbers.visitors} filtered-by=${source} visitors=${filtered.visitors}`);
} finally {
  await browser.close();
}
