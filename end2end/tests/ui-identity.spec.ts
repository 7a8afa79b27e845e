import { test, expect, joined, expectCspClean, UI } from "./ui-helpers";

// Identity: changing one's name (a new identity, since the server keeps the name an id was bound
// with) and leaving the room.

// The new name's first stream is a probe, aborted, then the EventSource: the others must see
// one join, which this test counts exactly, so it runs with the protocol's own grace period.
test.describe("with the protocol's grace period", () => {
  test.use({ serverArgs: ["--leave-grace-ms", "3000"] });

  test("changing one's name rejoins under the new name, and the others see the change", async ({ openChat }) => {
    const alice = await joined(openChat, "Alice");
    const aliceId = await alice.ownId();
    const bob = await joined(openChat, "Bob");
    await alice.send("said as Alice");
    await bob.expectMessage("said as Alice", "Alice", false);

    // A name the protocol refuses is explained and changes nothing.
    await alice.page.locator(UI.accountButton).click();
    const newName = alice.page.getByLabel("New name", { exact: true });
    await newName.fill("   ");
    await alice.page.getByRole("button", { name: "Change name" }).click();
    await expect(alice.page.locator(UI.renameError)).toHaveText(/blank/i);

    await newName.fill("Alicia");
    await newName.press("Enter");
    await expect(alice.notice(/^You are now Alicia$/)).toBeVisible();
    await alice.expectLive();
    await expect(alice.ownUser()).toContainText("Alicia");
    const aliciaId = await alice.ownId();
    expect(aliciaId).not.toBe(aliceId);
    expect(await alice.page.evaluate(() => localStorage.getItem("ssechat.name"))).toBe("Alicia");
    await expect(alice.page.locator(UI.accountButton)).toContainText("Alicia");
    // The conversation stayed, and what was said as Alice is still one's own.
    await alice.expectMessage("said as Alice", "Alice", true);

    // Bob sees Alice go and Alicia come, and one user for her.
    await expect(bob.notice(/^Alice left$/)).toBeVisible();
    await expect(bob.notice(/^Alicia joined$/)).toBeVisible();
    await expect(bob.user(aliceId)).toHaveCount(0);
    await expect(bob.user(aliciaId)).toContainText("Alicia");
    await expect(bob.users).toHaveCount(2);

    await alice.send("said as Alicia");
    await bob.expectMessage("said as Alicia", "Alicia", false);
    await alice.expectMessage("said as Alicia", "Alicia", true);

    // A reload keeps the new name.
    await alice.reload();
    await alice.expectLive();
    expect(await alice.ownId()).toBe(aliciaId);
    await expectCspClean(alice);
  });
});

test("leaving shows the join form, the others see you go, and joining again works", async ({ openChat }) => {
  const alice = await joined(openChat, "Alice");
  const aliceId = await alice.ownId();
  const bob = await joined(openChat, "Bob");
  await expect(bob.users).toHaveCount(2);

  await alice.page.locator(UI.accountButton).click();
  await alice.page.locator(UI.leaveButton).click();
  await expect(alice.joinForm).toBeVisible();
  await expect(alice.page.locator(UI.joinInfo)).toContainText("You left the chat");
  await expect(alice.composer).toHaveCount(0);
  await expect(alice.messageList).toHaveCount(0);
  expect(await alice.page.evaluate(() => localStorage.getItem("ssechat.name"))).toBeNull();

  await expect(bob.notice(/^Alice left$/)).toBeVisible();
  await expect(bob.user(aliceId)).toHaveCount(0);
  await expect(bob.userCount).toHaveText("1");

  // A reload stays out; joining again is a new user.
  await alice.reload();
  await expect(alice.joinForm).toBeVisible();
  await alice.join("Alice again");
  await expect(bob.notice(/^Alice again joined$/)).toBeVisible();
  await expect(bob.users).toHaveCount(2);
  expect(await alice.ownId()).not.toBe(aliceId);
});

test("leaving and joining at once, without a reload, waits for the server to let the old id go", async ({ openChat }) => {
  const alice = await joined(openChat, "Alice");
  const bob = await joined(openChat, "Bob");
  await alice.page.locator(UI.accountButton).click();
  await alice.page.locator(UI.leaveButton).click();
  await alice.join("Back already");
  await expect(alice.connectionError).toHaveCount(0);
  await expect(bob.notice(/^Back already joined$/)).toBeVisible();
  await expect(bob.users).toHaveCount(2);
});
