import { test, expect, joined, postAs, expectCspClean } from "./ui-helpers";

// How one message looks: its author and time, its text with line breaks and links, long words
// wrapped; how consecutive messages group and one's own stand apart. Every check is made in the
// browser that receives the message, unless it is about one's own.

test("a message shows its author and a relative time, with the exact time on hover", async ({ openChat }) => {
  const alice = await joined(openChat, "Alice");
  const bob = await joined(openChat, "Bob");
  await postAs(alice, ["What time is it?"]);

  const message = await bob.expectMessage("What time is it?", "Alice", false);
  const time = bob.messageTime(message);
  await expect(time).toHaveText("now");
  // The exact time, in the reader's locale, is the hover title; the machine one is `datetime`.
  const title = (await time.getAttribute("title")) ?? "";
  expect(title).toContain(String(new Date().getFullYear()));
  expect(title).toMatch(/\d{1,2}:\d{2}:\d{2}/);
  await expect(time).toHaveAttribute("datetime", /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}/);
  await expect(bob.messageAuthor(message)).toBeVisible();
  await expectCspClean(bob);
});

test("line breaks are kept and a long word wraps inside its bubble", async ({ openChat }) => {
  const alice = await joined(openChat, "Alice");
  const bob = await joined(openChat, "Bob");
  const word = "Supercalifragilistic".repeat(20);
  await postAs(alice, ["first line\nsecond line", word]);

  await expect(bob.message("second line")).toHaveCount(1);
  const lines = bob.messageText(bob.message("second line"));
  // innerText follows the rendering: a line break that CSS collapsed would read as a space.
  expect(await lines.evaluate((text) => (text as HTMLElement).innerText)).toBe("first line\nsecond line");
  const lineBox = await lines.boundingBox();
  const oneLine = await bob.messageText(bob.message(word)).evaluate((text) => parseFloat(getComputedStyle(text).lineHeight));
  expect(lineBox!.height).toBeGreaterThan(1.8 * oneLine);

  const long = bob.messageText(bob.message(word));
  await expect(long).toHaveText(word);
  const overflow = await long.evaluate((text) => text.scrollWidth - text.clientWidth);
  expect(overflow, "the long word does not overflow its bubble").toBeLessThanOrEqual(1);
  const list = await bob.messageList.boundingBox();
  const bubble = await long.boundingBox();
  expect(bubble!.x + bubble!.width).toBeLessThanOrEqual(list!.x + list!.width);
  const pageOverflow = await bob.page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  expect(pageOverflow).toBeLessThanOrEqual(0);
});

test("links are clickable, open safely in a new tab, and nothing else becomes markup", async ({ openChat }) => {
  const alice = await joined(openChat, "Alice");
  const bob = await joined(openChat, "Bob");
  const text = "menu: https://example.com/menu?a=1&b=2. Not links: javascript:alert(1) www.example.com <b>bold</b>";
  await postAs(alice, [text]);

  const message = await bob.expectMessage(text, "Alice", false);
  const links = message.locator("a");
  await expect(links).toHaveCount(1);
  await expect(links).toHaveText("https://example.com/menu?a=1&b=2");
  await expect(links).toHaveAttribute("href", "https://example.com/menu?a=1&b=2");
  await expect(links).toHaveAttribute("target", "_blank");
  await expect(links).toHaveAttribute("rel", "noopener noreferrer");
  await expect(message.locator("b")).toHaveCount(0);
  // The text around the link is text: all of it is there, in order.
  await expect(bob.messageText(message)).toHaveText(text);

  // The link opens in a new tab that cannot reach back to the chat.
  await bob.context.route("https://example.com/**", (route) => route.fulfill({ status: 200, body: "menu" }));
  const [popup] = await Promise.all([bob.context.waitForEvent("page"), links.click()]);
  await popup.waitForLoadState();
  expect(await popup.evaluate(() => window.opener)).toBeNull();
  expect(popup.url()).toBe("https://example.com/menu?a=1&b=2");
});

test("consecutive messages by one author are grouped, and one's own sit on the other side", async ({ openChat }) => {
  const alice = await joined(openChat, "Alice");
  const bob = await joined(openChat, "Bob");
  await postAs(alice, ["group one", "group two"]);
  await postAs(bob, ["bob in between"]);
  await postAs(alice, ["alice again"]);

  await bob.expectMessage("alice again", "Alice", false);
  // The first of a group shows its author; the next one does not repeat it (it is still there
  // for screen readers, in a visually hidden line).
  await expect(bob.messageAuthor(bob.message("group one"))).toBeVisible();
  const authorLine = bob.messageAuthor(bob.message("group two")).locator("xpath=..");
  const hidden = await authorLine.boundingBox();
  expect(hidden === null || (hidden.width <= 1 && hidden.height <= 1), "author line of a grouped message").toBe(true);
  await expect(bob.messageAuthor(bob.message("group two"))).toHaveText("Alice");
  // So the second bubble sits right under the first.
  const first = (await bob.messageText(bob.message("group one")).boundingBox())!;
  const second = (await bob.messageText(bob.message("group two")).boundingBox())!;
  expect(second.y - (first.y + first.height)).toBeLessThan(8);
  await expect(bob.messageAuthor(bob.message("alice again"))).toBeVisible();

  // Bob's own message is marked and sits on the right; Alice's sit on the left.
  await bob.expectMessage("bob in between", "Bob", true);
  const list = (await bob.messageList.boundingBox())!;
  const middle = list.x + list.width / 2;
  const own = (await bob.messageText(bob.message("bob in between")).boundingBox())!;
  const other = (await bob.messageText(bob.message("group one")).boundingBox())!;
  expect(own.x + own.width / 2).toBeGreaterThan(middle);
  expect(other.x + other.width / 2).toBeLessThan(middle);
  const colours = await Promise.all(
    ["bob in between", "group one"].map((text) =>
      bob.messageText(bob.message(text)).evaluate((element) => getComputedStyle(element).backgroundColor),
    ),
  );
  expect(colours[0], "own messages have their own colour").not.toBe(colours[1]);
});
