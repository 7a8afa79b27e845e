import { test, expect } from "./fixtures";

// Nobody can speak as someone else: a browser that claims a connected user's id is refused by
// the server (409), and the page says so in words instead of breaking.

test("a second browser that takes the first user's id from localStorage is refused with a clear message", async ({
  openChat,
}) => {
  const alice = await openChat("Alice");
  await alice.join("Alice");
  const aliceId = await alice.ownId();

  const mallory = await openChat("Mallory");
  await mallory.page.evaluate((id) => {
    window.localStorage.setItem("ssechat.id", id);
    window.localStorage.setItem("ssechat.name", "Mallory");
  }, aliceId);
  await mallory.reload();

  await expect(mallory.status).toHaveAttribute("data-state", "refused");
  await expect(mallory.connectionError).toBeVisible();
  await expect(mallory.connectionError).toContainText(/in use/i);
  // A sentence for people, not a bare status code.
  await expect(mallory.connectionError).not.toHaveText(/^\s*409\s*$/);
  // Mallory cannot send: the composer is gone or its Send button is disabled.
  if ((await mallory.composer.count()) > 0) {
    await mallory.composerInput.fill("I am Alice");
    await expect(mallory.sendButton).toBeDisabled();
  }

  // Alice is undisturbed: still live, still alone in the room, and can still talk.
  await alice.expectLive();
  await expect(alice.users).toHaveCount(1);
  await expect(alice.user(aliceId)).toContainText("Alice");
  await alice.send("still me");
  await alice.expectMessage("still me", "Alice", true);
});
