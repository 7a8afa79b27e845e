import { test, expect, joined, postAs, expectAtBottom, distanceFromBottom, scrollToTop, UI } from "./ui-helpers";

// The message list sticks to the bottom while the reader is there; a reader who scrolled up is
// left in place, and a "N new messages" button takes them down.

// Enough messages to scroll, posted at once: lift the per-author rate limit.
test.use({ serverArgs: ["--rate-burst", "200"] });

test("the list follows new messages at the bottom and leaves a reader who scrolled up in place", async ({ openChat }) => {
  const alice = await joined(openChat, "Alice");
  const bob = await joined(openChat, "Bob");
  await postAs(alice, Array.from({ length: 40 }, (_, i) => `filler ${i + 1}`));
  await bob.expectMessage("filler 40", "Alice", false);
  await expectAtBottom(bob);

  // At the bottom: a new message scrolls into view, no button.
  await postAs(alice, ["at the bottom"]);
  await bob.expectMessage("at the bottom", "Alice", false);
  await expectAtBottom(bob);
  await expect(bob.page.locator(UI.newMessages)).toHaveCount(0);

  // Scrolled up: new messages arrive, the reader stays where they are, the button counts them.
  await scrollToTop(bob);
  await postAs(alice, ["while reading 1", "while reading 2"]);
  await bob.expectMessage("while reading 2", "Alice", false);
  const button = bob.page.locator(UI.newMessages);
  await expect(button).toHaveText(/^2 new messages/);
  expect(await bob.messageList.evaluate((list) => list.scrollTop)).toBe(0);
  await postAs(alice, ["while reading 3"]);
  await expect(button).toHaveText(/^3 new messages/);
  expect(await bob.messageList.evaluate((list) => list.scrollTop)).toBe(0);

  // The button takes the reader down, and goes away.
  await button.click();
  await expectAtBottom(bob);
  await expect(button).toHaveCount(0);
  await expect(bob.message("while reading 3")).toBeInViewport();

  // Scrolling down by hand clears it too.
  await scrollToTop(bob);
  await postAs(alice, ["one more"]);
  await expect(button).toHaveText(/^1 new message\b/);
  await bob.messageList.evaluate((list) => list.scrollTo({ top: list.scrollHeight }));
  await expect(button).toHaveCount(0);

  // One's own message always brings the list down.
  await scrollToTop(bob);
  await bob.send("my reply", "enter");
  await bob.expectMessage("my reply", "Bob", true);
  await expectAtBottom(bob);
  expect(await distanceFromBottom(bob)).toBeLessThan(2);
});

test("the list stays at the bottom when the window gets smaller", async ({ openChat }) => {
  const alice = await joined(openChat, "Alice");
  await postAs(alice, Array.from({ length: 30 }, (_, i) => `line ${i + 1}`));
  await alice.expectMessage("line 30", "Alice", true);
  await expectAtBottom(alice);
  await alice.page.setViewportSize({ width: 1280, height: 420 });
  await expectAtBottom(alice);
  await expect(alice.message("line 30")).toBeInViewport();
});

test("after the new-messages button, the list stays at the bottom when the window changes size at once", async ({
  openChat,
}) => {
  const alice = await joined(openChat, "Alice");
  const bob = await joined(openChat, "Bob");
  await postAs(alice, Array.from({ length: 30 }, (_, i) => `message ${i + 1}, long enough to wrap on a phone screen`));
  await alice.expectMessage("message 30, long enough to wrap on a phone screen", "Alice", true);
  // Turning a phone, again and again, right after going down to the new messages.
  for (let i = 0; i < 6; i++) {
    await scrollToTop(alice);
    await postAs(bob, [`news ${i}`]);
    await alice.page.locator(UI.newMessages).click();
    await alice.page.setViewportSize(i % 2 ? { width: 1280, height: 800 } : { width: 360, height: 740 });
    await expectAtBottom(alice);
    await expect(alice.message(`news ${i}`)).toBeInViewport();
  }
});
