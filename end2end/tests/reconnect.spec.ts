import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { test, expect, ChatPage, startServer } from "./fixtures";

// No message is lost: a user whose stream is cut (here: the server restarts, and the user's
// way back is blocked while others keep talking) sees every message it missed once it is
// back, each once, and the connection indicator shows the outage while it lasts.

test("a user whose stream is cut sees every missed message once it is back, without duplicates", async ({
  browser,
}, testInfo) => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "ssechat-e2e-restart-"));
  let server = await startServer([], { dataDir });
  const addr = new URL(server.handle.url).host;
  const open = async (label: string) => {
    const context = await browser.newContext({ baseURL: server.handle.url });
    const chat = new ChatPage(context, await context.newPage(), label);
    await chat.open();
    return chat;
  };
  try {
    const alice = await open("Alice");
    await alice.join("Alice");
    const bob = await open("Bob");
    await bob.join("Bob");
    await alice.send("before the outage");
    await bob.expectMessage("before the outage", "Alice", false);

    // Bob's way back to the server is blocked, then the server restarts on the same address
    // and data: both streams are cut.
    await bob.page.route("**/sse**", (route) => route.abort());
    const problem = await server.stop();
    expect(problem, "the server stops cleanly").toBeNull();
    await expect(bob.status).toHaveAttribute("data-state", "reconnecting");
    server = await startServer([], { addr, dataDir });

    // Alice comes back by herself and talks while Bob is away.
    await alice.expectLive();
    const missed = ["missed one", "missed two", "missed three"];
    for (const text of missed) {
      await alice.send(text);
      await alice.expectMessage(text, "Alice", true);
    }
    await expect(bob.status).toHaveAttribute("data-state", "reconnecting");
    await expect(bob.message("missed one")).toHaveCount(0);

    // Bob's network is back: he catches up on everything, once each, in order.
    await bob.page.unroute("**/sse**");
    await expect(bob.status).toHaveAttribute("data-state", "live", { timeout: 30_000 });
    for (const text of missed) {
      await bob.expectMessage(text, "Alice", false);
    }
    await bob.expectMessage("before the outage", "Alice", false);
    await expect(bob.messages).toHaveCount(4);
    const seqs = await bob.messages.evaluateAll((items) => items.map((item) => Number(item.getAttribute("data-seq"))));
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    expect(new Set(seqs).size).toBe(seqs.length);
  } finally {
    const problem = await server.stop();
    await testInfo.attach("server log", { body: server.handle.logs(), contentType: "text/plain" });
    fs.rmSync(dataDir, { recursive: true, force: true });
    expect(problem).toBeNull();
  }
});
