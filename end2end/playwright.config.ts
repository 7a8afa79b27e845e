import { defineConfig, devices } from "@playwright/test";

// Every test starts its own server (see tests/fixtures.ts), so there is no `webServer` here and
// no fixed port: run `cargo leptos build --release` first (scripts/test.sh does).
export default defineConfig({
  testDir: "./tests",
  // A whole test's budget. Two workers share two cores with the browsers' wasm pages: the longest
  // tests (axe over every state, the screenshots) take about 40 s beside another test here, and
  // one took over 60 s in a CI run. Each step keeps its own 10 s, so a hang still fails at its step.
  timeout: 120_000,
  expect: { timeout: 10_000 },
  fullyParallel: true,
  forbidOnly: !!process.env.CI,
  retries: 0,
  workers: process.env.SSECHAT_E2E_WORKERS ? Number(process.env.SSECHAT_E2E_WORKERS) : 2,
  // Not "html": its report server keeps CI waiting.
  reporter: "list",
  use: {
    trace: "retain-on-failure",
    actionTimeout: 10_000,
    navigationTimeout: 20_000,
  },
  projects: [
    {
      name: "chromium",
      use: {
        ...devices["Desktop Chrome"],
        // Debian's chromium (apt-get install chromium); Playwright's own browser downloads are
        // not used.
        launchOptions: {
          executablePath: process.env.SSECHAT_CHROMIUM ?? "/usr/bin/chromium",
          args: [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
          ],
        },
      },
    },
  ],
});
