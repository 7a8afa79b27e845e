import { test, expect } from "./fixtures";

test("the join form refuses a blank name", async ({ openChat }) => {
  const visitor = await openChat("visitor");
  const streams: string[] = [];
  visitor.page.on("request", (request) => {
    if (new URL(request.url()).pathname === "/sse") streams.push(request.url());
  });

  await expect(visitor.joinForm).toBeVisible();
  await visitor.joinName.fill("   ");
  await visitor.joinButton.click();

  await expect(visitor.joinError).toBeVisible();
  await expect(visitor.joinError).toHaveText(/\S/);
  // Still on the join form; no chat view, and no stream was opened.
  await expect(visitor.joinForm).toBeVisible();
  await expect(visitor.composer).toBeHidden();
  await expect(visitor.messageList).toBeHidden();
  expect(streams).toEqual([]);
});
