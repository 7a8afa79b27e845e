import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { test, expect, joined, ChatPage, startServer, expectCspClean, UI } from "./ui-helpers";

// The composer: Enter and Shift+Enter, the length counter, the draft kept while a send is in
// flight, failed sends explained and retried, and no sending while the stream is down.

test("Enter sends and Shift+Enter starts a new line", async ({ openChat }) => {
  const alice = await joined(openChat, "Alice");
  const bob = await joined(openChat, "Bob");

  await alice.composerInput.click();
  await alice.page.keyboard.type("line one");
  await alice.page.keyboard.press("Shift+Enter");
  await alice.page.keyboard.type("line two");
  await expect(alice.composerInput).toHaveValue("line one\nline two");
  await expect(bob.messages).toHaveCount(0);

  await alice.page.keyboard.press("Enter");
  const message = bob.message("line two");
  await expect(message).toHaveCount(1);
  expect(await bob.messageText(message).textContent()).toBe("line one\nline two");
  await expect(bob.messageAuthor(message)).toHaveText("Alice");
  await expect(alice.composerInput).toHaveValue("");
  await expect(alice.composerInput).toBeFocused();
});

test("a counter appears near the length limit, and an overlong message cannot be sent", async ({ openChat }) => {
  const alice = await joined(openChat, "Alice");
  const counter = alice.page.locator(UI.charCount);
  const posts: string[] = [];
  alice.page.on("request", (request) => {
    if (new URL(request.url()).pathname === "/message") posts.push(request.url());
  });

  await alice.composerInput.fill("a".repeat(1799));
  await expect(counter).toHaveCount(0);
  await alice.composerInput.fill("a".repeat(1800));
  await expect(counter).toHaveText("200 characters left");
  await alice.composerInput.fill("a".repeat(1999));
  await expect(counter).toHaveText("1 character left");
  await alice.composerInput.fill("a".repeat(2003));
  await expect(counter).toHaveText("3 characters too many");
  await expect(alice.composerInput).toHaveAttribute("aria-invalid", "true");
  await expect(alice.sendButton).toBeDisabled();
  await alice.composerInput.press("Enter");
  await alice.composerInput.fill("a".repeat(2000));
  await expect(alice.sendButton).toBeEnabled();
  await alice.sendButton.click();
  await expect(alice.messages).toHaveCount(1);
  expect(posts).toHaveLength(1);
});

test("the draft stays while a send is in flight, and clears once the message is stored", async ({ openChat }) => {
  const alice = await joined(openChat, "Alice");
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  let arrived!: () => void;
  const inFlight = new Promise<void>((resolve) => (arrived = resolve));
  await alice.page.route("**/message", async (route) => {
    arrived();
    await released;
    await route.continue();
  });

  await alice.send("held back for a moment");
  await inFlight;
  await expect(alice.composerInput).toHaveValue("held back for a moment");
  await expect(alice.sendButton).toBeDisabled();
  await expect(alice.messages).toHaveCount(0);

  release();
  await alice.expectMessage("held back for a moment", "Alice", true);
  await expect(alice.composerInput).toHaveValue("");
});

test("a failed send is explained in a sentence, keeps the draft, and goes through on retry", async ({ openChat }) => {
  const alice = await joined(openChat, "Alice");
  const bob = await joined(openChat, "Bob");
  await alice.page.route("**/message", (route) => route.fulfill({ status: 500, body: "internal error" }), { times: 1 });

  await alice.send("try, try again");
  await expect(alice.composerError).toBeVisible();
  await expect(alice.composerError).toHaveText(/^[A-Z].*[.!]$/);
  await expect(alice.composerError).not.toContainText("500");
  await expect(alice.composerInput).toHaveValue("try, try again");
  await expect(bob.messages).toHaveCount(0);

  await alice.page.locator(UI.composerRetry).click();
  await bob.expectMessage("try, try again", "Alice", false);
  await alice.expectMessage("try, try again", "Alice", true);
  await expect(alice.composerError).toHaveCount(0);
  await expect(alice.composerInput).toHaveValue("");
});

test("each refusal of the server reads as a plain sentence, not a status code", async ({ openChat }) => {
  const alice = await joined(openChat, "Alice");
  const expected: Record<number, RegExp> = {
    400: /did not accept this message/i,
    403: /no longer signed in/i,
    409: /in use in another browser/i,
    413: /too large/i,
    415: /did not understand/i,
    429: /too quickly.*wait 3 seconds/i,
    503: /busy/i,
  };
  for (const [status, sentence] of Object.entries(expected)) {
    await alice.page.route(
      "**/message",
      (route) =>
        route.fulfill({
          status: Number(status),
          contentType: "text/plain",
          headers: Number(status) === 429 ? { "Retry-After": "3" } : {},
          body: "message must not be blank",
        }),
      { times: 1 },
    );
    await alice.send(`refused with ${status}`);
    await expect(alice.composerError, `answer ${status}`).toHaveText(sentence);
    await expect(alice.composerError).toHaveText(/^[A-Z][^]*\.$/);
    await expect(alice.composerError).not.toHaveText(/\b[1-5]\d\d\b/);
    await expect(alice.composerInput).toHaveValue(`refused with ${status}`);
    if (Number(status) === 429) {
      // Retrying before the wait is over would only be refused again.
      await expect(alice.page.locator(UI.composerRetry)).toBeDisabled();
      await expect(alice.sendButton).toBeDisabled();
      await expect(alice.page.locator(UI.composerRetry)).toBeEnabled({ timeout: 6_000 });
    }
  }
  await expect(alice.messages).toHaveCount(0);
});

// One message per five seconds: "too soon" must stay too soon on a machine slowed down by
// other tests (with one per second, a busy second let the second message through).
test.describe("with a rate limit of one message per five seconds", () => {
  test.use({ serverArgs: ["--rate-burst", "1", "--rate-per-sec", "0.2"] });

  test("a message refused as too fast goes through when retried after the wait", async ({ openChat }) => {
    const alice = await joined(openChat, "Alice");
    const bob = await joined(openChat, "Bob");
    await alice.send("first");
    await alice.expectMessage("first", "Alice", true);
    await alice.send("second, too soon");
    await expect(alice.composerError).toHaveText(/too quickly/i);
    await expect(alice.composerInput).toHaveValue("second, too soon");

    // Retry is available once the server's Retry-After has passed, and then it works.
    await alice.page.locator(UI.composerRetry).click();
    await bob.expectMessage("second, too soon", "Alice", false);
    await expect(alice.composerError).toHaveCount(0);
  });
});

test("sending is disabled while the stream is down and comes back with it", async ({ browser }, testInfo) => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "ssechat-e2e-ui-offline-"));
  let server = await startServer([], { dataDir });
  const addr = new URL(server.handle.url).host;
  const context = await browser.newContext({ baseURL: server.handle.url });
  const alice = new ChatPage(context, await context.newPage(), "Alice");
  try {
    await alice.open();
    await alice.join("Alice");
    await alice.composerInput.fill("written while offline");

    // The way back is blocked and the server goes away: the stream is down.
    await alice.page.route("**/sse**", (route) => route.abort());
    expect(await server.stop(), "the server stops cleanly").toBeNull();
    await expect(alice.status).toHaveAttribute("data-state", "reconnecting");
    await expect(alice.page.locator(UI.composerOffline)).toBeVisible();
    await expect(alice.sendButton).toBeDisabled();
    await alice.composerInput.press("Enter");
    await expect(alice.composerInput).toHaveValue("written while offline");
    await expect(alice.composerInput).toBeEditable();

    // Back: the stream reconnects and sending works again, with the draft that was kept.
    server = await startServer([], { addr, dataDir });
    await alice.page.unroute("**/sse**");
    await expect(alice.status).toHaveAttribute("data-state", "live", { timeout: 30_000 });
    await expect(alice.page.locator(UI.composerOffline)).toHaveCount(0);
    await expect(alice.sendButton).toBeEnabled();
    await alice.sendButton.click();
    await alice.expectMessage("written while offline", "Alice", true);
    await expectCspClean(alice);
  } finally {
    await context.close();
    const problem = await server.stop();
    await testInfo.attach("server log", { body: server.handle.logs(), contentType: "text/plain" });
    fs.rmSync(dataDir, { recursive: true, force: true });
    expect(problem).toBeNull();
  }
});
