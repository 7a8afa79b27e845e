import { test, expect, joined, ChatPage, UI, DESKTOP, PHONE } from "./ui-helpers";

// The layout from a 360 px phone to a desktop: the header with the room's name and the
// connection state, the people list (beside the conversation, or folded behind a toggle), the
// messages and the composer, and nothing wider than the screen.

async function expectNoHorizontalOverflow(chat: ChatPage): Promise<void> {
  const overflow = await chat.page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  expect(overflow, `${chat.label}: the page is no wider than the window`).toBeLessThanOrEqual(0);
}

test("on a 360 px phone the people list folds away behind a toggle with the count", async ({ openChat }) => {
  const alice = await openChat("Alice");
  await alice.page.setViewportSize(PHONE);
  const card = (await alice.joinForm.boundingBox())!;
  expect(card.x, "the join form has a margin on the left").toBeGreaterThanOrEqual(8);
  expect(card.x + card.width, "and on the right").toBeLessThanOrEqual(PHONE.width - 8);
  await expectNoHorizontalOverflow(alice);
  await alice.join("Alice with a rather long name");
  await joined(openChat, "Bob");

  const header = alice.page.getByRole("banner");
  await expect(header.getByRole("heading", { level: 1 })).toHaveText("ssechat");
  await expect(header.locator('[data-testid="connection-status"]')).toHaveText(/connected/i);
  const toggle = alice.page.locator(UI.peopleToggle);
  await expect(toggle).toBeVisible();
  await expect(toggle).toHaveText(/People\s*2/);
  await expect(toggle).toHaveAttribute("aria-expanded", "false");
  await expect(alice.userList).toBeHidden();
  await expect(alice.composerInput).toBeInViewport();
  await expect(alice.sendButton).toBeInViewport();
  await expectNoHorizontalOverflow(alice);

  await toggle.click();
  await expect(toggle).toHaveAttribute("aria-expanded", "true");
  await expect(alice.userList).toBeVisible();
  await expect(alice.ownUser()).toBeVisible();
  await expect(alice.users).toHaveCount(2);
  await expect(alice.userList).toBeInViewport();
  await expectNoHorizontalOverflow(alice);

  // Escape folds it again, as does the toggle.
  await alice.page.keyboard.press("Escape");
  await expect(alice.userList).toBeHidden();
  await toggle.click();
  await expect(alice.userList).toBeVisible();
  await toggle.click();
  await expect(alice.userList).toBeHidden();
  // A tap on the conversation folds it as well.
  await toggle.click();
  await expect(alice.userList).toBeVisible();
  await alice.composerInput.click();
  await expect(alice.userList).toBeHidden();

  // Sending works at this width.
  await alice.send("hello from a phone");
  await alice.expectMessage("hello from a phone", "Alice with a rather long name", true);
  await expectNoHorizontalOverflow(alice);
});

test("on a desktop the people list is always shown beside the conversation", async ({ openChat }) => {
  const alice = await openChat("Alice");
  await alice.page.setViewportSize(DESKTOP);
  await alice.join("Alice");
  await expect(alice.page.locator(UI.peopleToggle)).toBeHidden();
  await expect(alice.userList).toBeVisible();
  const people = (await alice.page.getByRole("complementary").boundingBox())!;
  const conversation = (await alice.messageList.boundingBox())!;
  expect(people.x + people.width).toBeLessThanOrEqual(conversation.x);
  await expectNoHorizontalOverflow(alice);
});
