// The web app: sign-in, the conversation list and a chat view over chat-client.js.
// No framework: the state lives in `app`, and render functions redraw from it.

import {
  ChatClient,
  Code,
  conversationKey,
  devToken,
  devTokensOn,
  randomId,
  tokenClaims,
} from "./chat-client.js";

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = "chat-gateway.token";
const DEV_KEY = "chat-gateway.dev";
const PRESENCE_EVERY_MS = 10000;
const TYPING_EVERY_MS = 3000;
const TYPING_SHOWN_MS = 5000;
const PAGE = 30;

const app = {
  client: null,
  me: 0,
  dev: false,
  /** key ("u:7", "g:team-1") → {key, kind, peerId, groupId, name, last, unread, readUpto, peerReadUpto} */
  convs: new Map(),
  /** key → {items: Map id → message, pending: Map client_msg_id → message, nextCursor, loading} */
  threads: new Map(),
  open: null,
  presence: new Map(),
  /** key → Map sender → timer */
  typing: new Map(),
  /** group id → Map reader → newest id read */
  groupReads: new Map(),
  editing: null,
  /** The conversation a "start" was sent for (until its "stop"), when each conversation's
   *  last "start" left (the server forwards one per 3 s), and a deferred "start". */
  typingIn: null,
  typingAt: new Map(),
  typingTimer: null,
  presenceTimer: null,
  group: null,
};

// ---- sign-in ------------------------------------------------------------------------------

async function boot() {
  wireStatic();
  const token = sessionStorage.getItem(TOKEN_KEY);
  app.dev = await devTokensOn(location.origin);
  if (token) {
    start(token);
  } else {
    showSignIn();
  }
}

function showSignIn() {
  $("app").hidden = true;
  $("sign-in").hidden = false;
  $("dev-form").hidden = !app.dev;
  $("token-hint").textContent = app.dev
    ? "Or paste a token (a JWT)."
    : "Paste a token (a JWT from your identity provider, or chat-gateway token --user N).";
  (app.dev ? $("dev-user") : $("token-input")).focus();
}

async function signInAs(userId) {
  try {
    const token = await devToken(location.origin, userId);
    sessionStorage.setItem(DEV_KEY, "1");
    start(token);
  } catch (err) {
    notify(`Could not get a dev token: ${err.message}`);
  }
}

function start(token) {
  const { userId } = tokenClaims(token);
  if (!Number.isSafeInteger(userId) || userId <= 0) {
    notify("That is not a token of this gateway: its sub must be a user id.");
    showSignIn();
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  app.me = userId;
  const deviceKey = `chat-gateway.device.${userId}`;
  let deviceId = localStorage.getItem(deviceKey);
  if (!deviceId) {
    deviceId = randomId("web-");
    localStorage.setItem(deviceKey, deviceId);
  }
  const devSession = app.dev && sessionStorage.getItem(DEV_KEY) === "1";
  const client = new ChatClient({
    token,
    deviceId,
    getToken: devSession
      ? async () => {
          const fresh = await devToken(location.origin, userId);
          sessionStorage.setItem(TOKEN_KEY, fresh);
          return fresh;
        }
      : undefined,
  });
  app.client = client;
  listen(client);
  $("sign-in").hidden = true;
  $("app").hidden = false;
  $("whoami").hidden = false;
  $("whoami").textContent = `Signed in as user ${userId}`;
  $("sign-out").hidden = false;
  client.connect();
  loadConversations();
  clearInterval(app.presenceTimer);
  app.presenceTimer = setInterval(refreshPresence, PRESENCE_EVERY_MS);
}

function signOut() {
  if (app.client) app.client.close();
  app.client = null;
  clearInterval(app.presenceTimer);
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(DEV_KEY);
  app.convs.clear();
  app.threads.clear();
  app.open = null;
  $("whoami").hidden = true;
  $("sign-out").hidden = true;
  renderState({ state: "idle" });
  showSignIn();
}

// ---- events from the client ----------------------------------------------------------------

function listen(client) {
  client.on("state", renderState);
  client.on("synced", () => {
    loadConversations();
    if (app.open) loadNewest(app.open);
  });
  client.on("message", onMessage);
  client.on("receipt", onReceipt);
  client.on("typing", onTyping);
  client.on("edited", (f) => onChanged(f, { content: f.content, edited_at: f.edited_at }));
  client.on("deleted", (f) => onChanged(f, { content: "", deleted: true, deleted_at: f.deleted_at }));
  client.on("conversation", onConversationUpdate);
  client.on("problem", (p) => {
    if (p.code === Code.TYPING_TOO_FAST) onTypingTooSoon(p.frame);
    else if (p.code) notify(describe(p.code, p.reason, p.frame));
  });
  client.on("auth", ({ reason }) => {
    if (!client.getToken) notify(`The gateway refused your token (${reason}): sign out and sign in again.`);
  });
  client.on("replaced", () =>
    notify("This tab was disconnected: a newer connection of the same user replaced it. Reload to connect again."),
  );
}

function renderState({ state, delayMs, code, reason }) {
  const el = $("connection");
  el.dataset.state = state;
  const text = {
    idle: "Not connected",
    connecting: "Connecting…",
    syncing: "Catching up…",
    open: "Connected",
    unauthorized: "Disconnected: token refused",
    replaced: "Disconnected: replaced by a newer connection",
    closed: "Disconnected",
  }[state];
  if (state === "waiting") {
    const why = reason || (code === 1006 ? "connection lost" : `code ${code}`);
    el.textContent = `Reconnecting in ${Math.max(1, Math.round(delayMs / 1000))} s (${why})`;
  } else {
    el.textContent = text || state;
  }
  renderPending();
}

function onMessage(m) {
  const key = conversationKey(m, app.me);
  const conv = ensureConv(key, m);
  if (!conv.last || m.id >= conv.last.id) {
    conv.last = { id: m.id, sender_id: m.sender_id, preview: m.content.slice(0, 100), ts: m.ts, deleted: m.deleted };
  }
  const fromOther = Number(m.sender_id) !== app.me;
  const reading = app.open === key && document.visibilityState === "visible";
  if (fromOther && !reading && !(conv.readUpto && m.id <= conv.readUpto)) conv.unread += 1;
  const thread = app.threads.get(key);
  if (thread) {
    thread.items.set(m.id, m);
    // A copy of my own send (another device) replaces nothing here; one of this tab's
    // pending sends is settled by its acknowledgement.
  }
  clearTyping(key, Number(m.sender_id));
  renderList();
  if (app.open === key) {
    renderMessages({ stick: true });
    markRead(key);
  }
}

function onReceipt(f) {
  const key = conversationKey(f, app.me);
  const conv = app.convs.get(key);
  const reader = Number(f.reader_id);
  if (reader === app.me) {
    if (conv) {
      conv.readUpto = maxId(conv.readUpto, f.id);
      if (conv.last && f.id >= conv.last.id) conv.unread = 0;
    }
    renderList();
    return;
  }
  if (f.group_id !== undefined) {
    const reads = app.groupReads.get(f.group_id) || new Map();
    reads.set(reader, maxId(reads.get(reader), f.id));
    app.groupReads.set(f.group_id, reads);
  } else if (conv) {
    conv.peerReadUpto = maxId(conv.peerReadUpto, f.id);
  }
  if (app.open === key) renderMessages({});
}

function onTyping(f) {
  const sender = Number(f.sender_id);
  if (sender === app.me) return;
  const key = conversationKey(f, app.me);
  if (f.state === "stop") {
    clearTyping(key, sender);
    return;
  }
  const senders = app.typing.get(key) || new Map();
  clearTimeout(senders.get(sender));
  senders.set(sender, setTimeout(() => clearTyping(key, sender), TYPING_SHOWN_MS));
  app.typing.set(key, senders);
  renderTyping();
}

function clearTyping(key, sender) {
  const senders = app.typing.get(key);
  if (!senders || !senders.has(sender)) return;
  clearTimeout(senders.get(sender));
  senders.delete(sender);
  renderTyping();
}

function onChanged(f, change) {
  const key = conversationKey(f, app.me);
  const thread = app.threads.get(key);
  const message = thread && thread.items.get(f.id);
  if (message) Object.assign(message, change);
  const conv = app.convs.get(key);
  if (conv && conv.last && conv.last.id === f.id) {
    conv.last.preview = change.deleted ? "" : change.content.slice(0, 100);
    conv.last.deleted = change.deleted;
  }
  renderList();
  if (app.open === key) renderMessages({});
}

function onConversationUpdate(f) {
  const key = `g:${f.group_id}`;
  if (f.change !== "joined") {
    app.convs.delete(key);
    app.threads.delete(key);
    if (app.open === key) {
      closeChat();
      notify(f.change === "deleted" ? "The group was deleted." : "You are no longer a member of that group.", "info");
    }
  }
  loadConversations();
}

// ---- conversations -------------------------------------------------------------------------

function ensureConv(key, frame = {}) {
  let conv = app.convs.get(key);
  if (!conv) {
    const group = key.startsWith("g:");
    conv = {
      key,
      kind: group ? "group" : "private",
      groupId: group ? key.slice(2) : undefined,
      peerId: group ? undefined : Number(key.slice(2)),
      name: group ? frame.name || key.slice(2) : `User ${key.slice(2)}`,
      last: null,
      unread: 0,
      readUpto: null,
      peerReadUpto: null,
    };
    app.convs.set(key, conv);
  }
  return conv;
}

async function loadConversations() {
  const client = app.client;
  if (!client) return;
  let page;
  try {
    page = await client.conversations({ limit: 100 });
  } catch (err) {
    if (err.status !== 0) notify(`Could not load the conversations: ${err.message}`);
    return;
  }
  if (client !== app.client) return;
  const fresh = new Set();
  for (const c of page.conversations) {
    const key = c.kind === "group" ? `g:${c.group_id}` : `u:${c.peer_id}`;
    fresh.add(key);
    const conv = ensureConv(key, c);
    if (c.kind === "group" && c.name) conv.name = c.name;
    conv.last = c.last_message;
    conv.unread = app.open === key && document.visibilityState === "visible" ? conv.unread : c.unread;
    conv.readUpto = c.read_upto;
    if (c.kind === "private") conv.peerReadUpto = maxId(conv.peerReadUpto, c.peer_read_upto);
  }
  // Groups left meanwhile disappear; private chats opened here but still empty stay.
  for (const key of app.convs.keys()) {
    if (!fresh.has(key) && key.startsWith("g:") && key !== app.open) app.convs.delete(key);
  }
  renderList();
  refreshPresence();
  if (app.open) markRead(app.open);
}

async function refreshPresence() {
  const client = app.client;
  if (!client) return;
  const ids = [...app.convs.values()].filter((c) => c.kind === "private").map((c) => c.peerId);
  if (!ids.length) return;
  try {
    const { online } = await client.presence(ids.slice(0, 500));
    for (const [id, on] of Object.entries(online)) app.presence.set(Number(id), on);
  } catch {
    return; // shown as unknown until the next refresh
  }
  renderList();
  renderChatHead();
}

function sortedConvs() {
  return [...app.convs.values()].sort((a, b) => {
    const x = a.last ? a.last.id : "";
    const y = b.last ? b.last.id : "";
    return x < y ? 1 : x > y ? -1 : 0;
  });
}

function renderList() {
  const list = $("conversations");
  list.replaceChildren();
  const convs = sortedConvs();
  $("no-conversations").hidden = convs.length > 0;
  for (const conv of convs) {
    const li = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "conversation";
    button.dataset.key = conv.key;
    if (app.open === conv.key) button.setAttribute("aria-current", "true");
    const dot = document.createElement("span");
    const label = [];
    if (conv.kind === "group") {
      dot.className = "dot group";
      label.push("group");
    } else {
      const on = app.presence.get(conv.peerId);
      dot.className = on ? "dot online" : "dot";
      dot.dataset.presence = on === undefined ? "unknown" : on ? "online" : "offline";
      label.push(on ? "online" : on === false ? "offline" : "presence unknown");
    }
    dot.setAttribute("aria-hidden", "true");
    const state = document.createElement("span");
    state.className = "sr-only";
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = conv.name;
    const badge = document.createElement("span");
    badge.className = "badge unread";
    badge.textContent = conv.unread > 999 ? "999+" : String(conv.unread);
    badge.hidden = conv.unread === 0;
    badge.setAttribute("aria-hidden", "true");
    if (conv.unread) label.push(`${conv.unread} unread`);
    state.textContent = ` (${label.join(", ")}) `;
    const preview = document.createElement("span");
    preview.className = "preview";
    preview.textContent = previewOf(conv);
    button.append(dot, name, state, badge, preview);
    button.addEventListener("click", () => openChat(conv.key));
    li.append(button);
    list.append(li);
  }
}

function previewOf(conv) {
  if (!conv.last) return "No messages yet";
  const who = Number(conv.last.sender_id) === app.me ? "You: " : "";
  return who + (conv.last.deleted || conv.last.preview === "" ? "(deleted)" : conv.last.preview);
}

// ---- the chat view -------------------------------------------------------------------------

function target(key) {
  return key.startsWith("g:") ? { groupId: key.slice(2) } : { userId: Number(key.slice(2)) };
}

function thread(key) {
  let t = app.threads.get(key);
  if (!t) {
    t = { items: new Map(), pending: new Map(), nextCursor: "", loaded: false, loading: false };
    app.threads.set(key, t);
  }
  return t;
}

async function openChat(key) {
  if (app.editing) cancelEdit();
  stopTyping();
  app.open = key;
  ensureConv(key);
  $("app").classList.add("chatting");
  $("chat").hidden = false;
  $("placeholder").hidden = true;
  $("members").hidden = true;
  $("members-toggle").setAttribute("aria-expanded", "false");
  renderChatHead();
  renderList();
  renderTyping();
  renderMessages({ stick: true });
  $("composer-input").focus();
  if (key.startsWith("u:") && !app.presence.has(Number(key.slice(2)))) refreshPresence();
  const t = thread(key);
  if (!t.loaded) await loadNewest(key);
  markRead(key);
}

function closeChat() {
  stopTyping();
  app.open = null;
  $("app").classList.remove("chatting");
  $("chat").hidden = true;
  $("placeholder").hidden = false;
  renderList();
}

async function loadNewest(key) {
  const t = thread(key);
  try {
    const { messages, nextCursor } = await app.client.history(target(key), "", PAGE);
    for (const m of messages) t.items.set(m.id, m);
    if (!t.loaded) t.nextCursor = nextCursor;
    t.loaded = true;
  } catch (err) {
    if (err.code) notify(describe(err.code, err.reason, err.frame));
    return; // not connected: the sync after the connect loads it
  }
  if (app.open === key) {
    renderMessages({ stick: true });
    markRead(key);
  }
}

async function loadOlder() {
  const key = app.open;
  const t = key && app.threads.get(key);
  if (!t || !t.loaded || !t.nextCursor || t.loading) return;
  t.loading = true;
  const list = $("messages");
  const before = list.scrollHeight - list.scrollTop;
  try {
    const { messages, nextCursor } = await app.client.history(target(key), t.nextCursor, PAGE);
    for (const m of messages) t.items.set(m.id, m);
    t.nextCursor = nextCursor;
  } catch (err) {
    if (err.code) notify(describe(err.code, err.reason, err.frame));
  } finally {
    t.loading = false;
  }
  if (app.open !== key) return;
  renderMessages({});
  list.scrollTop = list.scrollHeight - before;
}

function renderChatHead() {
  const key = app.open;
  if (!key) return;
  const conv = app.convs.get(key);
  $("chat-title").textContent = conv ? conv.name : key;
  const presence = $("chat-presence");
  const group = key.startsWith("g:");
  $("members-toggle").hidden = !group;
  if (group) {
    presence.hidden = true;
    return;
  }
  const on = app.presence.get(Number(key.slice(2)));
  presence.hidden = on === undefined;
  presence.textContent = on ? "● online" : "○ offline";
  presence.dataset.presence = on ? "online" : "offline";
}

function renderMessages({ stick = false }) {
  const key = app.open;
  const list = $("messages");
  if (!key) return;
  const t = thread(key);
  const conv = app.convs.get(key);
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  const items = [...t.items.values()].sort((a, b) => (a.id < b.id ? -1 : 1));
  list.replaceChildren();
  const head = document.createElement("p");
  head.className = "older";
  head.textContent = !t.loaded
    ? "Loading…"
    : t.nextCursor
      ? "Scroll up for older messages"
      : "Beginning of the conversation";
  list.append(head);
  for (const m of items) list.append(messageItem(m, conv));
  const stored = new Set(items.map((m) => m.client_msg_id).filter(Boolean));
  for (const m of t.pending.values()) {
    if (!stored.has(m.client_msg_id)) list.append(messageItem(m, conv));
  }
  if (stick || atBottom) list.scrollTop = list.scrollHeight;
  if (t.loaded && t.nextCursor && list.scrollHeight <= list.clientHeight) loadOlder();
}

function renderPending() {
  if (app.open) renderMessages({});
}

function messageItem(m, conv) {
  const mine = Number(m.sender_id) === app.me;
  const li = document.createElement("div");
  li.className = "message" + (mine ? " mine" : "") + (m.deleted ? " deleted" : "") + (m.error ? " failed" : "");
  if (m.id) li.dataset.id = m.id;
  if (m.client_msg_id) li.dataset.clientMsgId = m.client_msg_id;
  const who = document.createElement("div");
  who.className = "who";
  who.textContent = mine ? "You" : `User ${m.sender_id}`;
  const text = document.createElement("p");
  text.className = "text";
  text.textContent = m.deleted ? "This message was deleted" : m.content;
  const meta = document.createElement("div");
  meta.className = "meta";
  const time = document.createElement("time");
  time.dateTime = new Date(m.ts).toISOString();
  time.textContent = new Date(m.ts).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  meta.append(time);
  if (m.edited_at && !m.deleted) {
    const edited = document.createElement("span");
    edited.className = "edited";
    edited.textContent = "edited";
    meta.append(edited);
  }
  if (mine) meta.append(ticks(m, conv));
  if (mine && m.id && !m.deleted) meta.append(actions(m));
  li.append(who, text, meta);
  if (m.error) {
    const error = document.createElement("p");
    error.className = "error";
    error.textContent = m.error;
    li.append(error);
  }
  return li;
}

function ticks(m, conv) {
  const span = document.createElement("span");
  span.className = "ticks";
  let status;
  let label;
  if (m.error) {
    status = "failed";
    label = "not sent";
  } else if (!m.id) {
    const connected = app.client && app.client.state === "open";
    status = "pending";
    label = connected ? "sending…" : "waiting for the connection…";
  } else if (conv && conv.kind === "private" && conv.peerReadUpto && m.id <= conv.peerReadUpto) {
    status = "read";
    label = "✓✓ read";
  } else if (conv && conv.kind === "group") {
    const reads = app.groupReads.get(conv.groupId);
    const readers = reads ? [...reads.values()].filter((upto) => upto >= m.id).length : 0;
    status = readers ? "read" : "sent";
    label = readers ? `✓✓ read by ${readers}` : "✓ sent";
  } else if (m.status === Code.STORED_OFFLINE) {
    status = "offline";
    label = `✓ sent; ${conv ? conv.name : "the recipient"} is offline and gets it when back`;
  } else {
    status = "sent";
    label = "✓ sent";
  }
  span.dataset.status = status;
  if (status === "read") span.classList.add("read");
  span.textContent = label;
  return span;
}

function actions(m) {
  const box = document.createElement("span");
  box.className = "actions";
  const edit = document.createElement("button");
  edit.type = "button";
  edit.className = "quiet edit";
  edit.textContent = "Edit";
  edit.setAttribute("aria-label", "Edit this message");
  edit.addEventListener("click", () => startEdit(m));
  const del = document.createElement("button");
  del.type = "button";
  del.className = "quiet delete";
  del.textContent = "Delete";
  del.setAttribute("aria-label", "Delete this message");
  del.addEventListener("click", () => {
    if (del.dataset.armed) {
      deleteMessage(m);
    } else {
      del.dataset.armed = "1";
      del.textContent = "Really delete?";
    }
  });
  box.append(edit, del);
  return box;
}

function renderTyping() {
  const el = $("typing");
  const senders = app.open ? app.typing.get(app.open) : null;
  const who = senders ? [...senders.keys()] : [];
  el.textContent = who.length
    ? `${who.map((u) => `User ${u}`).join(", ")} ${who.length > 1 ? "are" : "is"} typing…`
    : "";
}

async function markRead(key) {
  if (app.open !== key || document.visibilityState !== "visible" || !app.client) return;
  const conv = app.convs.get(key);
  const t = app.threads.get(key);
  let newest = null;
  if (t) {
    for (const m of t.items.values()) {
      if (Number(m.sender_id) !== app.me && (!newest || m.id > newest)) newest = m.id;
    }
  }
  if (conv && conv.last && Number(conv.last.sender_id) !== app.me && (!newest || conv.last.id > newest)) {
    newest = conv.last.id;
  }
  if (conv && conv.readSending === newest) return;
  if (!conv || !newest || (conv.readUpto && newest <= conv.readUpto)) {
    if (conv && conv.unread) {
      conv.unread = 0;
      renderList();
    }
    return;
  }
  conv.readSending = newest;
  try {
    await app.client.markRead(newest);
    conv.readUpto = maxId(conv.readUpto, newest);
    conv.unread = 0;
    renderList();
  } catch (err) {
    if (err.code) notify(describe(err.code, err.reason, err.frame));
  } finally {
    if (conv.readSending === newest) conv.readSending = null;
  }
}

// ---- sending, editing, deleting ------------------------------------------------------------

async function onSubmit(event) {
  event.preventDefault();
  const input = $("composer-input");
  const text = input.value.trim();
  const key = app.open;
  if (!text || !key || !app.client) return;
  input.value = "";
  stopTyping();
  if (app.editing) {
    const message = app.editing;
    cancelEdit();
    try {
      const ack = await app.client.edit(message.id, text);
      Object.assign(message, { content: text, edited_at: ack.edited_at });
      const conv = app.convs.get(key);
      if (conv && conv.last && conv.last.id === message.id) conv.last.preview = text.slice(0, 100);
      renderList();
      if (app.open === key) renderMessages({});
    } catch (err) {
      notify(describe(err.code, err.reason, err.frame));
    }
    return;
  }
  const clientMsgId = randomId("c-");
  const t = thread(key);
  const to = target(key);
  const pending = {
    client_msg_id: clientMsgId,
    sender_id: app.me,
    content: text,
    ts: Date.now(),
    ...(to.groupId !== undefined ? { group_id: to.groupId } : { recipient_id: to.userId }),
  };
  t.pending.set(clientMsgId, pending);
  renderMessages({ stick: true });
  try {
    const ack =
      to.groupId !== undefined
        ? await app.client.sendGroup(to.groupId, text, clientMsgId)
        : await app.client.sendPrivate(to.userId, text, clientMsgId);
    t.pending.delete(clientMsgId);
    const message = { ...pending, id: ack.id, ts: ack.ts, status: ack.code };
    t.items.set(ack.id, message);
    const conv = ensureConv(key);
    if (!conv.last || ack.id >= conv.last.id) {
      conv.last = { id: ack.id, sender_id: app.me, preview: text.slice(0, 100), ts: ack.ts };
    }
    renderList();
  } catch (err) {
    pending.error = describe(err.code, err.reason, err.frame, key);
    notify(pending.error);
  }
  if (app.open === key) renderMessages({ stick: true });
}

function startEdit(message) {
  app.editing = message;
  $("editing").hidden = false;
  const input = $("composer-input");
  input.value = message.content;
  input.focus();
}

function cancelEdit() {
  app.editing = null;
  $("editing").hidden = true;
  $("composer-input").value = "";
}

async function deleteMessage(message) {
  const key = app.open;
  try {
    const ack = await app.client.deleteMessage(message.id);
    Object.assign(message, { content: "", deleted: true, deleted_at: ack.deleted_at });
    const conv = app.convs.get(key);
    if (conv && conv.last && conv.last.id === message.id) {
      conv.last.preview = "";
      conv.last.deleted = true;
    }
    renderList();
    if (app.open === key) renderMessages({});
  } catch (err) {
    notify(describe(err.code, err.reason, err.frame));
  }
}

/** While the user types: a "start" now and every 3 s (no sooner: the server refuses a
 *  second one within 3 s with 4291, even after a "stop"). */
function onInput() {
  const key = app.open;
  if (!key || app.editing || !app.client) return;
  const empty = $("composer-input").value.trim() === "";
  if (empty) {
    stopTyping();
    return;
  }
  const since = Date.now() - (app.typingAt.get(key) || 0);
  if (since >= TYPING_EVERY_MS) {
    clearTimeout(app.typingTimer);
    app.typingTimer = null;
    if (app.client.typing(target(key), "start")) {
      app.typingAt.set(key, Date.now());
      app.typingIn = key;
    }
  } else if (app.typingIn !== key) {
    // The server counts from when it forwarded the last one: leave a margin.
    typingLater(TYPING_EVERY_MS + 250 - since);
  }
}

function typingLater(delay) {
  if (app.typingTimer) return;
  app.typingTimer = setTimeout(() => {
    app.typingTimer = null;
    onInput();
  }, delay);
}

/** A "start" refused as too soon (4291): sent again when the server takes one. */
function onTypingTooSoon(frame) {
  const key = frame.group_id !== undefined ? `g:${frame.group_id}` : `u:${frame.recipient_id}`;
  if (app.typingIn === key) app.typingIn = null;
  if (app.open === key) typingLater((Number(frame.retry_after_ms) || 500) + 50);
}

function stopTyping() {
  clearTimeout(app.typingTimer);
  app.typingTimer = null;
  const key = app.typingIn;
  app.typingIn = null;
  if (key && app.client) app.client.typing(target(key), "stop");
}

// ---- groups --------------------------------------------------------------------------------

async function createGroup(event) {
  event.preventDefault();
  const name = $("new-group-name").value.trim();
  const raw = $("new-group-members").value.trim();
  const members = raw ? raw.split(/[\s,]+/).filter(Boolean) : [];
  const bad = members.find((m) => !/^[1-9][0-9]*$/.test(m));
  if (bad) {
    notify(`Members must be user ids (positive integers): "${bad}" is not one.`);
    return;
  }
  try {
    const group = await app.client.createGroup({ name, members });
    const conv = ensureConv(`g:${group.id}`, group);
    conv.name = group.name;
    $("new-group-name").value = "";
    $("new-group-members").value = "";
    renderList();
    openChat(conv.key);
  } catch (err) {
    notify(`Could not create the group: ${err.message}`);
  }
}

async function toggleMembers() {
  const panel = $("members");
  const show = panel.hidden;
  panel.hidden = !show;
  $("members-toggle").setAttribute("aria-expanded", String(show));
  if (show) await loadMembers();
}

async function loadMembers() {
  const key = app.open;
  if (!key || !key.startsWith("g:")) return;
  const groupId = key.slice(2);
  let group;
  let members;
  try {
    [group, { members }] = await Promise.all([app.client.group(groupId), app.client.members(groupId)]);
  } catch (err) {
    notify(`Could not load the members: ${err.message}`);
    return;
  }
  if (app.open !== key) return;
  app.group = group;
  const owner = Number(group.owner_id) === app.me;
  const list = $("member-list");
  list.replaceChildren();
  for (const id of members) {
    const li = document.createElement("li");
    const name = document.createElement("span");
    name.textContent = `User ${id}${Number(id) === Number(group.owner_id) ? " (owner)" : ""}`;
    li.append(name);
    if (owner && Number(id) !== app.me) {
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "quiet small";
      remove.textContent = "Remove";
      remove.setAttribute("aria-label", `Remove user ${id} from the group`);
      remove.addEventListener("click", async () => {
        try {
          await app.client.removeMember(groupId, id);
          loadMembers();
        } catch (err) {
          notify(`Could not remove user ${id}: ${err.message}`);
        }
      });
      li.append(remove);
    }
    list.append(li);
  }
  $("add-member").hidden = !owner;
  $("delete-group").hidden = !owner;
  $("leave-group").hidden = owner;
}

async function addMember(event) {
  event.preventDefault();
  const key = app.open;
  const user = $("add-member-user").value;
  try {
    await app.client.addMember(key.slice(2), user);
    $("add-member-user").value = "";
    loadMembers();
  } catch (err) {
    notify(`Could not add user ${user}: ${err.message}`);
  }
}

async function leaveOrDelete(remove) {
  const key = app.open;
  if (!key) return;
  try {
    if (remove) await app.client.deleteGroup(key.slice(2));
    else await app.client.leaveGroup(key.slice(2));
  } catch (err) {
    notify(`Could not ${remove ? "delete" : "leave"} the group: ${err.message}`);
    return;
  }
  app.convs.delete(key);
  app.threads.delete(key);
  closeChat();
  loadConversations();
}

// ---- notices -------------------------------------------------------------------------------

/** A sentence for a refusal or failure: what happened and what to do. */
function describe(code, reason, frame, key = app.open) {
  const peer = key && key.startsWith("u:") ? `user ${key.slice(2)}` : "the recipient";
  switch (code) {
    case Code.STRANGER_LIMIT:
      return `Not sent: ${peer} has not answered you yet, and you may send only a few messages to someone who has not written to you. Wait for an answer, or follow each other.`;
    case Code.NOT_ALLOWED:
      return `Not allowed: ${reason}.`;
    case Code.NOT_FOUND:
      return `Not found: ${reason}.`;
    case Code.EDIT_WINDOW:
      return `Too late to change that message: ${reason}.`;
    case Code.TOO_LONG:
      return "Not sent: the message is too long (at most 4096 bytes). Shorten it and send it again.";
    case Code.RATE_LIMITED:
      return `You are sending too fast: the gateway dropped a frame. It is sent again in ${(frame && frame.retry_after_ms) || 50} ms.`;
    case Code.TYPING_TOO_FAST:
      return `Typing notices are limited to one every 3 seconds per conversation (next in ${(frame && frame.retry_after_ms) || 0} ms).`;
    case Code.STORAGE_UNAVAILABLE:
      return frame && frame.client_msg_id
        ? "The gateway could not store the message (storage unavailable): retrying with the same id, so it is never stored twice."
        : "The gateway's storage is unavailable: try again in a moment.";
    case Code.BAD_FRAME:
      return `The gateway refused the request: ${reason}.`;
    case 0:
      return `Not sent: ${reason}.`;
    default:
      return `${reason || "Something went wrong"} (code ${code}).`;
  }
}

let noticeTimer = null;
function notify(text, kind = "error") {
  const box = $("notice");
  box.dataset.kind = kind;
  $("notice-text").textContent = text;
  box.hidden = false;
  clearTimeout(noticeTimer);
  if (kind === "info") noticeTimer = setTimeout(() => (box.hidden = true), 8000);
}

function maxId(a, b) {
  if (!a) return b || null;
  if (!b) return a;
  return a > b ? a : b;
}

// ---- wiring --------------------------------------------------------------------------------

function wireStatic() {
  $("dev-form").addEventListener("submit", (e) => {
    e.preventDefault();
    signInAs($("dev-user").value);
  });
  for (const pick of document.querySelectorAll(".pick")) {
    pick.addEventListener("click", () => signInAs(pick.dataset.user));
  }
  $("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    sessionStorage.removeItem(DEV_KEY);
    start($("token-input").value.trim());
  });
  $("sign-out").addEventListener("click", signOut);
  $("notice-close").addEventListener("click", () => ($("notice").hidden = true));
  $("composer").addEventListener("submit", onSubmit);
  $("composer-input").addEventListener("input", onInput);
  $("composer-input").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) {
      e.preventDefault();
      $("composer").requestSubmit();
    } else if (e.key === "Escape" && app.editing) {
      cancelEdit();
    }
  });
  $("edit-cancel").addEventListener("click", cancelEdit);
  $("messages").addEventListener("scroll", () => {
    if ($("messages").scrollTop < 60) loadOlder();
  });
  $("back").addEventListener("click", closeChat);
  $("new-chat").addEventListener("submit", (e) => {
    e.preventDefault();
    const user = Number($("new-chat-user").value);
    if (!Number.isSafeInteger(user) || user <= 0) {
      notify("A user id is a positive integer.");
      return;
    }
    if (user === app.me) {
      notify("That is you: pick another user id.");
      return;
    }
    $("new-chat-user").value = "";
    openChat(`u:${user}`);
    renderList();
  });
  $("new-group").addEventListener("submit", createGroup);
  $("members-toggle").addEventListener("click", toggleMembers);
  $("add-member").addEventListener("submit", addMember);
  $("leave-group").addEventListener("click", () => leaveOrDelete(false));
  $("delete-group").addEventListener("click", () => leaveOrDelete(true));
  document.addEventListener("visibilitychange", () => {
    if (app.open) markRead(app.open);
  });
}

boot();
