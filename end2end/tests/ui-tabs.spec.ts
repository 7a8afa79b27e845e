import type { Browser, BrowserContext } from "@playwright/test";
import { test, expect, joined, askToJoinRoom, holdStreamsNaming, postAs, streamsOpen, ChatPage, UI, expectNoSeriousViolations, screenshot, type ServerHandle } from "./ui-helpers";

// The tabs of one browser: one stream for all of them (the leading tab's, relayed to the others
// over a BroadcastChannel), a new leader when the leader closes, and tabs that agree on who
// the viewer is and which rooms they follow.

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
  // Ten wasm pages in one test: 72 s beside another test on two cores, so twice the default.
  test.setTimeout(240_000);
  // What is tested is that a handover inside the grace period shows no leave, not how fast it
  // is: the tests' grace period (300 ms) is shorter than a handover on a loaded machine, so
  // this one has the protocol's default.
  test.use({ serverArgs: ["--leave-grace-ms", "3000"] });

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
    await askToJoinRoom(tabs[2], "dev");
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

    // Joining again in a following tab: the leader opens the stream, every tab shows it.
    await tabs[1].join("Alina");
    for (const tab of tabs) {
      await tab.expectLive();
      await expect(tab.ownUser(), `${tab.label}: joined again`).toContainText("Alina");
    }
    await expect(bob.users.filter({ hasText: "Alina" })).toHaveCount(1);
  } finally {
    await tabs[0].context.close();
  }
});

test("a tab that starts while the leader's stream for a new room is still opening waits for it before posting there", async ({
  browser,
  server,
}) => {
  const [leader] = await browserWithTabs(browser, server, "Alice", 1);
  const context = leader.context;
  try {
    await postAs(leader, ["before the new room"]);
    await leader.expectMessage("before the new room", "Alice", true);
    const stream = await holdStreamsNaming(context, "slow");
    await askToJoinRoom(leader, "slow");
    await expect(leader.page).toHaveURL(/\/r\/slow$/);
    await expect.poll(stream.held, { message: "the leader asked for the stream that names slow" }).toBeGreaterThan(0);

    // The new tab starts from the leader's snapshot (general's message shows it came), which
    // must not say it is in slow: the server does not know yet.
    const second = await openTab(context, "Alice tab 2");
    await expect(second.page.locator("body")).toHaveAttribute("data-tab-role", "following");
    await second.expectMessage("before the new room", "Alice", true);
    await second.page.locator('[data-testid="room-list"] a[href="/r/slow"]').click();
    await expect(second.page.locator('[data-testid="room-title"]')).toHaveText("# slow");
    await expect(second.composer).toHaveAttribute("data-in-room", "false");
    await second.composerInput.fill("from the second tab");
    await expect(second.sendButton).toBeDisabled();

    // The leader's stream opens: its all-users for slow, relayed, lets the new tab post.
    stream.release();
    await expect(second.composer).toHaveAttribute("data-in-room", "true");
    await second.sendButton.click();
    await second.expectMessage("from the second tab", "Alice", true);
    await expect(leader.page.locator('[data-testid="room-title"]')).toHaveText("# slow");
    await leader.expectMessage("from the second tab", "Alice", true);
    await expect(second.composerError).toHaveCount(0);
  } finally {
    await context.close();
  }
});

/** A notification a page raised, as the stand-in below saw it. */
interface Raised {
  page: import("@playwright/test").Page;
  title: string;
  body: string;
}

/**
 * A browser whose `Notification` is a stand-in that records what the chat raises (headless
 * Chromium shows nothing to look at). Its permission lives in the context's localStorage, so
 * every tab sees one answer, as with the real one; it starts unasked.
 */
async function browserWithNotifications(browser: Browser, server: ServerHandle): Promise<{ context: BrowserContext; raised: Raised[] }> {
  const context = await browser.newContext({ baseURL: server.url });
  const raised: Raised[] = [];
  await context.exposeBinding("__ssechatRaised", ({ page }, title: string, body: string) => {
    raised.push({ page, title, body });
  });
  await context.addInitScript(() => {
    const w = window as unknown as Record<string, unknown>;
    class StandIn {
      onclick: (() => void) | null = null;
      static get permission(): string {
        return localStorage.getItem("test.permission") ?? "default";
      }
      static requestPermission(): Promise<string> {
        w.__asked = ((w.__asked as number) ?? 0) + 1;
        localStorage.setItem("test.permission", "granted");
        return Promise.resolve("granted");
      }
      constructor(title: string, options?: { body?: string }) {
        w.__lastNotification = this;
        void (w.__ssechatRaised as (t: string, b: string) => Promise<void>)(title, options?.body ?? "");
      }
      close(): void {}
    }
    w.Notification = StandIn;
  });
  return { context, raised };
}

/** The notifications raised so far whose body contains `text`. */
function raisedFor(raised: Raised[], text: string): Raised[] {
  return raised.filter((r) => r.body.includes(text));
}

test("notifications: asked from a button, one per browser for a mention while every tab is hidden, none while one is seen; a click opens the message", async ({
  browser,
  server,
  openChat,
}, testInfo) => {
  const { context, raised } = await browserWithNotifications(browser, server);
  try {
    const first = await openTab(context, "Alice tab 1");
    await first.join("Alice");
    const second = await openTab(context, "Alice tab 2");
    await second.expectLive();
    const tabs = [first, second];

    // Never asked on load; a button asks, and every tab learns the answer.
    expect(await first.page.evaluate(() => (window as unknown as { __asked?: number }).__asked ?? 0)).toBe(0);
    await expect(second.page.getByTestId("notifications-button")).toBeVisible();
    await screenshot(second.page, testInfo, "notifications-offered");
    await second.page.getByTestId("notifications-button").click();
    for (const tab of tabs) await expect(tab.page.getByTestId("notifications-on")).toBeVisible();
    await expectNoSeriousViolations(second.page, testInfo, "notifications on");

    const bob = await joined(openChat, "Bob");
    const leader = first.page.locator("body");
    await expect(leader).toHaveAttribute("data-tab-role", "leading");
    for (const tab of tabs) await setHidden(tab, true);
    // The leader has heard that the other tab is hidden.
    await expect(leader).toHaveAttribute("data-other-tabs-in-view", "0");
    await bob.send("plain talk, nobody named");
    await bob.send("hey Alice, look at this");
    await expect.poll(() => raisedFor(raised, "hey Alice").length, { message: "a notification for the mention" }).toBe(1);
    expect(raisedFor(raised, "hey Alice")[0].title).toBe("Bob in #general");
    // Messages are considered in order: by the time the mention raised one, the plain message
    // had been passed over.
    expect(raisedFor(raised, "plain talk")).toHaveLength(0);

    // One tab in view: nothing is raised.
    await setHidden(second, false);
    await expect(leader).toHaveAttribute("data-other-tabs-in-view", "1");
    await bob.send("Alice, while you look");
    // The leader has weighed the message (it shows it) before the tab is hidden again.
    await first.expectMessage("Alice, while you look", "Bob", false);
    await setHidden(second, true);
    await expect(leader).toHaveAttribute("data-other-tabs-in-view", "0");
    await bob.send("Alice, after looking away");
    await expect.poll(() => raisedFor(raised, "after looking away").length).toBe(1);
    expect(raisedFor(raised, "while you look")).toHaveLength(0);
    expect(raisedFor(raised, "hey Alice"), "still one per browser").toHaveLength(1);

    // "Notify of all" in one tab: every message of that room, in every tab's setting.
    await first.page.getByTestId("notify-all").click();
    for (const tab of tabs) await expect(tab.page.getByTestId("notify-all")).toHaveAttribute("aria-pressed", "true");
    await bob.send("an ordinary remark");
    await expect.poll(() => raisedFor(raised, "an ordinary remark").length).toBe(1);

    // A click opens the room at that message, in the tab that raised it.
    const { page } = raisedFor(raised, "hey Alice")[0];
    await page.evaluate(() => (window as unknown as { __lastNotification: { onclick: () => void } }).__lastNotification.onclick());
    const shown = page.locator('li[data-testid="message"][data-highlight="true"]');
    await expect(shown).toContainText("an ordinary remark");
    await expect(shown).toBeFocused();
  } finally {
    await context.close();
  }
});

/** Hides a tab (or shows it again), as switching tabs would. */
async function setHidden(tab: ChatPage, hidden: boolean): Promise<void> {
  await tab.page.evaluate((hidden) => {
    Object.defineProperty(document, "visibilityState", { value: hidden ? "hidden" : "visible", configurable: true });
    Object.defineProperty(document, "hidden", { value: hidden, configurable: true });
    document.dispatchEvent(new Event("visibilitychange"));
  }, hidden);
}

test("a theme chosen in one tab shows in every tab, and a hidden tab's icon and title count what it missed", async ({
  browser,
  server,
  openChat,
}, testInfo) => {
  const tabs = await browserWithTabs(browser, server, "Alice", 2);
  try {
    await tabs[0].page.locator(UI.accountButton).click();
    await tabs[0].page.getByLabel("Theme", { exact: true }).selectOption("dark");
    for (const tab of tabs) await expect(tab.page.locator("html")).toHaveAttribute("data-theme", "dark");
    await expect(tabs[1].page.getByLabel("Theme", { exact: true })).toHaveValue("dark");
    await expectNoSeriousViolations(tabs[0].page, testInfo, "dark theme chosen, account menu open");
    await screenshot(tabs[0].page, testInfo, "theme-dark-chosen");

    const bob = await joined(openChat, "Bob");
    await setHidden(tabs[1], true);
    await bob.send("one while hidden");
    await bob.send("two while hidden");
    await expect(tabs[1].page).toHaveTitle("(2) ssechat");
    const icon = tabs[1].page.locator("link[rel='icon']");
    await expect(icon).toHaveAttribute("href", /^data:image\/svg\+xml,.*%3E2%3C\/text%3E/);
    await setHidden(tabs[1], false);
    await expect(tabs[1].page).toHaveTitle("ssechat");
    await expect(icon).toHaveAttribute("href", "/favicon.ico");
  } finally {
    await tabs[0].context.close();
  }
});

test("New since you were last here is kept across a reload", async ({ browser, server, openChat }, testInfo) => {
  const context = await browser.newContext({ baseURL: server.url });
  try {
    const alice = await openTab(context, "Alice");
    await alice.join("Alice");
    const bob = await joined(openChat, "Bob");
    await bob.send("read before leaving");
    await alice.expectMessage("read before leaving", "Bob", false);
    await alice.page.close();
    await bob.send("missed while away");
    await bob.send("also missed");
    const back = await openTab(context, "Alice again");
    await back.expectMessage("also missed", "Bob", false);
    const divider = back.page.locator('[data-testid="new-divider"]');
    await expect(divider).toHaveCount(1);
    // Right above the first message missed.
    const next = divider.locator("xpath=following-sibling::li[1]");
    await expect(next).toContainText("missed while away");
    await screenshot(back.page, testInfo, "new-since-last-visit-after-reload");
  } finally {
    await context.close();
  }
});

test("without Web Locks each tab keeps a stream of its own, and the tabs still agree", async ({ browser, server, openChat }) => {
  const context = await browser.newContext({ baseURL: server.url });
  await context.addInitScript(() => {
    Object.defineProperty(Navigator.prototype, "locks", { get: () => undefined, configurable: true });
  });
  try {
    const first = await openTab(context, "Alice tab 1");
    await first.join("Alice");
    const second = await openTab(context, "Alice tab 2");
    await second.expectLive();
    for (const tab of [first, second]) await expect(tab.page.locator("body")).toHaveAttribute("data-tab-role", "alone");
    await expect.poll(() => streamsOpen(server), { message: "a stream per tab" }).toBe(2);
    const bob = await joined(openChat, "Bob");
    await bob.send("to both tabs");
    for (const tab of [first, second]) await tab.expectMessage("to both tabs", "Bob", false);

    // A rename in one tab: the other lets the old id go too, so the new one is not refused.
    await first.page.locator(UI.accountButton).click();
    await first.page.getByLabel("New name", { exact: true }).fill("Alicia");
    await first.page.locator(UI.renameForm).getByRole("button", { name: "Change name" }).click();
    for (const tab of [first, second]) {
      await tab.expectLive();
      await expect(tab.ownUser()).toContainText("Alicia");
      await expect(tab.connectionError).toHaveCount(0);
    }
  } finally {
    await context.close();
  }
});
