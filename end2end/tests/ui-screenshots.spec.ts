import { test, expect, joined, joinRoom, postAs, screenshot, expectAtBottom, expectCspClean, scrollToTop, UI, DESKTOP, PHONE } from "./ui-helpers";

// Screenshots of the main states, at desktop and phone widths, in light and dark: artifacts for
// people to look at (test-results/), not pixel assertions. Each state is checked to be the state
// it claims to be before it is taken.

// Many messages are posted at once: lift the per-author rate limit.
test.use({ serverArgs: ["--rate-burst", "200"] });

// One test per colour scheme: each walks its states at both widths, 13 full-page screenshots of
// two pages. Both schemes in one test once ran past 60 s in CI (13 s on an idle machine).
for (const scheme of ["light", "dark"] as const) {
  test(`screenshots of the chat at desktop and phone widths in ${scheme}`, async ({ openChat }, testInfo) => {
    const visitor = await openChat("Visitor");
    const alice = await joined(openChat, "Alice");
    const bob = await joined(openChat, "Bob");
    const cleo = await joined(openChat, "Cleo");
    await expect(alice.users).toHaveCount(3);

    await postAs(alice, Array.from({ length: 12 }, (_, i) => `Earlier message ${i + 1}`));
    await postAs(bob, ["Hi all! Plans for Friday?", "The new ramen place opened: https://example.com/ramen?city=Lyon (reviews look good)."]);
    await postAs(alice, ["Sounds great.\nI can do 7 pm, maybe 7:30.", "Bob, can you book?"]);
    await postAs(cleo, [
      "Count me in! Pneumonoultramicroscopicsilicovolcanoconiosis-level hunger here, and a link without spaces: https://example.com/a/very/long/path/that/keeps/going/and/going/and/going",
    ]);
    await postAs(bob, ["Booked for 4, 19:30 🎉"]);
    await cleo.context.close();
    await expect(alice.notice(/\bCleo left\b/)).toBeVisible({ timeout: 25_000 });
    await alice.expectMessage("Booked for 4, 19:30 🎉", "Bob", false);
    await expectAtBottom(alice);

    for (const [size, viewport] of [
      ["desktop", DESKTOP],
      ["phone", PHONE],
    ] as const) {
      for (const chat of [alice, visitor]) {
        await chat.page.emulateMedia({ colorScheme: scheme });
        await chat.page.setViewportSize(viewport);
      }
      await expectAtBottom(alice);
      await screenshot(visitor.page, testInfo, `${size}-${scheme}-join`);
      await screenshot(alice.page, testInfo, `${size}-${scheme}-chat`);

      if (size === "phone") {
        await alice.page.locator(UI.peopleToggle).click();
        await expect(alice.userList).toBeVisible();
        await screenshot(alice.page, testInfo, `${size}-${scheme}-people-open`);
        await alice.page.locator(UI.peopleToggle).click();
        await expect(alice.userList).toBeHidden();
      }

      await alice.page.locator(UI.accountButton).click();
      await expect(alice.page.getByLabel("New name")).toBeVisible();
      await screenshot(alice.page, testInfo, `${size}-${scheme}-account-menu`);
      await alice.page.keyboard.press("Escape");
      await expect(alice.page.getByLabel("New name")).toBeHidden();

      // A failed send, with its retry, and a draft near the length limit.
      await alice.page.route("**/message", (route) => route.fulfill({ status: 500, body: "boom" }), { times: 1 });
      await alice.send("This one will fail once");
      await expect(alice.composerError).toBeVisible();
      await screenshot(alice.page, testInfo, `${size}-${scheme}-send-failed`);
      await alice.composerInput.fill("x".repeat(1950));
      await expect(alice.page.locator(UI.charCount)).toBeVisible();
      await screenshot(alice.page, testInfo, `${size}-${scheme}-near-limit`);
      await alice.composerInput.fill(`Retried (${size}, ${scheme})`);
      await alice.page.locator(UI.composerRetry).click();
      await expect(alice.composerError).toBeHidden();
      await alice.expectMessage(`Retried (${size}, ${scheme})`, "Alice", true);

      // Scrolled up while others talk.
      await scrollToTop(alice);
      await postAs(bob, [`See you there (${size}, ${scheme})`]);
      await expect(alice.page.locator(UI.newMessages)).toBeVisible();
      await screenshot(alice.page, testInfo, `${size}-${scheme}-new-messages`);
      await alice.page.locator(UI.newMessages).click();
      await expectAtBottom(alice);
    }
    await expectCspClean(alice);
    await expectCspClean(visitor);
  });
}

test("screenshots of the rooms: the sidebar with unread counts, browsing rooms, the phone's folded panel", async ({
  openChat,
}, testInfo) => {
  const alice = await joined(openChat, "Alice");
  const bob = await joined(openChat, "Bob");
  for (const room of ["design", "release-2026", "random"]) await joinRoom(alice, room);
  await joinRoom(bob, "design");
  await alice.page.locator('[data-testid="room-list"] a[href="/"]').click();
  await expect(alice.page.locator('[data-testid="room-title"]')).toHaveText("# general");
  await postAs(alice, ["Morning all."]);
  await bob.send("The mockups are up.");
  await bob.send("Alice, could you review them today?");
  const design = alice.page.locator('li[data-testid="room"][data-room="design"]');
  await expect(design.locator('[data-testid="room-unread"]')).toHaveText(/^2\b/);
  await expect(design.locator('[data-testid="room-mention"]')).toBeVisible();

  for (const scheme of ["light", "dark"] as const) {
    await alice.page.emulateMedia({ colorScheme: scheme });
    await alice.page.setViewportSize(DESKTOP);
    await screenshot(alice.page, testInfo, `desktop-${scheme}-rooms-unread`);
    await alice.page.locator('[data-testid="browse-rooms"]').click();
    await expect(alice.page.locator('li[data-testid="server-room"]')).toHaveCount(4);
    await screenshot(alice.page, testInfo, `desktop-${scheme}-browse-rooms`);
    await alice.page.locator('[data-testid="browse-rooms"]').click();

    await alice.page.setViewportSize(PHONE);
    await expect(alice.page.locator('[data-testid="room-list"]')).toBeHidden();
    await screenshot(alice.page, testInfo, `phone-${scheme}-rooms-folded`);
    await alice.page.locator('[data-testid="rooms-toggle"]').click();
    await expect(alice.page.locator('[data-testid="room-list"]')).toBeVisible();
    await expect(alice.page.locator('[data-testid="room-list"]')).toBeInViewport();
    await screenshot(alice.page, testInfo, `phone-${scheme}-rooms-open`);
    await alice.page.locator('[data-testid="rooms-toggle"]').click();
    await expect(alice.page.locator('[data-testid="room-list"]')).toBeHidden();
  }
  await expectCspClean(alice);
});
