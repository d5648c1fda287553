// Drives a real headless Chromium (Debian's) against the mirrorcast page during a replication
// run. Exits non-zero, saying what it did not see, when the page does not show what it should.
//   node check-page.mjs overview URL SCREENSHOT REGION TOPIC   regions, flows, changing numbers,
//                                                              graphs, events
//   node check-page.mjs error URL SCREENSHOT FLOW              the last error of a flow
// With MIRRORCAST_TOKEN set, the page's request for the token is answered with it, and how many
// times it asked is printed.
import { chromium } from "playwright-core";

const [mode, url, screenshot, ...rest] = process.argv.slice(2);
const executablePath = process.env.CHROMIUM ?? "/usr/bin/chromium";
const browser = await chromium.launch({
  executablePath,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  let asked = 0;
  page.on("dialog", dialog => { asked += 1; dialog.accept(process.env.MIRRORCAST_TOKEN ?? ""); });
  process.on("exit", () => { if (process.env.MIRRORCAST_TOKEN) console.log(`asked for the token ${asked} time(s)`); });
  await page.goto(url);
  if (mode === "error") {
    const [flow] = rest;
    const selector = `.flow[data-flow="${flow}"] .error`;
    await page.waitForSelector(selector, { timeout: 60000 });
    const state = `.flow[data-flow="${flow}"] .state`;
    await page.waitForFunction(sel => document.querySelector(sel)?.textContent === "degraded", state, { timeout: 60000 });
    console.log(`error shown for ${flow} (state ${await page.textContent(state)}): ${await page.textContent(selector)}`);
    await page.screenshot({ path: screenshot, fullPage: true });
    process.exit(0);
  }
  const [region, topic] = rest;
  // Three regions and the flows.
  await page.waitForFunction(() => document.querySelectorAll(".region").length === 3, null, { timeout: 30000 });
  await page.waitForFunction(() => document.querySelectorAll(".flow").length >= 1, null, { timeout: 30000 });
  const regions = await page.$$eval(".region", nodes => nodes.map(n => n.dataset.region));
  const flows = await page.$$eval(".flow", nodes => nodes.map(n => n.dataset.flow));
  console.log(`regions: ${regions.join(", ")}; flows: ${flows.join(", ")}`);
  // The numbers change while records flow.
  const numbers = () => page.$$eval(".flow .lag, .flow .throughput", nodes => nodes.map(n => n.textContent).join(" | "));
  const first = await numbers();
  await page.waitForFunction(before => {
    const now = [...document.querySelectorAll(".flow .lag, .flow .throughput")].map(n => n.textContent).join(" | ");
    return now !== before;
  }, first, { timeout: 30000 });
  console.log(`numbers changed: "${first}" -> "${await numbers()}"`);
  // The graphs: every chart has a line of several points per flow.
  const linesPerChart = () => page.$$eval("#graphs .graph", nodes => nodes.map(n =>
    [n.dataset.graph, [...n.querySelectorAll("polyline")].filter(l => l.getAttribute("points").trim().split(/\s+/).length >= 3).length]));
  await page.waitForFunction(count => {
    const charts = [...document.querySelectorAll("#graphs .graph")];
    return charts.length === 3 && charts.every(c =>
      [...c.querySelectorAll("polyline")].filter(l => l.getAttribute("points").trim().split(/\s+/).length >= 3).length >= count);
  }, flows.length, { timeout: 60000 });
  console.log(`graphs: ${(await linesPerChart()).map(([g, n]) => `${g} ${n} line(s)`).join(", ")}`);
  // A topic's latest events.
  await page.click(`.region[data-region="${region}"] a.topic:text-is("${topic}")`);
  await page.waitForSelector("#events .event pre", { timeout: 30000 });
  const events = await page.$$eval("#events .event", nodes => nodes.length);
  console.log(`latest events of ${topic} in ${region}: ${events}`);
  await page.screenshot({ path: screenshot, fullPage: true });
} finally {
  await browser.close();
}
