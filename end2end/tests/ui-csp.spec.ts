import { test, expect, ChatPage, joined, postAs, expectCspClean, UI, PHONE } from "./ui-helpers";

// The page runs under the server's strict Content-Security-Policy (no inline styles, no inline
// scripts without the nonce): a tour through every state reports no violation.

test("the page runs under its Content-Security-Policy without a single violation", async ({ browser, server, openChat }) => {
  const context = await browser.newContext({ baseURL: server.url });
  // Record violations from the first byte on, before any of the app's code runs.
  await context.addInitScript(() => {
    const seen: string[] = [];
    (window as unknown as { cspViolations: string[] }).cspViolations = seen;
    document.addEventListener("securitypolicyviolation", (event) => {
      seen.push(`${event.violatedDirective}: ${event.blockedURI} ${event.sample}`);
    });
  });
  const alice = new ChatPage(context, await context.newPage(), "Alice");
  const violations = () => alice.page.evaluate(() => (window as unknown as { cspViolations: string[] }).cspViolations);
  try {
    const response = await alice.page.goto("/");
    const policy = response?.headers()["content-security-policy"] ?? "";
    expect(policy).toContain("style-src 'self'");
    expect(policy).not.toContain("unsafe-inline");
    await alice.waitForHydration();
    await alice.join("Alice");

    const bob = await joined(openChat, "Bob");
    await postAs(bob, ["a link: https://example.com/x", "two\nlines"]);
    await alice.send("hello");
    await alice.expectMessage("hello", "Alice", true);
    await alice.page.locator(UI.accountButton).click();
    await alice.page.keyboard.press("Escape");
    await alice.page.route("**/message", (route) => route.fulfill({ status: 500 }), { times: 1 });
    await alice.send("fails once");
    await expect(alice.composerError).toBeVisible();
    await alice.composerInput.fill("y".repeat(1900));
    await expect(alice.page.locator(UI.charCount)).toBeVisible();
    await alice.page.setViewportSize(PHONE);
    await alice.page.locator(UI.peopleToggle).click();
    await expect(alice.userList).toBeVisible();
    await alice.reload();
    await alice.expectLive();

    expect(await violations()).toEqual([]);
    await expectCspClean(alice);
    await expectCspClean(bob);
  } finally {
    await context.close();
  }
});
