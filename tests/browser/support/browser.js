// Headless Chromium (Debian's, driven by playwright-core), pages of the web app, screenshots
// of each step and the axe-core accessibility audit.

import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { artifactsDir, eventually } from "./wait.js";

const require = createRequire(import.meta.url);
const AXE_SOURCE = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");

export const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";

export async function launch() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

let pages = 0;

/** A page that records console errors (a CSP refusal shows there) and uncaught errors. */
export async function newPage(context) {
  const page = await context.newPage();
  page.problems = [];
  page.on("console", (msg) => {
    if (msg.type() === "error" && !/Failed to load resource|WebSocket connection/.test(msg.text())) {
      page.problems.push(`console: ${msg.text()}`);
    }
  });
  page.on("pageerror", (err) => page.problems.push(`page error: ${err.message}`));
  if (process.env.CHAT_BROWSER_FRAMES) {
    // Every WebSocket frame of the page on stdout, for debugging a scenario.
    const tag = `page ${++pages}`;
    page.on("websocket", (ws) => {
      ws.on("framesent", (f) => console.log(`${tag} sent ${f.payload}`));
      ws.on("framereceived", (f) => console.log(`${tag} got  ${f.payload}`));
    });
  }
  return page;
}

let shots = 0;
/** A screenshot of this step, numbered in the order taken. */
export async function shot(page, name) {
  shots += 1;
  const file = join(artifactsDir(), `${String(shots).padStart(2, "0")}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

/** Opens the app and signs in as `user` with a dev token; resolves once connected. */
export async function signIn(context, baseUrl, user) {
  const page = await newPage(context);
  await page.goto(`${baseUrl}/`);
  await page.locator("#dev-user").fill(String(user));
  await page.getByRole("button", { name: "Sign in", exact: true }).click();
  await connected(page);
  return page;
}

export async function connected(page, timeout = 15000) {
  await page.locator('#connection[data-state="open"]').waitFor({ timeout });
}

/** The conversation list's entry for `key` ("u:7", "g:team"). */
export function entry(page, key) {
  return page.locator(`.conversation[data-key="${key}"]`);
}

/** Waits until `locator`'s text satisfies `test` (a string it contains, or a predicate). */
export async function textOf(locator, test, message, timeout = 10000) {
  return eventually(
    async () => {
      const text = (await locator.textContent({ timeout: 500 })) ?? "";
      // Wrapped: an empty text may be the awaited one, and `eventually` waits for truthy.
      return (typeof test === "string" ? text.includes(test) : test(text)) ? { text } : false;
    },
    { timeout, message },
  ).then(({ text }) => text);
}

/** Opens a private chat with `peer` from the "Chat with user id" form. */
export async function openChatWith(page, peer) {
  await page.locator("#new-chat-user").fill(String(peer));
  await page.getByRole("button", { name: "Open", exact: true }).click();
  await page.locator("#chat-title").getByText(`User ${peer}`).waitFor();
}

export async function send(page, text) {
  await page.locator("#composer-input").fill(text);
  await page.locator("#composer-input").press("Enter");
}

/** The message list item holding exactly `text`. */
export function message(page, text) {
  return page.locator(".message").filter({ has: page.locator(".text", { hasText: new RegExp(`^${escape(text)}$`) }) });
}

function escape(text) {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** The axe-core audit of the page as it is: the serious and critical violations. */
export async function audit(page) {
  await page.evaluate(AXE_SOURCE);
  const result = await page.evaluate(async () =>
    // eslint-disable-next-line no-undef
    axe.run(document, { resultTypes: ["violations"] }),
  );
  return result.violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => `${v.id} (${v.impact}): ${v.help} at ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`);
}
