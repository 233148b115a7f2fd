// chat-client.js: a dependency-free client of the chat-gateway protocol (docs/protocol.md)
// for browsers (and any runtime with WebSocket and fetch). docs/client.md describes it.
//
// What it does for you:
// - connects with the token in the subprotocol (`["chat.v1", "bearer." + token]`) and a
//   stable `device_id`, so the server keeps this device's catch-up position;
// - reconnects with jittered exponential backoff when the server or the network drops the
//   connection (close codes 1001, 1006, 1012, 1013, and 1000/1008 that are not final), and
//   not when the token is refused: then it emits `auth` (and asks `getToken` for a new one);
// - catches up after every connect and after a 1002: unread-sync pages (type 2), each
//   confirmed (type 9) once handed to you, duplicates dropped by id;
// - sends with a `client_msg_id` and sends the same frame again after a 5000, a 4290, an
//   acknowledgement timeout or a reconnect, until it is acknowledged or refused: the server
//   stores a `client_msg_id` once, so a retry never makes a second message.

/** Close codes that say this client broke the protocol (a bug to fix, not a network
 *  problem): no reconnect. Every other close reconnects with backoff, except 1008 for the
 *  token (an `auth` event) or "replaced" (a `replaced` event). */
export const FINAL_CODES = Object.freeze([1002, 1007, 1009]);

/** Server codes: the names of docs/protocol.md's table. */
export const Code = Object.freeze({
  CONNECTED: 1000,
  CLOSING: 1001,
  SYNC_NEEDED: 1002,
  PONG: 1003,
  TOKEN_EXPIRING: 1004,
  MESSAGE: 2000,
  DELIVERED: 2100,
  STORED_OFFLINE: 2101,
  PAGE_END: 2200,
  READ_APPLIED: 2300,
  READ_BY: 2301,
  TOKEN_REFRESHED: 2400,
  CONFIRMED: 2500,
  TYPING: 2600,
  EDITED: 2700,
  EDIT_APPLIED: 2701,
  DELETED: 2710,
  DELETE_APPLIED: 2711,
  CONVERSATION_UPDATE: 2800,
  BAD_FRAME: 4000,
  TOKEN_REFUSED: 4001,
  NOT_ALLOWED: 4003,
  NOT_FOUND: 4004,
  EDIT_WINDOW: 4008,
  STRANGER_LIMIT: 4029,
  TOO_LONG: 4130,
  RATE_LIMITED: 4290,
  TYPING_TOO_FAST: 4291,
  STORAGE_UNAVAILABLE: 5000,
});

/** A refusal or failure of one request: `code` is the server's (4xxx, 5000) or 0 (local). */
export class ChatError extends Error {
  constructor(code, reason, frame = null) {
    super(reason);
    this.name = "ChatError";
    this.code = code;
    this.reason = reason;
    this.frame = frame;
  }
}

/** A REST failure: `status` is the HTTP status (0: no answer), `message` the server's `error`. */
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.name = "ApiError";
    this.status = status;
  }
}

/** The conversation a message, receipt, typing or edit frame belongs to, seen by `me`:
 *  `"g:<group_id>"` or `"u:<other user's id>"`. */
export function conversationKey(frame, me) {
  if (frame.group_id !== undefined && frame.group_id !== null) return `g:${frame.group_id}`;
  const sender = Number(frame.sender_id ?? frame.reader_id);
  const recipient = Number(frame.recipient_id);
  return `u:${sender === Number(me) ? recipient : sender}`;
}

/** The `sub` of a JWT (the user id) and its `exp` (unix seconds), read without verifying. */
export function tokenClaims(token) {
  try {
    const part = String(token).split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const claims = JSON.parse(atob(part + "=".repeat((4 - (part.length % 4)) % 4)));
    return { userId: Number(claims.sub), exp: Number(claims.exp) };
  } catch {
    return { userId: NaN, exp: NaN };
  }
}

/** Mints a token in dev mode (`POST /api/dev/token`, loopback nodes only). */
export async function devToken(baseUrl, userId, ttl = "24h") {
  const res = await fetch(new URL("/api/dev/token", baseUrl), {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ user_id: Number(userId), ttl }),
  });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new ApiError(res.status, body.error || `HTTP ${res.status}`);
  return body.token;
}

/** Whether the node serves dev tokens: a probe with user 0 is 400 when on, 404 when off. */
export async function devTokensOn(baseUrl) {
  try {
    const res = await fetch(new URL("/api/dev/token", baseUrl), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ user_id: 0 }),
    });
    return res.status === 400;
  } catch {
    return false;
  }
}

/** A random id (for `client_msg_id` and `device_id`). */
export function randomId(prefix = "") {
  const bytes = new Uint8Array(12);
  crypto.getRandomValues(bytes);
  return prefix + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

const DEFAULTS = {
  ackTimeoutMs: 10000,
  backoffInitialMs: 500,
  backoffMaxMs: 30000,
  syncPageSize: 100,
  maxSendAttempts: 20,
  seenIds: 5000,
};

/**
 * One user's connection to the gateway. Events (`addEventListener(name, e => e.detail)`):
 * `state`, `connected`, `message`, `ack`, `receipt`, `typing`, `edited`, `deleted`,
 * `conversation`, `synced`, `resync`, `auth`, `replaced`, `tokenexpiring`, `problem`,
 * `frame` (every frame, raw).
 */
export class ChatClient extends EventTarget {
  /**
   * @param {object} options
   * @param {string} options.token the JWT
   * @param {string} options.deviceId a stable id of this installation (1–64 of `A-Za-z0-9_-.:`)
   * @param {string} [options.url] the WebSocket URL (default: `/ws` of `baseUrl`)
   * @param {string} [options.baseUrl] the REST base (default: the page's origin)
   * @param {() => Promise<string>} [options.getToken] asked for a fresh token when the
   *   server warns of expiry (1004) or refuses the token
   */
  constructor(options) {
    super();
    const origin = typeof location !== "undefined" ? location.origin : undefined;
    this.baseUrl = options.baseUrl || origin;
    const ws = new URL("/ws", this.baseUrl);
    ws.protocol = ws.protocol === "https:" ? "wss:" : "ws:";
    this.url = options.url || ws.href;
    this.token = options.token;
    this.userId = tokenClaims(options.token).userId;
    this.deviceId = options.deviceId;
    this.getToken = options.getToken || null;
    this.options = { ...DEFAULTS, ...options };
    this.WebSocket = options.WebSocket || globalThis.WebSocket;
    /** `idle`, `connecting`, `syncing`, `open`, `waiting` (to reconnect), `unauthorized`,
     *  `replaced`, `closed`. */
    this.state = "idle";
    this.socket = null;
    this.attempt = 0;
    this.timer = null;
    this.wanted = false;
    /** Requests that the server answers, in the order sent (it answers in that order). */
    this.queue = [];
    /** Sends not yet acknowledged, by client_msg_id: kept across reconnects. */
    this.outbox = new Map();
    this.seen = new Set();
    this.syncing = null;
    this.syncAgain = false;
  }

  // ---- connection --------------------------------------------------------------------

  /** Connects (and keeps reconnecting until `close()`). */
  connect() {
    this.wanted = true;
    if (this.socket || this.timer) return;
    this.open();
  }

  /** Closes for good: no reconnect; unacknowledged sends are rejected. */
  close() {
    this.wanted = false;
    clearTimeout(this.timer);
    this.timer = null;
    const socket = this.socket;
    this.socket = null;
    if (socket) socket.close(1000, "client closing");
    this.failQueue("the client was closed");
    for (const send of this.outbox.values()) {
      clearTimeout(send.timer);
      send.reject(new ChatError(0, "the client was closed"));
    }
    this.outbox.clear();
    this.setState("closed");
  }

  /** Drops the connection as if the network had (tests use it), then reconnects. */
  drop() {
    this.abandon(4000, "client dropped the connection");
  }

  /** Gives up on the socket at once (a dead peer may never finish the closing handshake)
   *  and reconnects. */
  abandon(code, reason) {
    const socket = this.socket;
    if (!socket) return;
    this.socket = null;
    try {
      socket.close(code, reason);
    } catch {
      // Already closing.
    }
    this.onClosed({ code, reason, opened: this.welcomed });
  }

  open() {
    this.timer = null;
    if (!this.wanted) return;
    const url = new URL(this.url);
    url.searchParams.set("device_id", this.deviceId);
    let socket;
    try {
      socket = new this.WebSocket(url.href, ["chat.v1", "bearer." + this.token]);
    } catch (err) {
      this.emit("problem", { code: 0, reason: `cannot open ${url.href}: ${err.message}` });
      this.scheduleReconnect({ code: 1006, reason: "could not open", opened: false });
      return;
    }
    this.socket = socket;
    this.welcomed = false;
    this.setState("connecting");
    socket.onmessage = (event) => {
      if (this.socket !== socket) return;
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        this.emit("problem", { code: 0, reason: "the server sent a frame that is not JSON" });
        return;
      }
      this.onFrame(frame);
    };
    socket.onclose = (event) => {
      if (this.socket !== socket) return;
      this.socket = null;
      this.onClosed({ code: event.code, reason: event.reason, opened: this.welcomed });
    };
  }

  onClosed({ code, reason, opened }) {
    for (const entry of this.queue) clearTimeout(entry.timer);
    this.failQueue(`connection closed (${code})`);
    for (const send of this.outbox.values()) {
      clearTimeout(send.timer);
      send.inFlight = false;
    }
    this.syncing = null;
    if (!this.wanted) return;
    if (code === 1008 && /replaced/.test(reason)) {
      this.wanted = false;
      this.setState("replaced", { code, reason });
      this.emit("replaced", { code, reason });
      return;
    }
    if (code === 1008 && /token/.test(reason)) {
      this.tokenProblem(reason);
      return;
    }
    if (FINAL_CODES.includes(code)) {
      this.wanted = false;
      this.emit("problem", { code, reason: `the server closed the connection: ${reason || code}` });
      this.setState("closed", { code, reason });
      return;
    }
    this.scheduleReconnect({ code, reason, opened });
  }

  async scheduleReconnect({ code, reason, opened }) {
    if (!opened && code === 1006) {
      // The handshake failed: a browser does not say why. Ask REST with the same token:
      // a 401 is a token problem (no point retrying it), anything else is the network.
      const problem = await this.tokenRefused();
      if (!this.wanted) return;
      if (problem) {
        this.tokenProblem(problem);
        return;
      }
    }
    if (opened) this.attempt = 0;
    const { backoffInitialMs, backoffMaxMs } = this.options;
    let delay;
    if (code === 1012 && opened) {
      // A draining node: reconnect at once, spread out (the balancer picks another node).
      delay = Math.random() * backoffInitialMs;
    } else {
      const ceiling = Math.min(backoffMaxMs, backoffInitialMs * 2 ** this.attempt);
      delay = ceiling / 2 + (Math.random() * ceiling) / 2;
    }
    this.attempt += 1;
    this.setState("waiting", { code, reason, delayMs: Math.round(delay), attempt: this.attempt });
    this.timer = setTimeout(() => this.open(), delay);
  }

  /** The reason the server refuses this token (REST 401), or null. */
  async tokenRefused() {
    const claims = tokenClaims(this.token);
    if (Number.isFinite(claims.exp) && claims.exp * 1000 <= Date.now()) return "token expired";
    try {
      const res = await fetch(new URL("/api/me/groups", this.baseUrl), {
        headers: { authorization: "Bearer " + this.token },
      });
      if (res.status !== 401) return null;
      const body = await res.json().catch(() => ({}));
      return body.error || "token refused";
    } catch {
      return null;
    }
  }

  async tokenProblem(reason) {
    this.emit("auth", { reason });
    if (this.getToken) {
      try {
        const fresh = await this.getToken(reason);
        if (fresh && this.wanted) {
          this.setToken(fresh);
          this.scheduleReconnect({ code: 1008, reason, opened: false });
          return;
        }
      } catch (err) {
        this.emit("problem", { code: 0, reason: `no fresh token: ${err.message}` });
      }
    }
    this.wanted = false;
    this.setState("unauthorized", { reason });
  }

  setToken(token) {
    this.token = token;
  }

  setState(state, detail = {}) {
    this.state = state;
    this.emit("state", { state, ...detail });
  }

  emit(name, detail) {
    this.dispatchEvent(new CustomEvent(name, { detail }));
  }

  /** `client.on("message", detail => …)`: a listener of `detail`; returns its remover. */
  on(name, listener) {
    const wrapped = (event) => listener(event.detail);
    this.addEventListener(name, wrapped);
    return () => this.removeEventListener(name, wrapped);
  }

  // ---- frames in -------------------------------------------------------------------------

  onFrame(frame) {
    this.emit("frame", frame);
    switch (frame.code) {
      case Code.CONNECTED:
        this.welcomed = true;
        this.userId = Number(frame.user_id);
        this.emit("connected", { userId: this.userId });
        this.catchUp().then(() => this.flushOutbox());
        return;
      case Code.SYNC_NEEDED:
        this.emit("resync", {});
        this.catchUp();
        return;
      case Code.CLOSING:
      case Code.PONG:
        return;
      case Code.TOKEN_EXPIRING:
        this.emit("tokenexpiring", { expiresAt: frame.expires_at });
        this.refreshToken();
        return;
      case Code.MESSAGE:
        if (frame.source === "live") {
          this.deliver(frame);
          return;
        }
        if (this.queue[0]) this.queue[0].items.push(frame);
        return;
      case Code.READ_BY:
        this.emit("receipt", frame);
        return;
      case Code.TYPING:
        this.emit("typing", frame);
        return;
      case Code.EDITED:
        this.emit("edited", frame);
        return;
      case Code.DELETED:
        this.emit("deleted", frame);
        return;
      case Code.CONVERSATION_UPDATE:
        this.emit("conversation", frame);
        return;
      case Code.TYPING_TOO_FAST:
        this.emit("problem", { code: frame.code, reason: frame.reason, frame });
        return;
      case Code.TOKEN_REFRESHED:
      case Code.TOKEN_REFUSED:
        this.answer(frame);
        return;
      default:
        this.answer(frame);
    }
  }

  /** A message, once: the same id may come live and in a sync. */
  deliver(frame) {
    if (this.seen.has(frame.id)) return;
    this.seen.add(frame.id);
    if (this.seen.size > this.options.seenIds) {
      this.seen.delete(this.seen.values().next().value);
    }
    this.emit("message", frame);
  }

  /** An answer: to the send it names by client_msg_id, else to the oldest request. */
  answer(frame) {
    const id = frame.client_msg_id;
    let index = id ? this.queue.findIndex((entry) => entry.clientMsgId === id) : -1;
    if (index < 0) index = 0;
    const entry = this.queue[index];
    if (!entry) {
      if (frame.code >= 4000) this.emit("problem", { code: frame.code, reason: frame.reason, frame });
      return;
    }
    this.queue.splice(index, 1);
    clearTimeout(entry.timer);
    entry.settle(frame);
  }

  failQueue(reason) {
    const queue = this.queue;
    this.queue = [];
    for (const entry of queue) {
      clearTimeout(entry.timer);
      entry.settle(null, reason);
    }
  }

  // ---- requests --------------------------------------------------------------------------

  /** Sends a frame the server answers; resolves with `{frame, items}` (items: the 2000s of
   *  a page). A timeout drops the connection: answers come in order, a lost one would
   *  misalign every later one. */
  request(body, clientMsgId = null) {
    return new Promise((resolve, reject) => {
      if (!this.socket || !this.welcomed || this.socket.readyState !== 1) {
        reject(new ChatError(0, "not connected"));
        return;
      }
      const entry = {
        clientMsgId,
        items: [],
        settle: (frame, failure) => {
          if (!frame) reject(new ChatError(0, failure));
          else resolve({ frame, items: entry.items });
        },
      };
      entry.timer = setTimeout(() => {
        this.emit("problem", { code: 0, reason: `no answer within ${this.options.ackTimeoutMs} ms` });
        this.abandon(4001, "answer timeout");
      }, this.options.ackTimeoutMs);
      this.queue.push(entry);
      this.socket.send(JSON.stringify(body));
    });
  }

  /** Runs the unread sync to its end (type 2 pages, each confirmed with type 9). */
  catchUp() {
    if (this.syncing) {
      this.syncAgain = true;
      return this.syncing;
    }
    const socket = this.socket;
    const run = async () => {
      let count = 0;
      this.setState("syncing");
      do {
        this.syncAgain = false;
        for (;;) {
          const { frame, items } = await this.request({ type: 2, limit: this.options.syncPageSize });
          if (frame.code !== Code.PAGE_END) throw new ChatError(frame.code, frame.reason, frame);
          for (const item of items) this.deliver(item);
          count += items.length;
          if (frame.last_id) await this.request({ type: 9, content: frame.last_id });
          if (frame.content !== "more") break;
        }
      } while (this.syncAgain);
      if (this.socket !== socket) return;
      this.syncing = null;
      this.setState("open");
      this.emit("synced", { count });
    };
    const running = run().catch((err) => {
      // Closed meanwhile: the next connection syncs (and has its own run).
      if (this.socket !== socket || !socket) return;
      this.syncing = null;
      this.emit("problem", { code: err.code || 0, reason: `catch-up failed: ${err.message}` });
      // A failed page (5000) is retried by reconnecting: every connection starts with a sync.
      this.abandon(4002, "catch-up failed");
    });
    this.syncing = running;
    return running;
  }

  async refreshToken() {
    if (!this.getToken) return;
    try {
      const fresh = await this.getToken("token expiring");
      if (!fresh) return;
      const { frame } = await this.request({ type: 8, content: fresh });
      if (frame.code === Code.TOKEN_REFRESHED) this.setToken(fresh);
      else this.emit("problem", { code: frame.code, reason: frame.reason, frame });
    } catch (err) {
      this.emit("problem", { code: err.code || 0, reason: `token refresh failed: ${err.message}` });
    }
  }

  // ---- idempotent sends -------------------------------------------------------------------

  /** Sends a private message; resolves with the acknowledgement (2100/2101: `id`, `ts`),
   *  rejects with a ChatError for a refusal (4xxx) or after `maxSendAttempts` failures. */
  sendPrivate(recipientId, content, clientMsgId = randomId("c-")) {
    return this.idempotent({ type: 1, recipient_id: Number(recipientId), content }, clientMsgId);
  }

  /** Sends a group message; as `sendPrivate`. */
  sendGroup(groupId, content, clientMsgId = randomId("c-")) {
    return this.idempotent({ type: 4, group_id: String(groupId), content }, clientMsgId);
  }

  /** Edits a message of mine: resolves with the 2701. */
  edit(messageId, content, clientMsgId = randomId("e-")) {
    return this.idempotent({ type: 11, id: messageId, content }, clientMsgId);
  }

  /** Deletes a message of mine: resolves with the 2711. */
  deleteMessage(messageId, clientMsgId = randomId("d-")) {
    return this.idempotent({ type: 12, id: messageId }, clientMsgId);
  }

  /** The sends not acknowledged yet: `[{clientMsgId, body}]`. */
  pending() {
    return Array.from(this.outbox.values(), (s) => ({ clientMsgId: s.clientMsgId, body: s.body }));
  }

  idempotent(frame, clientMsgId) {
    return new Promise((resolve, reject) => {
      const send = {
        clientMsgId,
        body: { ...frame, client_msg_id: clientMsgId },
        attempts: 0,
        inFlight: false,
        timer: null,
        resolve,
        reject,
      };
      this.outbox.set(clientMsgId, send);
      this.transmit(send);
    });
  }

  flushOutbox() {
    if (this.state === "syncing") return;
    for (const send of this.outbox.values()) if (!send.inFlight) this.transmit(send);
  }

  transmit(send) {
    if (!this.socket || !this.welcomed || this.socket.readyState !== 1) return;
    send.inFlight = true;
    send.attempts += 1;
    this.emit("sending", { clientMsgId: send.clientMsgId, attempt: send.attempts });
    this.request(send.body, send.clientMsgId).then(
      ({ frame }) => this.onSendAnswer(send, frame),
      () => {
        // The connection dropped before the answer: sent again after the reconnect.
        send.inFlight = false;
      },
    );
  }

  onSendAnswer(send, frame) {
    send.inFlight = false;
    const code = frame.code;
    if (code < 4000) {
      this.outbox.delete(send.clientMsgId);
      this.emit("ack", frame);
      send.resolve(frame);
      return;
    }
    const retryable = code === Code.STORAGE_UNAVAILABLE || code === Code.RATE_LIMITED;
    if (!retryable || send.attempts >= this.options.maxSendAttempts) {
      this.outbox.delete(send.clientMsgId);
      send.reject(new ChatError(code, frame.reason || frame.content, frame));
      return;
    }
    this.emit("problem", { code, reason: frame.reason || frame.content, frame, retrying: true });
    let wait;
    if (code === Code.RATE_LIMITED) {
      // Retries of frames over the rate leave one per `retry_after_ms`, not all at once
      // (which would be over the rate again, and repeated refusals close the connection).
      const now = Date.now();
      this.paceUntil = Math.max(this.paceUntil || 0, now) + (Number(frame.retry_after_ms) || 50);
      wait = this.paceUntil - now;
    } else {
      wait = Math.min(this.options.backoffMaxMs, this.options.backoffInitialMs * 2 ** (send.attempts - 1));
    }
    send.timer = setTimeout(() => {
      if (this.outbox.has(send.clientMsgId) && !send.inFlight) this.transmit(send);
    }, wait);
  }

  // ---- other frames -----------------------------------------------------------------------

  /** Marks a message and everything older in its conversation read (type 5). */
  async markRead(messageId) {
    const { frame } = await this.request({ type: 5, content: messageId });
    if (frame.code !== Code.READ_APPLIED) throw new ChatError(frame.code, frame.reason, frame);
    return frame;
  }

  /** A page of history, newest first: `{messages, nextCursor}` (`""`: no older ones).
   *  `to` is `{userId}` or `{groupId}`; `cursor` a message id ("" for the newest). */
  async history(to, cursor = "", limit = 30) {
    const body =
      to.groupId !== undefined
        ? { type: 6, group_id: String(to.groupId), content: cursor, limit }
        : { type: 3, recipient_id: Number(to.userId), content: cursor, limit };
    const { frame, items } = await this.request(body);
    if (frame.code !== Code.PAGE_END) throw new ChatError(frame.code, frame.reason, frame);
    return { messages: items, nextCursor: frame.next_cursor };
  }

  /** Typing in a conversation (`{userId}` or `{groupId}`): "start" or "stop". Not answered
   *  when forwarded; send "start" at most every 3 s (a sooner one gets 4291). */
  typing(to, state = "start") {
    if (!this.socket || !this.welcomed || this.socket.readyState !== 1) return false;
    const body = to.groupId !== undefined
      ? { type: 10, group_id: String(to.groupId), content: state }
      : { type: 10, recipient_id: Number(to.userId), content: state };
    this.socket.send(JSON.stringify(body));
    return true;
  }

  // ---- REST ---------------------------------------------------------------------------------

  /** A REST call with the bearer token: resolves with the JSON body (null for 204). */
  async api(method, path, body) {
    let res;
    try {
      res = await fetch(new URL(path, this.baseUrl), {
        method,
        headers: {
          authorization: "Bearer " + this.token,
          ...(body === undefined ? {} : { "content-type": "application/json" }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (err) {
      throw new ApiError(0, `the server did not answer: ${err.message}`);
    }
    if (res.status === 204) return null;
    const json = await res.json().catch(() => ({}));
    if (!res.ok) throw new ApiError(res.status, json.error || `HTTP ${res.status}`);
    return json;
  }

  /** `GET /api/conversations`: `{conversations, next_cursor}`. */
  conversations({ limit = 50, before = "" } = {}) {
    const q = new URLSearchParams({ limit: String(limit) });
    if (before) q.set("before", before);
    return this.api("GET", `/api/conversations?${q}`);
  }

  /** `GET /api/me/groups`: `{groups}`. */
  groups() {
    return this.api("GET", "/api/me/groups");
  }

  /** `POST /api/groups`: the new group. */
  createGroup({ name, members = [], description, id } = {}) {
    const body = { name, members: members.map(Number) };
    if (description) body.description = description;
    if (id) body.id = id;
    return this.api("POST", "/api/groups", body);
  }

  group(groupId) {
    return this.api("GET", `/api/groups/${encodeURIComponent(groupId)}`);
  }

  deleteGroup(groupId) {
    return this.api("DELETE", `/api/groups/${encodeURIComponent(groupId)}`);
  }

  /** `GET /api/groups/{id}/members`: `{group_id, members}`. */
  members(groupId) {
    return this.api("GET", `/api/groups/${encodeURIComponent(groupId)}/members`);
  }

  addMember(groupId, userId) {
    return this.api("POST", `/api/groups/${encodeURIComponent(groupId)}/members`, {
      user_id: Number(userId),
    });
  }

  removeMember(groupId, userId) {
    return this.api("DELETE", `/api/groups/${encodeURIComponent(groupId)}/members/${Number(userId)}`);
  }

  leaveGroup(groupId) {
    return this.api("POST", `/api/groups/${encodeURIComponent(groupId)}/leave`);
  }

  /** `POST /api/presence`: `{online: {"42": true, …}}` for up to 500 users. */
  presence(userIds) {
    return this.api("POST", "/api/presence", { user_ids: userIds.map(Number) });
  }
}
