import type { Locator } from "@playwright/test";
import { test, expect, joined, askToJoinRoom, joinRoom as joinFollowed, holdStreamsNaming, postAs, streamsOpen, ChatPage, expectNoSeriousViolations, screenshot } from "./ui-helpers";

// Rooms in the browser (protocol version 2): the sidebar of followed rooms with unread counts
// and mention marks, joining by name, each room at its own address (back, forward, reload),
// one stream for all of them, reading a room's history back, and the refusals (51 rooms, a
// server with no room for more) explained and recovered from.

const ROOMS = {
  list: '[data-testid="room-list"]',
  entry: 'li[data-testid="room"]',
  unread: '[data-testid="room-unread"]',
  mention: '[data-testid="room-mention"]',
  title: '[data-testid="room-title"]',
  error: '[data-testid="room-error"]',
  leave: '[data-testid="leave-room"]',
  history: '[data-testid="history-status"]',
  jump: '[data-testid="jump-to-newest"]',
} as const;

/** The sidebar entry of `room`. */
function entry(chat: ChatPage, room: string): Locator {
  return chat.page.locator(`${ROOMS.list} ${ROOMS.entry}[data-room="${room}"]`);
}

/** The rooms in the sidebar, in order. */
async function followedRooms(chat: ChatPage): Promise<string[]> {
  return chat.page.locator(`${ROOMS.list} ${ROOMS.entry}`).evaluateAll((items) => items.map((item) => item.getAttribute("data-room") ?? ""));
}

/** Joins (or creates) `room` with the sidebar's form and waits until it is the room shown, followed. */
async function joinRoom(chat: ChatPage, room: string): Promise<void> {
  await joinFollowed(chat, room);
  await expectRoom(chat, room);
}

/** Waits until `room` is shown: its address, its title, its sidebar entry marked current. */
async function expectRoom(chat: ChatPage, room: string): Promise<void> {
  await expect(chat.page).toHaveURL(room === "general" ? /\/$/ : new RegExp(`/r/${room}$`));
  await expect(chat.page.locator(ROOMS.title)).toHaveText(`# ${room}`);
  await expect(entry(chat, room)).toHaveClass(/\bcurrent\b/);
  await expect(entry(chat, room).getByRole("link")).toHaveAttribute("aria-current", "page");
}

/** Posts in `room` as `chat`'s user, through `POST /message`. */
async function postIn(chat: ChatPage, room: string, texts: string[]): Promise<number[]> {
  const origin = new URL(chat.page.url()).origin;
  const seqs: number[] = [];
  for (const message of texts) {
    const response = await chat.context.request.post(`${origin}/message`, { data: { message, room } });
    expect(response.status(), `POST /message in ${room}: ${await response.text()}`).toBe(200);
    seqs.push((await response.json()).seq);
  }
  return seqs;
}

test("two users in two rooms see each room's messages only there, with unread counts and a mention mark", async ({
  openChat,
}) => {
  const alice = await joined(openChat, "Alice");
  const bob = await joined(openChat, "Bob");
  await expectRoom(alice, "general");

  // One stream follows both rooms once Alice joins dev.
  const reopened = alice.page.waitForRequest(/\/sse\?.*rooms=general,dev(&|$)/);
  await joinRoom(alice, "dev");
  await reopened;
  expect(await followedRooms(alice)).toEqual(["general", "dev"]);
  await alice.expectLive();
  await joinRoom(bob, "dev");
  // The people list is the room's: both are in dev.
  await expect(alice.users).toHaveCount(2);
  await bob.page.locator(`${ROOMS.list} a[href="/"]`).click();
  await expectRoom(bob, "general");

  await alice.send("hello dev");
  await alice.expectMessage("hello dev", "Alice", true);
  await expect(entry(bob, "dev").locator(ROOMS.unread)).toHaveText(/^1\b/);
  await expect(entry(bob, "dev").locator(ROOMS.mention)).toHaveCount(0);
  await alice.send("Bob, can you look at this?");
  await expect(entry(bob, "dev").locator(ROOMS.unread)).toHaveText(/^2\b/);
  await expect(entry(bob, "dev").locator(ROOMS.mention)).toBeVisible();
  await expect(entry(bob, "general").locator(ROOMS.unread)).toHaveCount(0);
  await expect(bob.message("hello dev")).toHaveCount(0);

  // Bob's own message in general goes to general only, and counts for Alice, who is in dev.
  await bob.send("general only");
  await bob.expectMessage("general only", "Bob", true);
  await expect(entry(alice, "general").locator(ROOMS.unread)).toHaveText(/^1\b/);
  await expect(alice.message("general only")).toHaveCount(0);
  await expect(entry(alice, "dev").locator(ROOMS.unread)).toHaveCount(0);

  // Opening dev shows its messages and clears its count and mark.
  await entry(bob, "dev").getByRole("link").click();
  await expectRoom(bob, "dev");
  await bob.expectMessage("hello dev", "Alice", false);
  await bob.expectMessage("Bob, can you look at this?", "Alice", false);
  await expect(bob.message("general only")).toHaveCount(0);
  await expect(entry(bob, "dev").locator(ROOMS.unread)).toHaveCount(0);
  await expect(entry(bob, "dev").locator(ROOMS.mention)).toHaveCount(0);
  await bob.send("reply in dev");
  await alice.expectMessage("reply in dev", "Bob", false);
});

test("a room name is checked before joining, and a draft stays with its room", async ({ openChat }) => {
  const alice = await joined(openChat, "Alice");
  const field = alice.page.getByLabel("Join or create a room", { exact: true });
  await field.fill("Bad Name!");
  await alice.page.locator('form[data-testid="join-room"]').getByRole("button", { name: "Join" }).click();
  const error = alice.page.locator('[data-testid="room-name-error"]');
  await expect(error).toHaveText(/lower-case letters a-z, digits/);
  await expect(field).toHaveAttribute("aria-invalid", "true");
  await expectRoom(alice, "general");

  await alice.composerInput.fill("half-typed for general");
  await joinRoom(alice, "ideas");
  await expect(error).toHaveCount(0);
  await expect(alice.composerInput).toHaveValue("");
  await alice.composerInput.fill("half-typed for ideas");
  await alice.page.locator(`${ROOMS.list} a[href="/"]`).click();
  await expectRoom(alice, "general");
  await expect(alice.composerInput).toHaveValue("half-typed for general");
  await entry(alice, "ideas").getByRole("link").click();
  await expect(alice.composerInput).toHaveValue("half-typed for ideas");
});

test("each room has its address: back and forward move between rooms, and a deep link and the rooms followed survive a reload", async ({
  openChat,
  server,
}) => {
  const alice = await joined(openChat, "Alice");
  await joinRoom(alice, "alpha");
  await alice.send("in alpha");
  await alice.expectMessage("in alpha", "Alice", true);
  await joinRoom(alice, "beta");
  await expect(alice.message("in alpha")).toHaveCount(0);

  await alice.page.goBack();
  await expectRoom(alice, "alpha");
  await alice.expectMessage("in alpha", "Alice", true);
  await alice.page.goBack();
  await expectRoom(alice, "general");
  await alice.page.goForward();
  await expectRoom(alice, "alpha");
  await alice.page.goForward();
  await expectRoom(alice, "beta");

  // A deep link to a room not followed yet follows it.
  await alice.page.goto("/r/gamma");
  await alice.waitForHydration();
  await expectRoom(alice, "gamma");
  await alice.expectLive();
  expect(await followedRooms(alice)).toEqual(["general", "alpha", "beta", "gamma"]);
  await alice.reload();
  await expectRoom(alice, "gamma");
  await alice.expectLive();
  expect(await followedRooms(alice)).toEqual(["general", "alpha", "beta", "gamma"]);

  // History of a room reached by address: alpha's message is there after a reload.
  await alice.page.goto("/r/alpha");
  await alice.waitForHydration();
  await expectRoom(alice, "alpha");
  await alice.expectMessage("in alpha", "Alice", true);

  // Leaving a room shows the first room followed, and stays left after a reload.
  await alice.page.locator(ROOMS.leave).click();
  await expectRoom(alice, "general");
  expect(await followedRooms(alice)).toEqual(["general", "beta", "gamma"]);
  await alice.reload();
  await alice.expectLive();
  expect(await followedRooms(alice)).toEqual(["general", "beta", "gamma"]);

  // A bad room name is no room: 404 and a "not found" page.
  const bad = await alice.page.goto(`${server.url}/r/Bad!`);
  expect(bad?.status()).toBe(404);
  await expect(alice.page.getByRole("heading", { name: "Page not found" })).toBeVisible();
  const good = await alice.page.goto(`${server.url}/r/beta`);
  expect(good?.status()).toBe(200);
});

test("a 51st room is refused with an explanation, also when the address names it", async ({ openChat }) => {
  const alice = await openChat("Alice");
  const fifty = ["general", ...Array.from({ length: 49 }, (_, i) => `room-${i + 1}`)];
  await alice.page.evaluate((rooms) => window.localStorage.setItem("ssechat.rooms", rooms.join(",")), fifty);
  await alice.reload();
  await alice.join("Alice");
  expect(await followedRooms(alice)).toEqual(fifty);

  await alice.page.goto("/r/one-too-many");
  await alice.waitForHydration();
  await alice.expectLive();
  await expect(alice.page.locator(ROOMS.error)).toHaveText(/50 rooms.*Leave a room/);
  await expectRoom(alice, "general");
  expect(await followedRooms(alice)).toEqual(fifty);

  // Leaving one makes room for it.
  await entry(alice, "room-7").getByRole("link").click();
  await expectRoom(alice, "room-7");
  await alice.page.locator(ROOMS.leave).click();
  await joinRoom(alice, "one-too-many");
  await expect(alice.page.locator(ROOMS.error)).toHaveCount(0);
});

test.describe("a server with no room for more rooms", () => {
  // general and one more.
  test.use({ serverArgs: ["--max-rooms", "2"] });

  test("says so, gives the room up and stays connected", async ({ openChat, server }) => {
    const alice = await joined(openChat, "Alice");
    await joinRoom(alice, "first");
    await alice.expectLive();
    await askToJoinRoom(alice, "second");
    await expect(alice.page.locator(ROOMS.error)).toHaveText("This server has too many rooms; try an existing one.");
    await expectRoom(alice, "general");
    expect(await followedRooms(alice)).toEqual(["general", "first"]);
    await alice.expectLive();
    await alice.send("still here");
    await alice.expectMessage("still here", "Alice", true);
    // The refused stream held the one before it open; the stream for the rooms left took that
    // one over and closed it once open: one stream, none left behind.
    await expect.poll(() => streamsOpen(server), { message: "Alice's streams" }).toBe(1);
  });
});

test.describe("reading back", () => {
  // 500 messages are posted at once: lift the rate limits.
  test.use({ serverArgs: ["--rate-burst", "1000", "--addr-rate-burst", "1000"] });

  test("scrolling to the top reads 500 messages back in order, once each, without moving the view", async ({
    openChat,
  }) => {
    // 500 posts and ten pages read back: 16 s on an idle machine, over 120 s with both cores
    // contended.
    test.setTimeout(240_000);
    const alice = await joined(openChat, "Alice");
    const texts = Array.from({ length: 500 }, (_, i) => `old message ${String(i + 1).padStart(3, "0")}`);
    await postAs(alice, texts);
    const bob = await joined(openChat, "Bob");
    await bob.expectMessage("old message 500", "Alice", false);
    // The stream brings the newest 50; the rest is read back.
    await expect(bob.messages).toHaveCount(50);
    const history = bob.page.locator(ROOMS.history);

    for (let round = 0; round < 10; round++) {
      const firstText = await bob.messages.first().locator('[data-testid="message-text"]').textContent();
      if (firstText === "old message 001") break;
      // The reader's eye: the message after the oldest (the oldest itself loses its author line
      // once older messages by the same author go above it).
      const watchedText = await bob.messages.nth(1).locator('[data-testid="message-text"]').textContent();
      const count = await bob.messages.count();
      // Scroll to the top, as a reader would, and note where the watched message is.
      const before = await bob.messageList.evaluate((list) => {
        list.scrollTop = 0;
        list.dispatchEvent(new Event("scroll"));
        const item = list.querySelectorAll('li[data-testid="message"]')[1];
        return item.getBoundingClientRect().top - list.getBoundingClientRect().top;
      });
      await expect.poll(() => bob.messages.count(), { message: `round ${round}: older messages come` }).toBeGreaterThan(count);
      await expect(history).not.toHaveText(/Loading/);
      // What the reader was looking at stays where it was.
      const watched = bob.message(watchedText!);
      await expect
        .poll(() =>
          watched.evaluate((item) => {
            const list = item.closest("ol")!;
            return Math.round(item.getBoundingClientRect().top - list.getBoundingClientRect().top);
          }),
        )
        .toBe(Math.round(before));
    }
    await expect(history).toHaveText("This is the start of the room.");
    const shown = await bob.messageList.locator('[data-testid="message-text"]').allTextContents();
    expect(shown).toEqual(texts);

    // Far up, the way back down.
    await bob.page.locator(ROOMS.jump).click();
    await expect
      .poll(() => bob.messageList.evaluate((list) => list.scrollHeight - list.scrollTop - list.clientHeight))
      .toBeLessThan(2);
    await expect(bob.message("old message 500")).toBeInViewport();
  });
});

test("the people list is the room's own", async ({ openChat }) => {
  const alice = await joined(openChat, "Alice");
  const bob = await joined(openChat, "Bob");
  await expect(alice.users).toHaveCount(2);
  await joinRoom(alice, "quiet");
  await expect(alice.users).toHaveCount(1);
  await expect(alice.ownUser()).toBeVisible();
  await joinRoom(bob, "quiet");
  await expect(alice.users).toHaveCount(2);
  await expect(alice.userCount).toHaveText("2");
  await bob.page.locator(ROOMS.leave).click();
  await expectRoom(bob, "general");
  await expect(alice.users).toHaveCount(1);
  // Seqs stay server-wide: a post in another room still lands in its own room.
  await postIn(bob, "general", ["back in general"]);
  await expect(alice.message("back in general")).toHaveCount(0);
  await expect(entry(alice, "general").locator(ROOMS.unread)).toHaveText(/^1\b/);
});

test("a post refused as not in the room says so and keeps the draft for a retry", async ({ openChat }) => {
  const alice = await joined(openChat, "Alice");
  await joinRoom(alice, "late");
  await alice.page.route("**/message", (route) => route.fulfill({ status: 403, body: "not in room" }), { times: 1 });
  await alice.send("first try");
  await expect(alice.composerError).toHaveText(/not in this room yet.*try again/i);
  await expect(alice.composerInput).toHaveValue("first try");
  await alice.page.locator('[data-testid="composer-retry"]').click();
  await alice.expectMessage("first try", "Alice", true);
  await expect(alice.composerError).toHaveCount(0);
});

test("a room just joined takes a message only once the stream follows it, so Send waits rather than fail", async ({
  openChat,
}) => {
  const alice = await joined(openChat, "Alice");
  let posts = 0;
  alice.page.on("request", (request) => {
    if (request.method() === "POST" && new URL(request.url()).pathname === "/message") posts += 1;
  });
  // Until the server has the stream that names the new room, a post there is refused.
  const stream = await holdStreamsNaming(alice.context, "slow");
  await askToJoinRoom(alice, "slow");
  await expectRoom(alice, "slow");
  await expect.poll(stream.held, { message: "the stream that names the room was asked for" }).toBeGreaterThan(0);
  await alice.composerInput.fill("as soon as I am in");
  await expect(alice.sendButton).toBeDisabled();
  await expect(alice.composer).toHaveAttribute("data-in-room", "false");
  await expect(alice.page.locator('[data-testid="composer-joining"]')).toHaveText(/joining the room/i);
  await alice.composerInput.press("Enter");
  await expect(alice.composerInput).toHaveValue("as soon as I am in");
  await expect(alice.composerError).toHaveCount(0);

  stream.release();
  await expect(alice.page.locator('[data-testid="composer-joining"]')).toHaveCount(0);
  await alice.sendButton.click();
  await alice.expectMessage("as soon as I am in", "Alice", true);
  await expect(alice.composerError).toHaveCount(0);
  await expect(alice.composerInput).toHaveValue("");
  expect(posts, "one post, the one that went through").toBe(1);
});

test("joining a room keeps the old stream open until the new one is, so the rooms on both lists never lose you", async ({
  openChat,
  server,
}) => {
  const alice = await joined(openChat, "Alice");
  const bob = await joined(openChat, "Bob");
  await expect(bob.users.filter({ hasText: "Alice" })).toHaveCount(1);
  const before = await streamsOpen(server);
  expect(before, "Alice's stream and Bob's").toBe(2);

  const stream = await holdStreamsNaming(alice.context, "slow");
  // The page asks for the new room's newest messages right after it asks for the new stream: by
  // the time that answer is in, the server has seen the old stream close, if it was closed.
  const newest = alice.page.waitForResponse((response) => {
    const url = new URL(response.url());
    return url.pathname === "/messages" && url.searchParams.get("room") === "slow";
  });
  await askToJoinRoom(alice, "slow");
  await expect.poll(stream.held, { message: "the stream that names the room was asked for" }).toBeGreaterThan(0);
  await newest;
  expect(await streamsOpen(server), "Alice's old stream stays open while the new one is opening").toBe(before);

  stream.release();
  await expect(alice.composer).toHaveAttribute("data-in-room", "true");
  await expect
    .poll(() => streamsOpen(server), { message: "the old stream closed once the new one was open" })
    .toBe(before);
  await postIn(alice, "general", ["still here"]);
  await bob.expectMessage("still here", "Alice", false);
  await expect(bob.notice(/^Alice (left|joined)$/)).toHaveCount(0);
  await expect(bob.users.filter({ hasText: "Alice" })).toHaveCount(1);
});

test("back in a room, a divider sits above the first message by others since you left it", async ({ openChat }, testInfo) => {
  const alice = await joined(openChat, "Alice");
  const bob = await joined(openChat, "Bob");
  await postIn(bob, "general", ["seen before leaving"]);
  await alice.expectMessage("seen before leaving", "Bob", false);
  const divider = alice.page.locator('li[data-testid="new-divider"]');
  await expect(divider).toHaveCount(0);

  await joinRoom(alice, "dev");
  // Alice's own message (from another tab, say) is not news; Bob's two are.
  await postIn(alice, "general", ["mine while away"]);
  await postIn(bob, "general", ["while away 1", "while away 2"]);
  await expect(entry(alice, "general").locator(ROOMS.unread)).toHaveText(/^2\b/);

  await entry(alice, "general").getByRole("link").click();
  await expectRoom(alice, "general");
  await expect(divider).toHaveCount(1);
  await expect(divider).toHaveText("New since you were last here");
  const after = alice.message("while away 1");
  await expect(after).toHaveCount(1);
  const next = await divider.evaluate((li) => li.nextElementSibling?.getAttribute("data-seq") ?? null);
  expect(next).toBe(await after.getAttribute("data-seq"));
  await expectNoSeriousViolations(alice.page, testInfo, "the new-since divider");
  await screenshot(alice.page, testInfo, "rooms-new-since-divider");

  // Away and back with nothing new: no divider.
  await entry(alice, "dev").getByRole("link").click();
  await expectRoom(alice, "dev");
  await entry(alice, "general").getByRole("link").click();
  await expectRoom(alice, "general");
  await alice.expectMessage("while away 2", "Bob", false);
  await expect(divider).toHaveCount(0);
});
