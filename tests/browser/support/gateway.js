// A gateway process for the browser tests: the real binary on a free loopback port with a
// temporary SQLite file and dev tokens on (the default on loopback). It can be killed and
// started again on the same port and file.

import { spawn } from "node:child_process";
import { createWriteStream, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { artifactsDir, eventually } from "./wait.js";

/** The binary: CHAT_GATEWAY_BIN, else target/debug/chat-gateway of CARGO_TARGET_DIR. */
export function gatewayBinary() {
  if (process.env.CHAT_GATEWAY_BIN) return process.env.CHAT_GATEWAY_BIN;
  const target = process.env.CARGO_TARGET_DIR || new URL("../../../target", import.meta.url).pathname;
  return join(target, "debug", "chat-gateway");
}

async function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

export class Gateway {
  constructor(name) {
    this.name = name;
    this.dir = mkdtempSync(join(tmpdir(), "chat-browser-"));
    this.process = null;
    this.port = 0;
    this.starts = 0;
  }

  get url() {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Starts the binary (on the port of the last start, if any) and waits until it is ready. */
  async start() {
    if (!this.port) this.port = await freePort();
    this.starts += 1;
    const log = createWriteStream(join(artifactsDir(), `gateway-${this.name}-${this.starts}.log`));
    const child = spawn(gatewayBinary(), [], {
      env: {
        ...process.env,
        CHAT__SERVER__BIND: `127.0.0.1:${this.port}`,
        CHAT__STORAGE__URL: `sqlite:${join(this.dir, "chat.db")}`,
        CHAT__LOG__LEVEL: "warn",
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    child.stdout.pipe(log);
    child.stderr.pipe(log);
    let printed = "";
    child.stdout.on("data", (chunk) => (printed += chunk));
    let exited = null;
    child.once("exit", (code, signal) => (exited = { code, signal }));
    this.process = child;
    this.printed = () => printed;
    await eventually(
      async () => {
        if (exited) throw new Error(`the gateway exited (${JSON.stringify(exited)}); see its log in ${artifactsDir()}`);
        const res = await fetch(`${this.url}/health/ready`).catch(() => null);
        return res && res.status === 200;
      },
      { timeout: 20000, message: `gateway ${this.name} ready on port ${this.port}` },
    );
    return this;
  }

  /** SIGKILL: no drain, no goodbye frames; the sockets die as in a crash. */
  async kill() {
    const child = this.process;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGKILL");
    await gone;
    this.process = null;
  }

  async stop() {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** A token minted by the running gateway's dev endpoint. */
  async token(user) {
    const res = await fetch(`${this.url}/api/dev/token`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ user_id: user }),
    });
    if (!res.ok) throw new Error(`dev token for ${user}: HTTP ${res.status}`);
    return (await res.json()).token;
  }

  /** A REST call as `user`. */
  async api(user, method, path, body) {
    const res = await fetch(`${this.url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${await this.token(user)}`,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  }

  async online(user) {
    const { body } = await this.api(999999, "POST", "/api/presence", { user_ids: [user] });
    return body.online[String(user)];
  }
}
