// The security dashboard in a real browser (Debian's Chromium, driven by playwright-core):
// sign in with the admin token, see the node, a peer network, a job and the live feed, watch a bad-token request
// appear as an event, and check the page loads nothing from outside the gateway.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, mkdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";
import https from "node:https";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const bin = process.env.RAMPART_BIN || join(here, "..", "..", "target", "debug", "rampart");
const browserPath = process.env.CHROMIUM || "/usr/bin/chromium";

function start(home, args, ready) {
  const child = spawn(bin, ["--home", home, ...args], { stdio: ["ignore", "pipe", "ignore"] });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { child.kill("SIGKILL"); reject(new Error(`${args[0]} not ready`)); }, 30000);
    createInterface({ input: child.stdout }).on("line", (line) => {
      if (line.startsWith(ready)) { clearTimeout(timer); resolve({ child, line }); }
    });
    child.on("exit", (code) => reject(new Error(`${args[0]} exited ${code}`)));
  });
}

function get(url, token) {
  return new Promise((resolve, reject) => {
    const req = https.get(url, { rejectUnauthorized: false, headers: { Authorization: `Bearer ${token}` } }, (res) => {
      res.resume(); res.on("end", () => resolve(res.statusCode));
    });
    req.on("error", reject);
  });
}

test("the dashboard signs in, shows the node, a job and a bad-token event live, and loads nothing external", async () => {
  const home = join(mkdtempSync(join(tmpdir(), "rampart-ui-")), "home");
  execFileSync(bin, ["--home", home, "init"], { stdio: "ignore" });
  const token = readFileSync(join(home, "admin.token"), "utf8").trim();
  // A peer network that is not running (nothing listens at its URL): shown down, with our export.
  const west = join(dirname(home), "west");
  execFileSync(bin, ["--home", west, "init", "--domain", "west"], { stdio: "ignore" });
  execFileSync(bin, ["--home", west, "pki", "bundle", "--out", join(dirname(home), "west.pem")], { stdio: "ignore" });
  execFileSync(bin, ["--home", home, "network", "add", "west", "--url", "https://127.0.0.1:1", "--bundle",
    join(dirname(home), "west.pem")], { stdio: "ignore" });
  execFileSync(bin, ["--home", home, "network", "export", "hello", "--to", "west"], { stdio: "ignore" });
  const gateway = await start(home, ["gateway", "--listen", "127.0.0.1:0"], "rampart gateway listening on ");
  const url = gateway.line.split(" ")[4];
  const node = await start(home, ["node", "--name", "n1", "--listen", "127.0.0.1:0", "--gateway", url,
    "--service", "hello", "--service", "jobs"], "rampart node ");
  const browser = await chromium.launch({
    executablePath: browserPath,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync"],
  });
  try {
    // The gateway's certificate comes from the network's own CA, which this throwaway
    // browser profile does not trust; TLS to it is tested elsewhere.
    const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1400, height: 900 } });
    const page = await context.newPage();
    const outside = [];
    page.on("request", (r) => { if (!r.url().startsWith(url)) outside.push(r.url()); });

    await page.goto(`${url}/_rampart/ui`);
    await page.fill("#token", token);
    await page.click("button[type=submit]");
    await page.waitForSelector("#nodes td:has-text('n1')", { timeout: 15000 });
    await page.waitForSelector("#peers tr:has-text('west')", { timeout: 15000 });
    const peer = await page.textContent("#peers tr:has-text('west')");
    assert.match(peer, /down/);
    assert.match(peer, /never/);
    assert.match(peer, /hello/);
    assert.equal(await page.evaluate(() => window.location.href.includes("rpt_")), false, "token in the URL");
    assert.equal(await page.evaluate(() => document.cookie), "", "token in a cookie");
    await page.waitForFunction(() => document.querySelector("#status").textContent === "live", null, { timeout: 15000 });

    // A request with a bad token, from outside the browser: its event must appear on the page.
    assert.equal(await get(`${url}/hello`, "rpt_not-a-token"), 401);
    await page.waitForSelector("#feed tr[data-kind='token_malformed']", { timeout: 15000 });
    const row = await page.textContent("#feed tr[data-kind='token_malformed']");
    assert.match(row, /malformed token/);

    // A job, submitted and finished through the CLI: shown done with its progress.
    const bytes = join(dirname(home), "bytes.bin");
    writeFileSync(bytes, "histogram me");
    execFileSync(bin, ["--home", home, "job", "submit", bytes, "--wait"], { stdio: "ignore" });
    await page.waitForSelector("#jobs tr:has-text('done')", { timeout: 15000 });
    const job = await page.textContent("#jobs tr:has-text('done')");
    assert.match(job, /1\/1/);
    assert.match(job, /n1/);

    // Without the token the API refuses the page's calls.
    const anonymous = await page.evaluate(async () => (await fetch("/_rampart/status")).status);
    assert.equal(anonymous, 401);

    mkdirSync(join(here, "output"), { recursive: true });
    await page.screenshot({ path: join(here, "output", "dashboard.png"), fullPage: true });
    assert.deepEqual(outside, [], "the page loaded resources from outside the gateway");
  } finally {
    await browser.close();
    node.child.kill("SIGKILL");
    gateway.child.kill("SIGKILL");
  }
});
