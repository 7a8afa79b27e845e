// The original design, as the article builds it ("Server-Sent Events Explained", Kumneger
// Wondimu: a group chat with Hono on Bun), kept as the benchmark's baseline. The handlers are
// the article's code; only the port comes from the environment and the static file route
// (`serveStatic` for ./public) is left out, since no benchmark asks for a page.
//
// Run by scripts/bench.sh: PORT=NNNN taskset -c 0 bun run bench/peers/hono/server.ts
// (with bun and hono installed by npm into target/bench-peers/hono/).
import { Hono } from "hono";
import { streamSSE, type SSEStreamingApi } from "hono/streaming";

const app = new Hono();

const users: { id: string; name: string; stream: SSEStreamingApi }[] = [];

app.get("/sse", async (c) => {
  const userID = c.req.query("id");
  const name = c.req.query("name");
  if (!userID || !name) {
    return c.text("id and name are required");
  }
  return streamSSE(c, async (stream) => {
    stream.writeSSE({
      event: "all-users",
      data: JSON.stringify(users.map((u) => ({ id: u.id, name: u.name }))),
    });
    users.forEach(({ stream }) => {
      stream.writeSSE({
        data: JSON.stringify({
          id: userID,
          name,
        }),
        event: "new-user",
      });
    });
    users.push({ id: userID, name, stream });
    stream.onAbort(() => {
      users.splice(
        users.findIndex((u) => u.id === userID),
        1,
      );
      users.forEach((user) =>
        user.stream.writeSSE({
          data: JSON.stringify({ id: userID, name }),
          event: "user-leave",
        }),
      );
      console.log(`user ${userID} disconnected`);
    });
    while (true) {
      await stream.writeSSE({
        data: users
          .map((u) => ({
            id: u.id,
            name: u.name,
          }))
          .join("\n"),
        event: "users",
        id: String(Math.random()),
      });
      await stream.sleep(2000);
    }
  });
});

app.post("/message", async (c) => {
  const body = (await c.req.parseBody()) as {
    message: string;
    id: string;
    name: string;
  };
  users.forEach((user) => {
    user.stream.writeSSE({
      data: JSON.stringify(body),
      event: "message",
    });
  });
  return c.json(body);
});

// The article exports the app for Bun to serve; served explicitly here so that the port, the
// loopback address and production mode are set in one place.
Bun.serve({
  port: Number(process.env.PORT ?? 3000),
  hostname: "127.0.0.1",
  development: false,
  fetch: app.fetch,
});
