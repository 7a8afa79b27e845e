import type { Browser, BrowserContext } from "@playwright/test";
import { test, expect, joined, ChatPage, UI, expectNoSeriousViolations, screenshot, type ServerHandle } from "./ui-helpers";

// The tabs of one browser: one stream for all of them (the leading tab's, relayed to the others
// over a BroadcastChannel), a new leader when the leader closes, and tabs that agree on who
// the viewer is and which rooms they follow.

/** The server's count of open event streams, from `GET /metrics`. */
async function streamsOpen(server: ServerHandle): Promise<number> {
  const response = await fetch(`${server.url}/metrics`);
  const text = await response.text();
  const line = text.split("\n").find((l) => l.startsWith("ssechat_streams_open "));
  expect(line, "ssechat_streams_open in /metrics").toBeTruthy();
  return Number(line!.split(" ")[1]);
}

/** Opens another tab of `context` on the chat, hydrated. */
async function openTab(context: BrowserContext, label: string, path = "/"): Promise<ChatPage> {
  const tab = new ChatPage(context, await context.newPage(), label);
  await tab.page.goto(path);
  await tab.waitForHydration();
  return tab;
}

/** A browser (context) with `count` tabs of the chat, joined as `name` in the first. */
async function browserWithTabs(browser: Browser, server: ServerHandle, name: string, count: number): Promise<ChatPage[]> {
  const context = await browser.newContext({ baseURL: server.url });
  const first = await openTab(context, `${name} tab 1`);
  await first.join(name);
  const tabs = [first];
  for (let i = 2; i <= count; i++) {
    const tab = await openTab(context, `${name} tab ${i}`);
    // A stored name: every new tab is the same user, at once.
    await tab.expectLive();
    await expect(tab.ownUser()).toContainText(name);
    tabs.push(tab);
  }
  return tabs;
}

/** The tabs that hold the browser's stream. */
async function leaders(tabs: ChatPage[]): Promise<ChatPage[]> {
  const roles = await Promise.all(tabs.map((tab) => tab.page.locator("body").getAttribute("data-tab-role")));
  return tabs.filter((_, i) => roles[i] === "leading");
}

test.describe("ten tabs of one browser", () => {
  test.setTimeout(120_000);

  test("share one stream, each shows every message once, post from any tab, and survive the leader closing", async ({
    browser,
    server,
    openChat,
  }, testInfo) => {
    const tabs = await browserWithTabs(browser, server, "Alice", 10);
    try {
      await expect.poll(() => leaders(tabs).then((l) => l.length), { message: "one leading tab" }).toBe(1);
      await expect(tabs[0].page.locator("body")).toHaveAttribute("data-tab-role", "leading");
      for (const tab of tabs.slice(1)) await expect(tab.page.locator("body")).toHaveAttribute("data-tab-role", "following");
      // One stream for the whole browser, however many tabs.
      await expect.poll(() => streamsOpen(server), { message: "streams open for ten tabs" }).toBe(1);

      const bob = await joined(openChat, "Bob");
      await expect.poll(() => streamsOpen(server)).toBe(2);
      const texts = ["one from Bob", "two from Bob", "three from Bob"];
      for (const text of texts) {
        await bob.send(text);
        await bob.expectMessage(text, "Bob", true);
      }
      // The tenth tab posts directly: no stream of its own, no hanging request.
      await tabs[9].send("from the tenth tab");
      await bob.expectMessage("from the tenth tab", "Alice", false);
      for (const tab of tabs) {
        for (const text of texts) await tab.expectMessage(text, "Bob", false);
        await tab.expectMessage("from the tenth tab", "Alice", true);
        await expect(tab.users, `${tab.label}: Alice and Bob`).toHaveCount(2);
      }
      await expectNoSeriousViolations(tabs[9].page, testInfo, "a following tab");

      // The leader closes; Bob keeps talking meanwhile. Another tab takes over and resumes
      // after the last message relayed: nothing lost, nothing twice.
      await tabs[0].page.close();
      const rest = tabs.slice(1);
      const during = ["while the leader goes 1", "while the leader goes 2", "while the leader goes 3"];
      for (const text of during) await bob.send(text);
      await expect.poll(() => leaders(rest).then((l) => l.length), { message: "a new leader", timeout: 5_000 }).toBe(1);
      for (const text of ["after the handover 1", "after the handover 2"]) await bob.send(text);
      const all = [...texts, ...during, "after the handover 1", "after the handover 2"];
      for (const tab of rest) {
        for (const text of all) await tab.expectMessage(text, "Bob", false);
        await tab.expectMessage("from the tenth tab", "Alice", true);
        await expect(tab.messages, `${tab.label}: every message once`).toHaveCount(all.length + 1);
        await tab.expectLive();
      }
      await expect.poll(() => streamsOpen(server), { message: "Bob's stream and the new leader's" }).toBe(2);
      // Nobody saw Alice leave: the new leader's stream took over within the grace period.
      await expect(bob.notice(/Alice left/)).toHaveCount(0);
      await screenshot(rest[0].page, testInfo, "tabs-after-the-leader-closed");
    } finally {
      await tabs[0].context.close();
    }
  });
});

test("a rename, a room joined and leaving in one tab show in every tab", async ({ browser, server, openChat }) => {
  const tabs = await browserWithTabs(browser, server, "Alice", 3);
  try {
    const bob = await joined(openChat, "Bob");
    await expect(tabs[0].users).toHaveCount(2);

    // Rename in a following tab: every tab takes the new name, with no "in use" error.
    const follower = tabs[1];
    await follower.page.locator(UI.accountButton).click();
    await follower.page.getByLabel("New name", { exact: true }).fill("Alicia");
    await follower.page.locator(UI.renameForm).getByRole("button", { name: "Change name" }).click();
    for (const tab of tabs) {
      await tab.expectLive();
      await expect(tab.ownUser(), `${tab.label}: the new name`).toContainText("Alicia");
      await expect(tab.connectionError).toHaveCount(0);
    }
    await expect(bob.users.filter({ hasText: "Alicia" })).toHaveCount(1);
    await tabs[2].send("said as Alicia");
    for (const tab of tabs) await tab.expectMessage("said as Alicia", "Alicia", true);
    await bob.expectMessage("said as Alicia", "Alicia", false);

    // A room joined in one tab is followed in all; its messages reach every tab.
    await tabs[2].page.getByLabel("Join or create a room", { exact: true }).fill("dev");
    await tabs[2].page.locator('form[data-testid="join-room"]').getByRole("button", { name: "Join" }).click();
    await expect(tabs[2].page).toHaveURL(/\/r\/dev$/);
    for (const tab of tabs) {
      await expect(tab.page.locator('[data-testid="room-list"] li[data-testid="room"][data-room="dev"]'), `${tab.label}: dev in the sidebar`).toHaveCount(1);
    }
    await bob.page.goto("/r/dev");
    await bob.waitForHydration();
    await bob.expectLive();
    await expect(bob.users.filter({ hasText: "Alicia" })).toHaveCount(1);
    const origin = new URL(bob.page.url()).origin;
    const posted = await bob.context.request.post(`${origin}/message`, { data: { message: "news in dev", room: "dev" } });
    expect(posted.status()).toBe(200);
    await tabs[2].expectMessage("news in dev", "Bob", false);
    await expect(tabs[0].page.locator('li[data-room="dev"] [data-testid="room-unread"]')).toHaveText(/^1\b/);

    // Leaving in one tab leaves in all.
    await tabs[0].page.locator(UI.accountButton).click();
    await tabs[0].page.locator(UI.leaveButton).click();
    for (const tab of tabs) await expect(tab.joinForm, `${tab.label}: back to the join form`).toBeVisible();
    await expect(bob.notice(/Alicia left/)).toHaveCount(1);
  } finally {
    await tabs[0].context.close();
  }
});
