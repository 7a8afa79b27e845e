import { test, expect, joined, ChatPage, startServer, postAs, screenshot, UI, PHONE } from "./ui-helpers";

// Where the focus goes, what a screen reader is told, and what Enter does on a touch screen.

test("joining puts the focus in the composer, and leaving puts it in the name field", async ({ openChat }) => {
  const alice = await openChat("Alice");
  await alice.join("Alice");
  await expect(alice.composerInput).toBeFocused();

  await alice.page.locator(UI.accountButton).click();
  await alice.page.locator(UI.leaveButton).click();
  await expect(alice.joinForm).toBeVisible();
  await expect(alice.joinName).toBeFocused();

  // Back in with the keyboard alone: the focus is where the typing goes.
  await alice.page.keyboard.type("Alicia");
  await alice.page.keyboard.press("Enter");
  await alice.expectLive();
  await expect(alice.composerInput).toBeFocused();
});

test("messages sit in a log that announces additions only; the ticking time is hidden from screen readers", async ({
  openChat,
}) => {
  const alice = await joined(openChat, "Alice");
  await postAs(alice, ["hello log"]);

  const log = alice.page.getByRole("log", { name: "Messages" });
  await expect(log).toHaveAttribute("aria-live", "polite");
  await expect(log).toHaveAttribute("aria-relevant", "additions");
  await expect(log.locator('li[data-testid="message"]')).toHaveCount(1);

  const message = alice.message("hello log");
  const time = message.locator('[data-testid="message-time"]');
  await expect(time).toHaveAttribute("aria-hidden", "true");
  // The exact time a screen reader reads instead is the one the tooltip shows, and it is there.
  const exact = await time.getAttribute("title");
  expect(exact).toBeTruthy();
  await expect(message.locator(".sr-only")).toHaveText(exact ?? "");
});

test("on a touch screen Enter adds a line and the Send button sends; the page keeps clear of the screen's edges", async ({
  browser,
}, testInfo) => {
  const server = await startServer();
  const context = await browser.newContext({ baseURL: server.handle.url, viewport: PHONE, hasTouch: true, isMobile: true });
  try {
    const page = await context.newPage();
    const phone = new ChatPage(context, page, "phone");
    await phone.open();
    await expect(page.locator('meta[name="viewport"]')).toHaveAttribute("content", /viewport-fit=cover/);
    await phone.join("Pat");

    await expect(phone.composerInput).toHaveAttribute("enterkeyhint", "send");
    await expect(page.locator("#composer-help")).toContainText("Enter adds a line");
    await phone.composerInput.fill("first line");
    await phone.composerInput.press("End");
    await phone.composerInput.press("Enter");
    await phone.composerInput.pressSequentially("second line");
    await expect(phone.composerInput).toHaveValue("first line\nsecond line");
    await expect(phone.messages).toHaveCount(0);
    await screenshot(page, testInfo, "phone-enter-adds-a-line");

    await phone.sendButton.tap();
    await expect(phone.messages).toHaveCount(1);
    expect(await phone.messageText(phone.messages.first()).textContent()).toBe("first line\nsecond line");
  } finally {
    await context.close();
    const problem = await server.stop();
    if (problem) throw new Error(problem);
  }
});

test("a grouped message shows its author line and time when tapped, where no tooltip shows", async ({ browser }) => {
  const server = await startServer();
  const context = await browser.newContext({ baseURL: server.handle.url, viewport: PHONE, hasTouch: true, isMobile: true });
  try {
    const phone = new ChatPage(context, await context.newPage(), "phone");
    await phone.open();
    await phone.join("Pat");
    await postAs(phone, ["first of a group", "second of a group"]);
    const second = phone.message("second of a group");
    await expect(second).toHaveClass(/continued/);
    const metaHeight = () => second.locator(".message-meta").evaluate((meta) => meta.getBoundingClientRect().height);
    expect(await metaHeight()).toBeLessThanOrEqual(1);

    await second.locator('[data-testid="message-text"]').tap();
    await expect(second).toBeFocused();
    await expect.poll(metaHeight).toBeGreaterThan(8);
    await expect(second.locator('[data-testid="message-time"]')).not.toHaveText("");
  } finally {
    await context.close();
    const problem = await server.stop();
    if (problem) throw new Error(problem);
  }
});

test("a stream's burst of history arrives while the log is busy, so it is not read out; news after it is", async ({
  openChat,
}) => {
  const bob = await joined(openChat, "Bob");
  await postAs(bob, Array.from({ length: 8 }, (_, i) => `history ${i + 1}`));

  const alice = await openChat("Alice");
  // Records, for every message row the page adds, whether its log was busy at that moment.
  await alice.page.evaluate(() => {
    const seen: { text: string; busy: string | null }[] = [];
    (window as unknown as { __rows: typeof seen }).__rows = seen;
    new MutationObserver((records) => {
      for (const record of records) {
        for (const node of Array.from(record.addedNodes)) {
          if (!(node instanceof HTMLElement)) continue;
          const rows = node.matches('li[data-testid="message"]')
            ? [node]
            : Array.from(node.querySelectorAll<HTMLElement>('li[data-testid="message"]'));
          for (const row of rows) {
            const text = row.querySelector('[data-testid="message-text"]')?.textContent ?? "";
            seen.push({ text, busy: row.closest('[role="log"]')?.getAttribute("aria-busy") ?? null });
          }
        }
      }
    }).observe(document.body, { childList: true, subtree: true });
  });
  await alice.join("Alice");
  await alice.expectMessage("history 8", "Bob", false);
  const log = alice.page.getByRole("log", { name: "Messages" });
  await expect(log).toHaveAttribute("aria-busy", "false");

  await postAs(bob, ["news"]);
  await alice.expectMessage("news", "Bob", false);
  const rows = await alice.page.evaluate(() => (window as unknown as { __rows: { text: string; busy: string | null }[] }).__rows);
  const history = rows.filter((row) => row.text.startsWith("history "));
  expect(history.length).toBeGreaterThanOrEqual(8);
  expect(history.filter((row) => row.busy !== "true")).toEqual([]);
  expect(rows.filter((row) => row.text === "news")).toEqual([{ text: "news", busy: "false" }]);
});
