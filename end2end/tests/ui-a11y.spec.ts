import type { Locator, Page, TestInfo } from "@playwright/test";
import { test, expect, joined, joinRoom, postAs, ChatPage, UI, DESKTOP, PHONE, expectNoSeriousViolations } from "./ui-helpers";

// Accessibility: an automated axe-core check of every main state (light and dark, desktop and
// phone) with no serious or critical violation, the landmarks and live region, and the whole
// chat used by keyboard alone with a visible focus.


test("axe finds no serious or critical violation in any main state, light or dark, desktop or phone", async ({
  openChat,
}, testInfo) => {
  const visitor = await openChat("Visitor");
  const alice = await joined(openChat, "Alice");
  const bob = await joined(openChat, "Bob");
  await postAs(bob, ["Hello! See https://example.com/docs for the plan.", "Second line\nof a grouped message"]);
  await postAs(alice, ["Sounds good."]);
  await alice.expectMessage("Sounds good.", "Alice", true);

  for (const scheme of ["light", "dark"] as const) {
    for (const [size, viewport] of [
      ["desktop", DESKTOP],
      ["phone", PHONE],
    ] as const) {
      const where = `${size}, ${scheme}`;
      for (const chat of [visitor, alice]) {
        await chat.page.emulateMedia({ colorScheme: scheme });
        await chat.page.setViewportSize(viewport);
      }
      await expectNoSeriousViolations(visitor.page, testInfo, `join form (${where})`);
      await expectNoSeriousViolations(alice.page, testInfo, `chat (${where})`);

      if (size === "phone") {
        await alice.page.locator(UI.peopleToggle).click();
        await expect(alice.userList).toBeVisible();
        await expectNoSeriousViolations(alice.page, testInfo, `people panel (${where})`);
        await alice.page.locator(UI.peopleToggle).click();
      }

      await alice.page.locator(UI.accountButton).click();
      await expect(alice.page.getByLabel("New name", { exact: true })).toBeVisible();
      await expectNoSeriousViolations(alice.page, testInfo, `account menu (${where})`);
      await alice.page.keyboard.press("Escape");

      await alice.page.route("**/message", (route) => route.fulfill({ status: 503, body: "busy" }), { times: 1 });
      await alice.send(`refused (${where})`);
      await expect(alice.composerError).toBeVisible();
      await alice.composerInput.fill("x".repeat(2010));
      await expect(alice.page.locator(UI.charCount)).toBeVisible();
      await expectNoSeriousViolations(alice.page, testInfo, `send failed, too long (${where})`);
      await alice.composerInput.fill(`sent (${where})`);
      await alice.page.locator(UI.composerRetry).click();
      await alice.expectMessage(`sent (${where})`, "Alice", true);
    }
  }
});

test("the page has landmarks, labelled controls and a polite live message list", async ({ openChat }) => {
  const visitor = await openChat("Visitor");
  await expect(visitor.page.locator("html")).toHaveAttribute("lang", "en");
  await expect(visitor.page.getByRole("banner")).toHaveCount(1);
  await expect(visitor.page.getByRole("main")).toHaveCount(1);
  await expect(visitor.page.getByRole("textbox", { name: "Your name" })).toBeVisible();

  const alice = await joined(openChat, "Alice");
  const page = alice.page;
  await expect(page.getByRole("banner")).toHaveCount(1);
  await expect(page.getByRole("main")).toHaveCount(1);
  await expect(page.getByRole("complementary", { name: /People/ })).toHaveCount(1);
  await expect(page.getByRole("form", { name: "Send a message" })).toHaveCount(1);
  // The live region is the log around the list (a list may not be a log itself).
  const log = page.getByRole("log", { name: "Messages" });
  await expect(log).toHaveAttribute("aria-live", "polite");
  await expect(log.locator('ol[data-testid="message-list"]')).toHaveCount(1);
  await expect(page.getByRole("list", { name: "Messages" })).toHaveCount(1);
  await expect(page.getByRole("textbox", { name: "Message" })).toBeVisible();
  await expect(page.getByRole("button", { name: "Send" })).toBeVisible();
  await expect(page.getByRole("button", { name: /Account: Alice/ })).toBeVisible();
  // Every control has a name.
  const unnamed = await page.evaluate(() =>
    [...document.querySelectorAll("button, input, textarea, select, a[href]")]
      .filter((element) => {
        const labelled = element.getAttribute("aria-label") || element.getAttribute("aria-labelledby");
        const labels = (element as HTMLInputElement).labels;
        return !labelled && !(labels && labels.length > 0) && !(element.textContent ?? "").trim();
      })
      .map((element) => element.outerHTML),
  );
  expect(unnamed).toEqual([]);
});

/** Presses Tab until `target` has the focus (at most `limit` times). */
async function tabTo(chat: ChatPage, target: Locator, limit = 15): Promise<void> {
  for (let i = 0; i < limit; i++) {
    if (await target.evaluate((element) => element === document.activeElement)) return;
    await chat.page.keyboard.press("Tab");
  }
  await expect(target).toBeFocused();
}

/** The focused element shows a focus outline. */
async function expectVisibleFocus(page: Page): Promise<void> {
  const outline = await page.evaluate(() => {
    const style = getComputedStyle(document.activeElement!);
    return { style: style.outlineStyle, width: parseFloat(style.outlineWidth) };
  });
  expect(outline.style).not.toBe("none");
  expect(outline.width).toBeGreaterThanOrEqual(2);
}

test("the whole chat works by keyboard, with a visible focus", async ({ openChat }) => {
  const bob = await joined(openChat, "Bob");
  const alice = await openChat("Alice");
  const page = alice.page;

  // Join: Tab to the name, type, Enter.
  await tabTo(alice, alice.joinName);
  await expectVisibleFocus(page);
  await page.keyboard.type("Alice");
  await page.keyboard.press("Enter");
  await alice.expectLive();

  // Send: Tab to the composer, type, Enter.
  await tabTo(alice, alice.composerInput);
  await expectVisibleFocus(page);
  await page.keyboard.type("typed without a mouse");
  await page.keyboard.press("Enter");
  await bob.expectMessage("typed without a mouse", "Alice", false);

  // The message list can be reached and scrolled by keyboard.
  await tabTo(alice, alice.messageList);
  await expectVisibleFocus(page);

  // The account menu: open with Enter, close with Escape, focus back on its button.
  const account = page.locator(UI.accountButton);
  await tabTo(alice, account);
  await expectVisibleFocus(page);
  await page.keyboard.press("Enter");
  await expect(page.getByLabel("New name", { exact: true })).toBeFocused();
  await page.keyboard.press("Escape");
  await expect(page.getByLabel("New name", { exact: true })).toBeHidden();
  await expect(account).toBeFocused();

  // Rename by keyboard. The field takes the focus on the next frame: select its text only then.
  await page.keyboard.press("Enter");
  await expect(page.getByLabel("New name", { exact: true })).toBeFocused();
  await page.keyboard.press("ControlOrMeta+a");
  await page.keyboard.type("Ali");
  await page.keyboard.press("Enter");
  await expect(bob.notice(/^Ali joined$/)).toBeVisible();

  // On a phone, the people toggle by keyboard.
  await page.setViewportSize({ width: 360, height: 740 });
  const toggle = page.locator(UI.peopleToggle);
  await tabTo(alice, toggle);
  await expectVisibleFocus(page);
  await page.keyboard.press("Enter");
  await expect(alice.userList).toBeVisible();
  await page.keyboard.press("Escape");
  await expect(alice.userList).toBeHidden();
});

test("axe finds no serious or critical violation in the rooms states, desktop or phone", async ({ openChat }, testInfo) => {
  const alice = await joined(openChat, "Alice");
  const bob = await joined(openChat, "Bob");
  await joinRoom(alice, "design");
  await joinRoom(bob, "design");
  await alice.page.locator('[data-testid="room-list"] a[href="/"]').click();
  await expect(alice.page.locator('[data-testid="room-title"]')).toHaveText("# general");
  await bob.send("Alice, the mockups are ready");
  const design = alice.page.locator('li[data-testid="room"][data-room="design"]');
  await expect(design.locator('[data-testid="room-unread"]')).toBeVisible();
  await expect(design.locator('[data-testid="room-mention"]')).toBeVisible();

  for (const [size, viewport] of [
    ["desktop", DESKTOP],
    ["phone", PHONE],
  ] as const) {
    await alice.page.setViewportSize(viewport);
    if (size === "phone") {
      await alice.page.locator('[data-testid="rooms-toggle"]').click();
      await expect(alice.page.locator('[data-testid="room-list"]')).toBeVisible();
    }
    await expectNoSeriousViolations(alice.page, testInfo, `rooms with unread and a mention (${size})`);
    await alice.page.getByLabel("Join or create a room", { exact: true }).fill("Not A Room");
    await alice.page.getByLabel("Join or create a room", { exact: true }).press("Enter");
    await expect(alice.page.locator('[data-testid="room-name-error"]')).toBeVisible();
    await expectNoSeriousViolations(alice.page, testInfo, `room name refused (${size})`);
    await alice.page.locator('[data-testid="browse-rooms"]').click();
    await expect(alice.page.locator('li[data-testid="server-room"]')).toHaveCount(2);
    await expectNoSeriousViolations(alice.page, testInfo, `browse rooms (${size})`);
    await alice.page.locator('[data-testid="browse-rooms"]').click();
    if (size === "phone") {
      await alice.page.keyboard.press("Escape");
      await expect(alice.page.locator('[data-testid="room-list"]')).toBeHidden();
      await expect(alice.page.locator('[data-testid="rooms-toggle"]')).toBeFocused();
    }
  }
  await expect(alice.page.locator('[data-testid="room-list"] a[aria-current="page"]')).toHaveText(/general/);
  const missing = await alice.page.goto("/r/Not-A-Room");
  expect(missing?.status()).toBe(404);
  await expectNoSeriousViolations(alice.page, testInfo, "room not found");
});
