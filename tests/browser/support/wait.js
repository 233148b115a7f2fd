// Polling with a deadline (never a fixed sleep to synchronise), and where artifacts go.

import { mkdirSync } from "node:fs";
import { join } from "node:path";

/** Screenshots and logs: CHAT_BROWSER_ARTIFACTS, else browser-artifacts in the target dir. */
export function artifactsDir() {
  const target = process.env.CARGO_TARGET_DIR || new URL("../../../target", import.meta.url).pathname;
  const dir = process.env.CHAT_BROWSER_ARTIFACTS || join(target, "browser-artifacts");
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** Calls `probe` until it returns a truthy value (returned) or throws past the deadline. */
export async function eventually(probe, { timeout = 10000, interval = 50, message = "condition" } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      const value = await probe();
      if (value) return value;
      last = undefined;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeout} ms waiting for ${message}${last ? `: ${last.message}` : ""}`);
    }
    await new Promise((resolve) => setTimeout(resolve, interval));
  }
}
