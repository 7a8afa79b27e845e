import { test, expect, joined, UI, type ServerHandle } from "./ui-helpers";

// A large room (above --large-room-threshold users): the server sends a sample of the users and
// the exact count in `presence` events; the people list shows the count, says it shows a sample,
// and pages through `GET /users` for everyone.

// All bots come from 127.0.0.1: the per-address limit on new ids (120 a minute) is raised.
test.use({
  serverArgs: ["--large-room-threshold", "2", "--users-interval-ms", "200", "--new-ids-per-addr-per-min", "1000"],
});

/** Users connected straight to /sse from the test (no browser), each reading its stream. */
async function connectBots(server: ServerHandle, from: number, count: number, controller: AbortController) {
  await Promise.all(
    Array.from({ length: count }, async (_, i) => {
      const n = from + i;
      const response = await fetch(`${server.url}/sse?id=bot-${n}&name=${encodeURIComponent(`Bot ${n}`)}`, {
        signal: controller.signal,
      });
      expect(response.status, `bot ${n} joins`).toBe(200);
      // Keep reading, so the server never takes a bot for a slow client.
      void response.body?.pipeTo(new WritableStream(), { signal: controller.signal }).catch(() => {});
    }),
  );
}

test("a large room shows the exact count, says the list is a sample, and pages through everyone", async ({
  openChat,
  server,
}) => {
  const bots = new AbortController();
  try {
    await connectBots(server, 1, 120, bots);
    const alice = await joined(openChat, "Alice");

    // The exact count; the sample the stream gave (100, Alice among them).
    await expect(alice.userCount).toHaveText("121");
    await expect(alice.users).toHaveCount(100);
    await expect(alice.ownUser()).toHaveCount(1);
    const note = alice.page.locator(UI.userSample);
    await expect(note).toHaveText(/100 recent of 121/);

    // Everyone, page by page.
    const firstPage = alice.page.waitForResponse((response) => new URL(response.url()).pathname === "/users");
    await alice.page.getByRole("button", { name: "Show everyone" }).click();
    expect((await firstPage).status()).toBe(200);
    await expect(note).toHaveText(/Showing 100 of 121/);
    await alice.page.getByRole("button", { name: "Load more" }).click();
    await expect(alice.users).toHaveCount(121);
    await expect(note).toHaveText(/Showing 121 of 121/);
    await expect(alice.page.getByRole("button", { name: "Load more" })).toHaveCount(0);
    await expect(alice.user("bot-1")).toContainText("Bot 1");
    await expect(alice.ownUser()).toHaveCount(1);

    // Back to the sample; the count follows joins.
    await alice.page.getByRole("button", { name: "Show recent only" }).click();
    await expect(alice.users).toHaveCount(100);
    await connectBots(server, 121, 5, bots);
    await expect(alice.userCount).toHaveText("126");
    await expect(alice.user("bot-125")).toContainText("Bot 125");
    await expect(alice.users).toHaveCount(100);
  } finally {
    bots.abort();
  }
});

test("a room that grows past the threshold and shrinks back shows the whole list again", async ({ openChat }) => {
  const alice = await joined(openChat, "Alice");
  const bob = await joined(openChat, "Bob");
  const cleo = await joined(openChat, "Cleo");
  await expect(alice.userCount).toHaveText("3");
  await expect(alice.page.locator(UI.userSample)).toBeVisible();
  await cleo.context.close();
  await expect(alice.userCount).toHaveText("2", { timeout: 25_000 });
  await expect(alice.page.locator(UI.userSample)).toHaveCount(0);
  await expect(alice.users).toHaveCount(2);
  await expect(bob.users).toHaveCount(2);
});
