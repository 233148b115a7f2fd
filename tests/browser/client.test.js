// chat-client.js's own tests, run in headless Chromium against a real gateway: reconnect
// and catch-up after it, the same client_msg_id on a retry (lost acknowledgement, 4290),
// and a refused token that stops the reconnecting with an `auth` event.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { launch, newPage } from "./support/browser.js";
import { Gateway } from "./support/gateway.js";

let browser;
let gateway;
let page;

before(async () => {
  gateway = await new Gateway("client").start();
  browser = await launch();
  page = await newPage(await browser.newContext());
  // Any page of the gateway's origin: the module is imported from /web/.
  await page.goto(`${gateway.url}/health/live`);
  await page.evaluate(async () => {
    window.lib = await import("/web/chat-client.js");
    // A connected client of `user`, recording its events; resolves once caught up.
    window.connect = async (user, options = {}) => {
      const token = await window.lib.devToken(location.origin, user);
      const client = new window.lib.ChatClient({ token, deviceId: `test-${user}`, ...options });
      client.log = { states: [], messages: [], sending: [], auth: [], synced: [] };
      client.on("state", (d) => client.log.states.push(d.state));
      client.on("message", (m) => client.log.messages.push(m));
      client.on("sending", (s) => client.log.sending.push(s));
      client.on("auth", (a) => client.log.auth.push(a.reason));
      client.on("synced", (s) => client.log.synced.push(s.count));
      const ready = new Promise((resolve) => {
        const off = client.on("synced", () => {
          off();
          resolve();
        });
      });
      client.connect();
      await ready;
      return client;
    };
    // Resolves when `probe()` holds, polling; rejects after `timeout` ms.
    window.until = (probe, timeout = 10000, what = "condition") =>
      new Promise((resolve, reject) => {
        const deadline = Date.now() + timeout;
        const check = () => {
          const value = probe();
          if (value) resolve(value);
          else if (Date.now() > deadline) reject(new Error(`timed out waiting for ${what}`));
          else setTimeout(check, 25);
        };
        check();
      });
  });
});

after(async () => {
  if (browser) await browser.close();
  if (gateway) await gateway.stop();
});

test("reconnects after a drop and catches up what arrived meanwhile, once each", async () => {
  const result = await page.evaluate(async () => {
    const x = await window.connect(201, { backoffInitialMs: 2000 });
    const y = await window.connect(202);
    x.drop();
    // While x waits to reconnect (1–2 s), y sends two messages; they are stored for x.
    const first = await y.sendPrivate(201, "while you were away 1");
    const second = await y.sendPrivate(201, "while you were away 2");
    await window.until(() => x.state === "open" && x.log.synced.length >= 2, 15000, "x reconnected and synced");
    const ids = x.log.messages.map((m) => m.id);
    const out = {
      states: [...x.log.states],
      ids,
      expected: [first.id, second.id],
      sources: x.log.messages.map((m) => m.source),
    };
    x.close();
    y.close();
    return out;
  });
  assert.ok(result.states.includes("waiting"), `states: ${result.states}`);
  assert.equal(result.states.at(-1), "open", `states: ${result.states}`);
  for (const id of result.expected) {
    assert.equal(result.ids.filter((i) => i === id).length, 1, `message ${id} exactly once: ${result.ids}`);
  }
});

test("a lost acknowledgement is retried with the same client_msg_id and stored once", async () => {
  const result = await page.evaluate(async () => {
    let dropped = 0;
    // A socket that loses the first acknowledgement it receives (as a dying link would).
    class LossySocket extends WebSocket {
      set onmessage(listener) {
        super.onmessage = (event) => {
          const frame = JSON.parse(event.data);
          if (!dropped && (frame.code === 2100 || frame.code === 2101)) {
            dropped += 1;
            return;
          }
          listener(event);
        };
      }
      get onmessage() {
        return super.onmessage;
      }
    }
    const x = await window.connect(211, { WebSocket: LossySocket, ackTimeoutMs: 1500, backoffInitialMs: 200 });
    const y = await window.connect(212);
    const ack = await x.sendPrivate(212, "sent once, acknowledged twice", "retry-211-1");
    const page = await y.history({ userId: 211 }, "", 20);
    await window.until(() => y.log.messages.length >= 1, 5000, "y got it live");
    const out = {
      ack,
      dropped,
      sending: x.log.sending,
      stored: page.messages.filter((m) => m.content === "sent once, acknowledged twice").map((m) => m.id),
      live: y.log.messages.map((m) => m.client_msg_id),
    };
    x.close();
    y.close();
    return out;
  });
  assert.equal(result.dropped, 1);
  assert.deepEqual(
    result.sending.map((s) => s.clientMsgId),
    ["retry-211-1", "retry-211-1"],
    "sent twice with the same id",
  );
  assert.equal(result.ack.client_msg_id, "retry-211-1");
  assert.deepEqual(result.stored, [result.ack.id], "stored once, under the acknowledged id");
  assert.deepEqual(result.live, ["retry-211-1"], "delivered live once");
});

test("frames over the rate (4290) are sent again with their ids until all are stored once", async () => {
  const result = await page.evaluate(async () => {
    const x = await window.connect(221);
    const y = await window.connect(222);
    const group = await x.createGroup({ name: "burst", members: [222] });
    const problems = [];
    x.on("problem", (p) => problems.push(p.code));
    const n = 55;
    const acks = await Promise.all(
      Array.from({ length: n }, (_, i) => x.sendGroup(group.id, `burst ${i}`, `burst-${i}`)),
    );
    const stored = [];
    let cursor = "";
    do {
      const page = await y.history({ groupId: group.id }, cursor, 100);
      stored.push(...page.messages.map((m) => m.content));
      cursor = page.nextCursor;
    } while (cursor);
    const out = { n, acks: acks.length, ids: new Set(acks.map((a) => a.id)).size, stored, problems, sends: x.log.sending.length };
    x.close();
    y.close();
    return out;
  });
  assert.ok(result.problems.includes(4290), `some frames were over the rate: ${result.problems}`);
  assert.ok(result.sends > result.n, "some sends were repeated");
  assert.equal(result.acks, result.n);
  assert.equal(result.ids, result.n);
  assert.equal(result.stored.length, result.n, "each stored exactly once");
  assert.equal(new Set(result.stored).size, result.n);
});

test("a refused token emits auth and stops reconnecting", async () => {
  const result = await page.evaluate(async () => {
    // A well-formed token signed with another secret.
    const header = btoa(JSON.stringify({ alg: "HS256", typ: "JWT" })).replace(/=+$/, "");
    const claims = btoa(JSON.stringify({ sub: 231, exp: Math.floor(Date.now() / 1000) + 3600 })).replace(/=+$/, "");
    const client = new window.lib.ChatClient({ token: `${header}.${claims}.c2lnbmF0dXJl`, deviceId: "bad-token" });
    const reasons = [];
    const states = [];
    client.on("auth", (a) => reasons.push(a.reason));
    client.on("state", (s) => states.push(s.state));
    client.connect();
    await window.until(() => client.state === "unauthorized", 10000, "unauthorized");
    return { reasons, states };
  });
  assert.deepEqual(result.reasons, ["invalid token signature"]);
  assert.equal(result.states.at(-1), "unauthorized");
  assert.ok(!result.states.includes("waiting"), `no reconnect attempts: ${result.states}`);
});

test("an expired token is refused before any connection attempt is repeated", async () => {
  const result = await page.evaluate(async () => {
    const token = await window.lib.devToken(location.origin, 241, "1s");
    const exp = window.lib.tokenClaims(token).exp;
    // Past `exp` by a second: the server's clock counts whole seconds.
    await window.until(() => Date.now() > (exp + 1) * 1000, 5000, "the token to expire");
    let asked = 0;
    const client = new window.lib.ChatClient({
      token,
      deviceId: "expired",
      getToken: async () => {
        asked += 1;
        return window.lib.devToken(location.origin, 241);
      },
    });
    const reasons = [];
    client.on("auth", (a) => reasons.push(a.reason));
    const synced = new Promise((resolve) => client.on("synced", resolve));
    client.connect();
    await synced;
    const state = client.state;
    client.close();
    return { reasons, asked, state };
  });
  assert.deepEqual(result.reasons, ["token expired"]);
  assert.equal(result.asked, 1, "a fresh token was asked for once");
  assert.equal(result.state, "open");
});
