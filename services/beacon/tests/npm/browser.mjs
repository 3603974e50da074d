// What the headless-Chromium checks share: failing loudly, and the browser they drive.
import puppeteer from "puppeteer-core";

export function fail(message) {
  console.error(`FAIL: ${message}`);
  process.exit(1);
}

// Chromium at `executablePath`, headless, as the test machines can run it (root, no GPU).
export function launch(executablePath) {
  return puppeteer.launch({
    executablePath,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  });
}
