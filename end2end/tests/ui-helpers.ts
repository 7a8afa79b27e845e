// Helpers for the ui-*.spec.ts tests of the browser UI. They build on ./fixtures (read-only):
//
// - `test` is the fixtures' `test` with one more option, `serverArgs`: extra command-line
//   arguments for the test's server (`test.use({ serverArgs: ["--rate-burst", "1"] })`).
// - The rest are small conditions and actions the UI tests share: posting over HTTP as a user,
//   where the message list is scrolled to, hiding the tab, screenshots as artifacts, and the
//   Content-Security-Policy violations a page reported, and axe's verdict on a page.
import AxeBuilder from "@axe-core/playwright";
import { expect, type BrowserContext, type Page, type TestInfo } from "@playwright/test";
import { test as base, ChatPage, startServer, type ServerHandle } from "./fixtures";

export { expect, ChatPage, startServer };

export const test = base.extend<{ serverArgs: string[] }>({
  serverArgs: [[], { option: true }],

  // The fixtures' server, started with `serverArgs`.
  server: async ({ serverArgs }, use, testInfo) => {
    const { handle, stop } = await startServer(serverArgs);
    try {
      await use(handle);
    } finally {
      const problem = await stop();
      if (testInfo.status !== testInfo.expectedStatus) {
        await testInfo.attach("server log", { body: handle.logs(), contentType: "text/plain" });
      }
      if (problem) throw new Error(`${problem}\n${handle.logs()}`);
    }
  },
});

export type { ServerHandle };

/** The UI's own test ids, beyond the ones ./fixtures knows. */
export const UI = {
  newMessages: '[data-testid="new-messages"]',
  charCount: '[data-testid="char-count"]',
  composerRetry: '[data-testid="composer-retry"]',
  composerOffline: '[data-testid="composer-offline"]',
  peopleToggle: '[data-testid="people-toggle"]',
  accountButton: '[data-testid="account-button"]',
  renameForm: '[data-testid="rename-form"]',
  renameError: '[data-testid="rename-error"]',
  leaveButton: '[data-testid="leave-button"]',
  joinInfo: '[data-testid="join-info"]',
  userSample: '[data-testid="user-sample"]',
} as const;

/** Opens the app as `name` and joins; every other user is already there. */
export async function joined(openChat: (label: string) => Promise<ChatPage>, name: string): Promise<ChatPage> {
  const chat = await openChat(name);
  await chat.join(name);
  return chat;
}

/** Asks to join (or create) `room` with the sidebar's form, and waits for nothing. */
export async function askToJoinRoom(chat: ChatPage, room: string): Promise<void> {
  await chat.page.getByLabel("Join or create a room", { exact: true }).fill(room);
  await chat.page.locator('form[data-testid="join-room"]').getByRole("button", { name: "Join" }).click();
}

/**
 * Joins (or creates) `room` with the sidebar's form, and waits until it is shown and the stream
 * follows it (the composer says so with `data-in-room`): only then does the server take a post
 * there.
 */
export async function joinRoom(chat: ChatPage, room: string): Promise<void> {
  await askToJoinRoom(chat, room);
  await expect(chat.page.locator('[data-testid="room-title"]')).toHaveText(`# ${room}`);
  await expect(chat.composer, `${chat.label}'s stream follows ${room}`).toHaveAttribute("data-in-room", "true");
}

/**
 * Holds every stream request of `context` whose `rooms` names `room` until the returned
 * function is called, as a slow network would: the page has asked to follow the room, the
 * server does not know yet. `held()` counts the requests held so far.
 */
export async function holdStreamsNaming(context: BrowserContext, room: string): Promise<{ release: () => void; held: () => number }> {
  let release: () => void = () => {};
  const released = new Promise<void>((resolve) => (release = resolve));
  let held = 0;
  const names = (url: URL) => url.pathname === "/sse" && (url.searchParams.get("rooms") ?? "").split(",").includes(room);
  await context.route(names, async (route) => {
    held += 1;
    await released;
    await route.continue();
  });
  return { release, held: () => held };
}

/** The server's count of open event streams, from `GET /metrics`. */
export async function streamsOpen(server: ServerHandle): Promise<number> {
  const response = await fetch(`${server.url}/metrics`);
  const text = await response.text();
  const line = text.split("\n").find((l) => l.startsWith("ssechat_streams_open "));
  expect(line, "ssechat_streams_open in /metrics").toBeTruthy();
  return Number(line!.split(" ")[1]);
}

/**
 * Posts messages as `chat`'s user straight to `POST /message` (the browser context's cookies go
 * along), one after the other, without typing them: for tests that need many messages.
 */
export async function postAs(chat: ChatPage, texts: string[]): Promise<void> {
  const origin = new URL(chat.page.url()).origin;
  for (const message of texts) {
    const response = await chat.context.request.post(`${origin}/message`, { data: { message } });
    expect(response.status(), `POST /message for "${message}": ${await response.text()}`).toBe(200);
  }
}

/** How far (px) the message list is scrolled up from its bottom. */
export function distanceFromBottom(chat: ChatPage): Promise<number> {
  return chat.messageList.evaluate((list) => list.scrollHeight - list.scrollTop - list.clientHeight);
}

/** Waits until the message list is scrolled to its bottom. */
export async function expectAtBottom(chat: ChatPage): Promise<void> {
  await expect.poll(() => distanceFromBottom(chat), { message: `${chat.label}: list at its bottom` }).toBeLessThan(2);
}

/**
 * Scrolls the message list to its top, as a reader going back would. The list's `scroll` event
 * is dispatched at once (the browser's own comes with the next frame), so the page knows before
 * the test goes on.
 */
export async function scrollToTop(chat: ChatPage): Promise<void> {
  await expectAtBottom(chat);
  await chat.messageList.evaluate((list) => {
    list.scrollTop = 0;
    list.dispatchEvent(new Event("scroll"));
  });
  expect(await distanceFromBottom(chat), `${chat.label}: the list is long enough to scroll`).toBeGreaterThan(100);
}

/** Makes the page believe its tab is hidden (or visible again), as a tab switch would. */
export async function setTabHidden(page: Page, hidden: boolean): Promise<void> {
  await page.evaluate((hidden) => {
    Object.defineProperty(document, "visibilityState", { value: hidden ? "hidden" : "visible", configurable: true });
    Object.defineProperty(document, "hidden", { value: hidden, configurable: true });
    document.dispatchEvent(new Event("visibilitychange"));
  }, hidden);
}

/**
 * Makes the page believe its window lost (or got back) the focus while staying visible, as when
 * another window comes in front: headless Chromium keeps every page focused by itself.
 */
export async function setWindowFocused(page: Page, focused: boolean): Promise<void> {
  await page.evaluate((focused) => {
    document.hasFocus = () => focused;
    window.dispatchEvent(new Event(focused ? "focus" : "blur"));
  }, focused);
}

/** Runs axe on the page as it is; fails on serious or critical violations, attaches the rest. */
export async function expectNoSeriousViolations(page: Page, testInfo: TestInfo, state: string): Promise<void> {
  const results = await new AxeBuilder({ page }).analyze();
  const serious = results.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  if (results.violations.length > 0) {
    await testInfo.attach(`axe ${state}`, {
      body: JSON.stringify(results.violations, null, 2),
      contentType: "application/json",
    });
  }
  const summary = serious.map((v) => `${v.id} (${v.impact}): ${v.help}\n  ${v.nodes.map((n) => n.target.join(" ")).join("\n  ")}`);
  expect(summary, `serious or critical axe violations in ${state}`).toEqual([]);
}

/** Saves a full-page screenshot as a test artifact (not compared with anything). */
export async function screenshot(page: Page, testInfo: TestInfo, name: string): Promise<void> {
  const path = testInfo.outputPath(`${name}.png`);
  await page.screenshot({ path, fullPage: true, animations: "disabled" });
  await testInfo.attach(name, { path, contentType: "image/png" });
}

/** What the browser logged about the Content-Security-Policy blocking something. */
export function cspViolations(chat: ChatPage): string[] {
  return chat.errors.filter((error) => /Content Security Policy|Refused to (apply|execute|load|connect)/i.test(error));
}

/** Checks that a page reported no CSP violation and carries no inline style. */
export async function expectCspClean(chat: ChatPage): Promise<void> {
  expect(cspViolations(chat), `${chat.label}: CSP violations`).toEqual([]);
  await expect(chat.page.locator("[style]:not([style=\"\"])"), `${chat.label}: inline style attributes`).toHaveCount(0);
  await expect(chat.page.locator("style"), `${chat.label}: <style> elements`).toHaveCount(0);
}

export const DESKTOP = { width: 1280, height: 800 };
export const PHONE = { width: 360, height: 740 };
