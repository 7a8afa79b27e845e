import { test, expect } from "./fixtures";

const PAYLOAD = "<img src=x onerror=alert(1)>";

test("a message that looks like HTML shows as literal text and runs nothing", async ({ openChat }) => {
  const alice = await openChat("Alice");
  await alice.join("Alice");
  const bob = await openChat("Bob");
  await bob.join("Bob");
  await expect(alice.users).toHaveCount(2);

  await alice.send(PAYLOAD);
  await bob.expectMessage(PAYLOAD, "Alice", false);
  await alice.expectMessage(PAYLOAD, "Alice", true);

  // A message sent after it has arrived in both browsers, so anything the payload could have
  // triggered (an image load error, its handler) has had its chance to run.
  await bob.send("after the payload");
  await alice.expectMessage("after the payload", "Bob", false);
  await bob.expectMessage("after the payload", "Bob", true);

  for (const chat of [alice, bob]) {
    await expect(chat.messageList.locator("img"), `${chat.label}: no img in the message list`).toHaveCount(0);
    await expect(chat.page.locator('img[src="x"]')).toHaveCount(0);
    expect(chat.dialogs, `${chat.label}: no dialogs`).toEqual([]);
  }
});
