// The web app in headless Chromium against a real gateway: two users chat, one goes
// offline and comes back, a group of three, typing, edit and delete, a gateway restart
// behind the pages. Each scenario takes its own users; a screenshot of each step goes to
// the artifacts dir (target/browser-artifacts).

import assert from "node:assert/strict";
import { copyFileSync, mkdirSync } from "node:fs";
import { after, before, test } from "node:test";
import {
  audit,
  connected,
  entry,
  launch,
  message,
  newPage,
  openChatWith,
  send,
  shot,
  signIn,
  textOf,
} from "./support/browser.js";
import { Gateway } from "./support/gateway.js";
import { eventually } from "./support/wait.js";

let browser;
let gateway;

before(async () => {
  gateway = await new Gateway("app").start();
  browser = await launch();
});

after(async () => {
  if (browser) await browser.close();
  if (gateway) await gateway.stop();
});

/** Two fresh contexts (separate storage, as two people's browsers) signed in as a and b. */
async function pair(a, b, url = gateway.url) {
  const ctxA = await browser.newContext();
  const ctxB = await browser.newContext();
  const pageA = await signIn(ctxA, url, a);
  const pageB = await signIn(ctxB, url, b);
  return { ctxA, ctxB, pageA, pageB };
}

function noProblems(...pages) {
  for (const page of pages) assert.deepEqual(page.problems, [], "console errors or CSP refusals");
}

test("the gateway prints the URL to open", () => {
  assert.match(gateway.printed(), new RegExp(`open http://127\\.0\\.0\\.1:${gateway.port}/ in a browser`));
});

test("sign-in page is accessible and the app works at phone width", async () => {
  const ctx = await browser.newContext({ viewport: { width: 375, height: 740 } });
  const page = await newPage(ctx);
  await page.goto(`${gateway.url}/`);
  await page.locator("#dev-form").waitFor();
  assert.deepEqual(await audit(page), [], "axe: sign-in page");
  await shot(page, "sign-in-phone");
  await page.getByRole("button", { name: "User 1", exact: true }).click();
  await connected(page);
  // One pane at a time: the list, then the chat with a way back.
  await openChatWith(page, 2);
  assert.equal(await page.locator("#sidebar").isVisible(), false);
  await page.getByRole("button", { name: "Back to the conversations" }).click();
  await page.locator("#sidebar").waitFor({ state: "visible" });
  assert.deepEqual(await audit(page), [], "axe: conversation list at phone width");
  await shot(page, "list-phone");
  noProblems(page);
  await ctx.close();
});

test("two users chat: live messages, unread badge, read ticks", async () => {
  const { ctxA, ctxB, pageA, pageB } = await pair(101, 102);
  await openChatWith(pageA, 102);
  await send(pageA, "hello from 101");
  const mine = message(pageA, "hello from 101");
  await mine.locator('.ticks[data-status="sent"]').waitFor();
  await shot(pageA, "chat-a-sent");

  // B's list shows the new conversation, live, with one unread and the preview.
  const inList = entry(pageB, "u:101");
  await textOf(inList.locator(".badge"), "1", "B's unread badge");
  await textOf(inList.locator(".preview"), "hello from 101", "B's preview");
  await shot(pageB, "chat-b-unread");

  await inList.click();
  await message(pageB, "hello from 101").waitFor();
  // B reading it clears B's badge and draws A's read ticks.
  await inList.locator(".badge").waitFor({ state: "hidden" });
  await mine.locator('.ticks[data-status="read"]').waitFor();
  await send(pageB, "hi 101, 102 here");
  await message(pageA, "hi 101, 102 here").waitFor();
  await shot(pageA, "chat-a-reply");
  assert.deepEqual(await audit(pageA), [], "axe: chat view");
  if (process.env.UPDATE_DOCS_SCREENSHOT) {
    const file = await shot(pageA, "docs-web-app");
    mkdirSync(new URL("../../docs/img/", import.meta.url), { recursive: true });
    copyFileSync(file, new URL("../../docs/img/web-app.png", import.meta.url));
  }
  noProblems(pageA, pageB);
  await ctxA.close();
  await ctxB.close();
});

test("offline and back: unread counts and the missed messages", async () => {
  const { ctxA, ctxB, pageA, pageB } = await pair(111, 112);
  await openChatWith(pageA, 112);
  await send(pageA, "before you go");
  await entry(pageB, "u:111").click();
  await message(pageB, "before you go").waitFor();
  await send(pageB, "bye for now");
  await message(pageA, "bye for now").waitFor();

  // B closes its tab (its device id stays in the context's localStorage).
  await pageB.close();
  await eventually(async () => (await gateway.online(112)) === false, { message: "user 112 offline" });
  await send(pageA, "missed one");
  await send(pageA, "missed two");
  // Stored, recipient offline: the tick says so.
  await message(pageA, "missed two").locator('.ticks[data-status="offline"]').waitFor();
  await textOf(message(pageA, "missed two").locator(".ticks"), "offline", "the offline tick");
  await shot(pageA, "offline-a-sent-while-b-away");

  const back = await signIn(ctxB, gateway.url, 112);
  const inList = entry(back, "u:111");
  await textOf(inList.locator(".badge"), "2", "two unread after coming back");
  await textOf(inList.locator(".preview"), "missed two", "the last message as preview");
  await shot(back, "offline-b-back-unread");
  await inList.click();
  await message(back, "missed one").waitFor();
  await message(back, "missed two").waitFor();
  assert.equal(await message(back, "missed one").count(), 1);
  await shot(back, "offline-b-reads-missed");
  noProblems(pageA, back);
  await ctxA.close();
  await ctxB.close();
});

test("a group of three", async () => {
  const ctxs = [await browser.newContext(), await browser.newContext(), await browser.newContext()];
  const [a, b, c] = [
    await signIn(ctxs[0], gateway.url, 121),
    await signIn(ctxs[1], gateway.url, 122),
    await signIn(ctxs[2], gateway.url, 123),
  ];
  await a.locator("#new-group-name").fill("Trio");
  await a.locator("#new-group-members").fill("122, 123");
  await a.getByRole("button", { name: "Create group", exact: true }).click();
  await a.locator("#chat-title").getByText("Trio").waitFor();
  const key = await a.locator('.conversation[aria-current="true"]').getAttribute("data-key");
  assert.match(key, /^g:/);

  // The others see the group appear (2800 joined) and open it.
  for (const page of [b, c]) {
    await textOf(entry(page, key).locator(".name"), "Trio", "the group in the list");
    await entry(page, key).click();
  }
  await send(a, "hi trio");
  await message(b, "hi trio").waitFor();
  await message(c, "hi trio").waitFor();
  await send(c, "hello from 123");
  await message(a, "hello from 123").waitFor();
  await message(b, "hello from 123").waitFor();
  // Read ticks of the group: both others have the chat open and read it.
  await textOf(message(a, "hi trio").locator(".ticks"), "read by 2", "read by both members");

  // Member management: the owner sees three members, removes one; the removed one loses it.
  await a.getByRole("button", { name: "Members", exact: true }).click();
  await textOf(a.locator("#member-list"), (t) => ["User 121", "User 122", "User 123"].every((u) => t.includes(u)), "three members");
  await shot(a, "group-a-members");
  assert.deepEqual(await audit(a), [], "axe: group with members panel");
  await a.getByRole("button", { name: "Remove user 123 from the group" }).click();
  await textOf(a.locator("#member-list"), (t) => !t.includes("User 123"), "123 removed");
  await entry(c, key).waitFor({ state: "detached" });
  await shot(c, "group-c-removed");
  await send(a, "just us two");
  await message(b, "just us two").waitFor();
  assert.equal(await message(c, "just us two").count(), 0);
  noProblems(a, b, c);
  for (const ctx of ctxs) await ctx.close();
});

test("typing shows and clears", async () => {
  const { ctxA, ctxB, pageA, pageB } = await pair(131, 132);
  await openChatWith(pageA, 132);
  await send(pageA, "are you there?");
  await entry(pageB, "u:131").click();
  await message(pageB, "are you there?").waitFor();

  await pageA.locator("#composer-input").pressSequentially("typing a reply");
  await textOf(pageB.locator("#typing"), "User 131 is typing", "the typing indicator");
  await shot(pageB, "typing-shown");
  await pageA.locator("#composer-input").fill("");
  await pageA.locator("#composer-input").dispatchEvent("input");
  await textOf(pageB.locator("#typing"), (t) => t === "", "the indicator cleared on stop");

  // Typing then sending clears it too.
  await pageA.locator("#composer-input").pressSequentially("x");
  await textOf(pageB.locator("#typing"), "User 131 is typing", "typing again");
  await pageA.locator("#composer-input").fill("sent now");
  await pageA.locator("#composer-input").press("Enter");
  await message(pageB, "sent now").waitFor();
  await textOf(pageB.locator("#typing"), (t) => t === "", "the indicator cleared by the message");
  await shot(pageB, "typing-cleared");
  noProblems(pageA, pageB);
  await ctxA.close();
  await ctxB.close();
});

test("an edit and a delete propagate", async () => {
  const { ctxA, ctxB, pageA, pageB } = await pair(141, 142);
  await openChatWith(pageA, 142);
  await send(pageA, "original text");
  await send(pageA, "to be deleted");
  await entry(pageB, "u:141").click();
  await message(pageB, "to be deleted").waitFor();

  const original = message(pageA, "original text");
  await original.getByRole("button", { name: "Edit this message" }).click();
  await pageA.locator("#editing").waitFor();
  await pageA.locator("#composer-input").fill("edited text");
  await pageA.locator("#composer-input").press("Enter");
  const edited = message(pageB, "edited text");
  await edited.waitFor();
  await textOf(edited.locator(".meta"), "edited", "the edited marker");
  assert.equal(await message(pageB, "original text").count(), 0);
  await shot(pageB, "edit-seen-by-b");

  const doomed = message(pageA, "to be deleted");
  await doomed.getByRole("button", { name: "Delete this message" }).click();
  await doomed.getByRole("button", { name: "Delete this message" }).click();
  await message(pageB, "This message was deleted").waitFor();
  assert.equal(await message(pageB, "to be deleted").count(), 0);
  await message(pageA, "This message was deleted").waitFor();
  await shot(pageB, "delete-seen-by-b");
  noProblems(pageA, pageB);
  await ctxA.close();
  await ctxB.close();
});

test("a gateway restart behind the pages loses no message", async () => {
  const own = await new Gateway("restart").start();
  try {
    const { ctxA, ctxB, pageA, pageB } = await pair(151, 152, own.url);
    await openChatWith(pageA, 152);
    await send(pageA, "before the restart");
    await entry(pageB, "u:151").click();
    await message(pageB, "before the restart").waitFor();
    await send(pageB, "ack'd before the crash");
    await message(pageA, "ack'd before the crash").waitFor();

    await own.kill();
    for (const page of [pageA, pageB]) {
      await textOf(page.locator("#connection"), "Reconnecting", "the page shows it is reconnecting");
    }
    // Sent while the gateway is down: held by the client, shown as waiting.
    await send(pageA, "sent while down");
    await textOf(message(pageA, "sent while down").locator(".ticks"), "waiting for the connection", "a waiting send");
    await shot(pageA, "restart-a-waiting");

    // Same port, same file; a new random dev secret, so the pages get fresh tokens.
    await own.start();
    await connected(pageA, 30000);
    await connected(pageB, 30000);
    await message(pageA, "sent while down").locator('.ticks[data-status="read"], .ticks[data-status="sent"]').waitFor({ timeout: 15000 });
    await message(pageB, "sent while down").waitFor({ timeout: 15000 });
    await shot(pageB, "restart-b-got-it");
    // Exactly once on each side, and nothing from before is lost.
    for (const page of [pageA, pageB]) {
      assert.equal(await message(page, "sent while down").count(), 1);
      assert.equal(await message(page, "before the restart").count(), 1);
      assert.equal(await message(page, "ack'd before the crash").count(), 1);
    }
    const history = await own.api(152, "GET", "/api/conversations");
    assert.equal(history.status, 200);
    assert.equal(history.body.conversations[0].last_message.preview, "sent while down");
    noProblems(pageA, pageB);
    await ctxA.close();
    await ctxB.close();
  } finally {
    await own.stop();
  }
});
