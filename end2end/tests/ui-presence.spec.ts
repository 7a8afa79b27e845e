import { test, expect, joined, postAs, setTabHidden, setWindowFocused } from "./ui-helpers";

// Presence in the conversation (joins and leaves as inline notices, in order with the
// messages) and the tab title that counts unread messages while the tab is hidden.

test("joins and leaves show inline, in order with the messages", async ({ openChat }) => {
  const alice = await joined(openChat, "Alice");
  await postAs(alice, ["before Bob"]);
  const bob = await joined(openChat, "Bob");
  await postAs(bob, ["hello from Bob"]);
  await bob.context.close();

  await expect(alice.notice(/^Bob left$/)).toBeVisible({ timeout: 25_000 });
  const lines = await alice.messageList.locator(":scope > li").allTextContents();
  const order = ["before Bob", "Bob joined", "hello from Bob", "Bob left"].map((needle) =>
    lines.findIndex((line) => line.includes(needle)),
  );
  expect(order.every((index) => index >= 0), lines.join(" | ")).toBe(true);
  expect(order).toEqual([...order].sort((a, b) => a - b));
});

test("while the tab is hidden its title counts unread messages, and clears when it is seen", async ({ openChat }) => {
  const alice = await joined(openChat, "Alice");
  const bob = await joined(openChat, "Bob");
  await expect(alice.page).toHaveTitle("ssechat");

  await setTabHidden(alice.page, true);
  await postAs(bob, ["are you there?", "hello?"]);
  await alice.expectMessage("hello?", "Bob", false);
  await expect(alice.page).toHaveTitle("(2) ssechat");
  // One's own messages are not unread.
  await postAs(alice, ["typed in another tab"]);
  await alice.expectMessage("typed in another tab", "Alice", true);
  await postAs(bob, ["third"]);
  await expect(alice.page).toHaveTitle("(3) ssechat");

  await setTabHidden(alice.page, false);
  await expect(alice.page).toHaveTitle("ssechat");
  // A visible tab does not count.
  await postAs(bob, ["seen at once"]);
  await alice.expectMessage("seen at once", "Bob", false);
  await expect(alice.page).toHaveTitle("ssechat");
});

test("a visible tab whose window is not focused counts unread messages too, and clears when focused", async ({
  openChat,
}) => {
  const alice = await joined(openChat, "Alice");
  const bob = await joined(openChat, "Bob");
  await expect(alice.page).toHaveTitle("ssechat");

  // Another window in front: the page stays visible but loses the focus.
  await setWindowFocused(alice.page, false);
  await postAs(bob, ["over here"]);
  await alice.expectMessage("over here", "Bob", false);
  await expect(alice.page).toHaveTitle("(1) ssechat");

  await setWindowFocused(alice.page, true);
  await expect(alice.page).toHaveTitle("ssechat");
  await postAs(bob, ["seen at once"]);
  await alice.expectMessage("seen at once", "Bob", false);
  await expect(alice.page).toHaveTitle("ssechat");
});
