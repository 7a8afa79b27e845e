import { test, expect, type ChatPage } from "./fixtures";
import { joined } from "./ui-helpers";

// Every assertion about a message or a join/leave is made in the OTHER user's browser, so these
// tests fail if the server does not broadcast.

/** Alice joins in one browser, then Bob in another; each with the id the server gave them. */
async function aliceThenBob(openChat: (label: string) => Promise<ChatPage>) {
  const alice = await joined(openChat, "Alice");
  const bob = await joined(openChat, "Bob");
  return { alice, aliceId: await alice.ownId(), bob, bobId: await bob.ownId() };
}

test("two users in two browsers see each other join, exchange messages both ways, and see the other leave", async ({
  openChat,
}) => {
  const { alice, aliceId, bob, bobId } = await aliceThenBob(openChat);
  expect(bobId).not.toBe(aliceId);

  // Both lists have both users, count 2, each marks only its own entry "(you)".
  for (const [viewer, own, other, otherName] of [
    [alice, aliceId, bobId, "Bob"],
    [bob, bobId, aliceId, "Alice"],
  ] as const) {
    await expect(viewer.users, `${viewer.label}'s user list`).toHaveCount(2);
    await expect(viewer.userCount).toHaveText("2");
    await expect(viewer.user(own)).toContainText(viewer.label);
    await expect(viewer.user(own)).toContainText("(you)");
    await expect(viewer.user(other)).toContainText(otherName);
    await expect(viewer.user(other)).not.toContainText("(you)");
  }
  // Alice was there first: she is told that Bob joined.
  await expect(alice.notice(/\bBob joined\b/)).toBeVisible();

  // Alice -> Bob.
  await alice.send("Hello Bob, this is Alice");
  const seenByBob = await bob.expectMessage("Hello Bob, this is Alice", "Alice", false);
  const ownForAlice = await alice.expectMessage("Hello Bob, this is Alice", "Alice", true);
  expect(await seenByBob.getAttribute("data-seq")).toBe(await ownForAlice.getAttribute("data-seq"));

  // Bob -> Alice.
  await bob.send("Hi Alice, Bob here");
  const seenByAlice = await alice.expectMessage("Hi Alice, Bob here", "Bob", false);
  const ownForBob = await bob.expectMessage("Hi Alice, Bob here", "Bob", true);
  expect(await seenByAlice.getAttribute("data-seq")).toBe(await ownForBob.getAttribute("data-seq"));
  expect(Number(await ownForBob.getAttribute("data-seq"))).toBeGreaterThan(
    Number(await ownForAlice.getAttribute("data-seq")),
  );

  // Bob closes his browser: after the leave grace period Alice sees him go. Noticing a closed
  // connection can take the server up to a keep-alive interval (15 s), hence the longer wait.
  await bob.context.close();
  await expect(alice.user(bobId)).toHaveCount(0, { timeout: 25_000 });
  await expect(alice.users).toHaveCount(1);
  await expect(alice.userCount).toHaveText("1");
  await expect(alice.notice(/\bBob left\b/)).toBeVisible();
  await expect(alice.user(aliceId)).toContainText("(you)");
});

test("a reload rejoins as the same user, who stays one user for the others", async ({ openChat }) => {
  const { alice, aliceId, bob, bobId } = await aliceThenBob(openChat);
  await expect(bob.user(aliceId)).toContainText("Alice");

  await alice.reload();
  // With the name stored, the app rejoins by itself: no join form, live again, same id.
  await alice.expectLive();
  await expect(alice.joinForm).toBeHidden();
  expect(await alice.ownId()).toBe(aliceId);
  await expect(alice.user(aliceId)).toContainText("Alice");
  await expect(alice.user(bobId)).toContainText("Bob");
  await expect(alice.users).toHaveCount(2);

  // Bob still has exactly one Alice, and two users in all.
  await expect(bob.user(aliceId)).toHaveCount(1);
  await expect(bob.users).toHaveCount(2);
  await expect(bob.userCount).toHaveText("2");

  // The rejoined Alice still speaks as herself (same session), and Bob hears her.
  await alice.send("Back after a reload");
  await bob.expectMessage("Back after a reload", "Alice", false);
  await alice.expectMessage("Back after a reload", "Alice", true);
});

test("a message sent with Enter reaches the other user with a parseable time", async ({ openChat }) => {
  const { alice, bob } = await aliceThenBob(openChat);
  await expect(alice.users).toHaveCount(2);

  const before = Date.now();
  await alice.send("Sent with the Enter key", "enter");

  const message = await bob.expectMessage("Sent with the Enter key", "Alice", false);
  // Enter sent the message; it did not end up as a newline in it.
  expect(await bob.messageText(message).textContent()).not.toContain("\n");

  const time = bob.messageTime(message);
  await expect(time).toHaveAttribute("datetime", /\S/);
  const datetime = (await time.getAttribute("datetime"))!;
  const parsed = Date.parse(datetime);
  expect(parsed, `datetime="${datetime}" parses as a date`).not.toBeNaN();
  // Same machine, same clock: the server's timestamp is close to when we sent it.
  expect(Math.abs(parsed - before)).toBeLessThan(5 * 60_000);

  await alice.expectMessage("Sent with the Enter key", "Alice", true);
});
