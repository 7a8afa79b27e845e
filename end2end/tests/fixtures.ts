// Fixtures for the ssechat end-to-end tests.
//
// - `server`: every test gets its own server (target/release/server) on a free port with a fresh
//   temporary data dir, so tests never see each other's users or messages. It is stopped with
//   SIGTERM (by PID) when the test ends and must then exit 0.
// - `openChat`: a new browser context (a separate browser profile: its own cookies and
//   localStorage, i.e. a separate user) with a page on the app, hydrated, wrapped in `ChatPage`.
import {
  test as base,
  expect,
  type Browser,
  type BrowserContext,
  type Locator,
  type Page,
  type TestInfo,
} from "@playwright/test";
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as readline from "node:readline";

export { expect };

export const REPO_ROOT = path.resolve(__dirname, "..", "..");
const SERVER_BIN = process.env.SSECHAT_SERVER_BIN ?? path.join(REPO_ROOT, "target", "release", "server");
const SITE_ROOT = process.env.SSECHAT_SITE_ROOT ?? path.join(REPO_ROOT, "target", "site");
/**
 * Short, so that a user who closed their page is announced as gone quickly; yet longer than a
 * page's own handover on a loaded machine (a reconnect's probe aborted, then its EventSource
 * opened: 357 ms once in CI), which inside the grace period shows no leave and no join.
 */
export const LEAVE_GRACE_MS = 1000;
const STARTUP_TIMEOUT_MS = 20_000;
const SHUTDOWN_TIMEOUT_MS = 10_000;
const LISTENING = /^ssechat listening on (http:\/\/\S+)\s*$/;

export interface ServerHandle {
  /** e.g. http://127.0.0.1:41234 (no trailing slash) */
  url: string;
  pid: number;
  dataDir: string;
  /** The last lines the server wrote (stdout and stderr), for error messages. */
  logs(): string;
}

interface RunningServer {
  handle: ServerHandle;
  /** Sends SIGTERM and waits for the exit; resolves to a problem description, or null. */
  stop(): Promise<string | null>;
}

export interface StartOptions {
  /** Address to listen on; default 127.0.0.1:0 (a free port). A restart passes the old one. */
  addr?: string;
  /** Data folder to use; default a fresh temporary one, removed at stop. One passed in is kept. */
  dataDir?: string;
}

/** Starts target/release/server (on 127.0.0.1:0 by default) and waits for its "listening" line. */
export async function startServer(extraArgs: string[] = [], options: StartOptions = {}): Promise<RunningServer> {
  if (!fs.existsSync(SERVER_BIN)) {
    throw new Error(`${SERVER_BIN} does not exist: build it first with \`cargo leptos build --release\` (./scripts/test.sh does)`);
  }
  if (!fs.existsSync(path.join(SITE_ROOT, "pkg"))) {
    throw new Error(`${SITE_ROOT}/pkg does not exist: build it first with \`cargo leptos build --release\``);
  }
  const ownsDataDir = options.dataDir === undefined;
  const dataDir = options.dataDir ?? fs.mkdtempSync(path.join(os.tmpdir(), "ssechat-e2e-"));
  const addr = options.addr ?? "127.0.0.1:0";
  // A test may set its own grace period.
  const grace = extraArgs.includes("--leave-grace-ms") ? [] : ["--leave-grace-ms", String(LEAVE_GRACE_MS)];
  const args = ["--addr", addr, "--data-dir", dataDir, ...grace, ...extraArgs];
  const child = spawn(SERVER_BIN, args, {
    cwd: REPO_ROOT,
    env: { ...process.env, LEPTOS_SITE_ROOT: SITE_ROOT, RUST_LOG: process.env.RUST_LOG ?? "info" },
    stdio: ["ignore", "pipe", "pipe"],
  });

  const lines: string[] = [];
  const remember = (stream: string, line: string) => {
    lines.push(`[${stream}] ${line}`);
    if (lines.length > 300) lines.shift();
    if (process.env.SSECHAT_E2E_SERVER_LOG) process.stderr.write(`[server ${child.pid} ${stream}] ${line}\n`);
  };
  const logs = () => lines.join("\n");

  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on("exit", (code, signal) => resolve({ code, signal }));
  });
  let hasExited = false;
  void exited.then(() => {
    hasExited = true;
  });

  // Keep reading both pipes for the whole life of the server, so that it never blocks on a
  // full pipe.
  readline.createInterface({ input: child.stderr! }).on("line", (line) => remember("stderr", line));
  const stdout = readline.createInterface({ input: child.stdout! });

  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`server did not print "ssechat listening on ..." within ${STARTUP_TIMEOUT_MS} ms:\n${logs()}`));
    }, STARTUP_TIMEOUT_MS);
    stdout.on("line", (line) => {
      remember("stdout", line);
      const m = LISTENING.exec(line);
      if (m) {
        clearTimeout(timer);
        resolve(m[1].replace(/\/+$/, ""));
      }
    });
    child.on("error", (err) => {
      clearTimeout(timer);
      reject(new Error(`could not start ${SERVER_BIN}: ${err.message}`));
    });
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`server exited (code ${code}, signal ${signal}) before listening:\n${logs()}`));
    });
  });

  const pid = child.pid!;
  const handle: ServerHandle = { url, pid, dataDir, logs };

  const stop = async (): Promise<string | null> => {
    let problem: string | null = null;
    if (hasExited) {
      const { code, signal } = await exited;
      problem = `server ${pid} had exited on its own during the test (code ${code}, signal ${signal})`;
    } else {
      process.kill(pid, "SIGTERM");
      const result = await Promise.race([
        exited,
        new Promise<null>((resolve) => setTimeout(() => resolve(null), SHUTDOWN_TIMEOUT_MS)),
      ]);
      if (result === null) {
        process.kill(pid, "SIGKILL");
        await exited;
        problem = `server ${pid} did not exit within ${SHUTDOWN_TIMEOUT_MS} ms of SIGTERM`;
      } else if (result.code !== 0) {
        problem = `server ${pid} exited with code ${result.code} (signal ${result.signal}) after SIGTERM, not 0`;
      }
    }
    if (ownsDataDir) fs.rmSync(dataDir, { recursive: true, force: true });
    return problem;
  };

  return { handle, stop };
}

const SEL = {
  joinForm: 'form[data-testid="join-form"]',
  joinError: '[data-testid="join-error"]',
  status: '[data-testid="connection-status"]',
  connectionError: '[data-testid="connection-error"]',
  userList: 'ul[data-testid="user-list"]',
  user: 'li[data-testid="user"]',
  userCount: '[data-testid="user-count"]',
  messageList: 'ol[data-testid="message-list"]',
  message: 'li[data-testid="message"]',
  messageAuthor: '[data-testid="message-author"]',
  messageTime: 'time[data-testid="message-time"]',
  messageText: '[data-testid="message-text"]',
  notice: 'li[data-testid="notice"]',
  gapNotice: 'li[data-testid="gap-notice"]',
  composer: 'form[data-testid="composer"]',
  composerError: '[data-testid="composer-error"]',
} as const;

/** One user's page on the chat, with the locators of the app's DOM contract. */
export class ChatPage {
  readonly joinForm: Locator;
  readonly joinName: Locator;
  readonly joinButton: Locator;
  readonly joinError: Locator;
  readonly status: Locator;
  readonly connectionError: Locator;
  readonly userList: Locator;
  readonly users: Locator;
  readonly userCount: Locator;
  readonly messageList: Locator;
  readonly messages: Locator;
  readonly notices: Locator;
  readonly gapNotices: Locator;
  readonly composer: Locator;
  readonly composerInput: Locator;
  readonly sendButton: Locator;
  readonly composerError: Locator;
  /** Messages of every JavaScript dialog (alert, confirm, ...) the page opened; all dismissed. */
  readonly dialogs: string[] = [];
  /** Uncaught page errors and console errors, attached to the report of a failed test. */
  readonly errors: string[] = [];

  constructor(
    readonly context: BrowserContext,
    readonly page: Page,
    readonly label: string,
  ) {
    this.joinForm = page.locator(SEL.joinForm);
    this.joinName = this.joinForm.locator("input#join-name");
    this.joinButton = this.joinForm.getByRole("button", { name: "Join" });
    this.joinError = page.locator(SEL.joinError);
    this.status = page.locator(SEL.status);
    this.connectionError = page.locator(SEL.connectionError);
    this.userList = page.locator(SEL.userList);
    this.users = this.userList.locator(SEL.user);
    this.userCount = page.locator(SEL.userCount);
    this.messageList = page.locator(SEL.messageList);
    this.messages = this.messageList.locator(SEL.message);
    this.notices = this.messageList.locator(SEL.notice);
    this.gapNotices = this.messageList.locator(SEL.gapNotice);
    this.composer = page.locator(SEL.composer);
    this.composerInput = this.composer.locator("textarea#composer-input");
    this.sendButton = this.composer.getByRole("button", { name: "Send" });
    this.composerError = page.locator(SEL.composerError);

    page.on("dialog", (dialog) => {
      this.dialogs.push(`${dialog.type()}: ${dialog.message()}`);
      void dialog.dismiss().catch(() => {});
    });
    page.on("pageerror", (err) => this.errors.push(`pageerror: ${err.message}`));
    page.on("console", (msg) => {
      if (msg.type() === "error") this.errors.push(`console.error: ${msg.text()}`);
    });
  }

  /** Loads the app and waits until the wasm has hydrated it. */
  async open(): Promise<void> {
    await this.page.goto("/");
    await this.waitForHydration();
  }

  async reload(): Promise<void> {
    await this.page.reload();
    await this.waitForHydration();
  }

  async waitForHydration(): Promise<void> {
    await expect(this.page.locator('body[data-hydrated="true"]')).toBeAttached();
  }

  /** Fills in the join form, joins, and waits until the stream is live and we are in the list. */
  async join(name: string): Promise<void> {
    await expect(this.joinForm).toBeVisible();
    // The input must be the one labelled "Your name".
    await expect(this.page.getByLabel("Your name", { exact: true })).toHaveAttribute("id", "join-name");
    await this.joinName.fill(name);
    await this.joinButton.click();
    await this.expectLive();
    await expect(this.ownUser()).toContainText(name);
  }

  async expectLive(): Promise<void> {
    await expect(this.status).toHaveAttribute("data-state", "live");
  }

  /** The user list entry of the user with this id. */
  user(id: string): Locator {
    return this.userList.locator(`${SEL.user}[data-user-id="${id}"]`);
  }

  /** Our own entry in the user list (the one marked "(you)"). */
  ownUser(): Locator {
    return this.users.filter({ hasText: "(you)" });
  }

  /** Our user id: the one in localStorage, checked against our entry in the user list. */
  async ownId(): Promise<string> {
    const stored = await this.page.evaluate(() => window.localStorage.getItem("ssechat.id"));
    expect(stored, `${this.label}: ssechat.id in localStorage`).toBeTruthy();
    await expect(this.ownUser()).toHaveCount(1);
    await expect(this.ownUser()).toHaveAttribute("data-user-id", stored!);
    return stored!;
  }

  /** The message(s) whose text contains `text` (tests use unique texts). */
  message(text: string): Locator {
    return this.messages.filter({ has: this.page.locator(SEL.messageText, { hasText: text }) });
  }

  messageAuthor(message: Locator): Locator {
    return message.locator(SEL.messageAuthor);
  }

  messageTime(message: Locator): Locator {
    return message.locator(SEL.messageTime);
  }

  messageText(message: Locator): Locator {
    return message.locator(SEL.messageText);
  }

  /** Notices ("Alice joined", "Alice left") matching `pattern`. */
  notice(pattern: RegExp): Locator {
    return this.notices.filter({ hasText: pattern });
  }

  /** Types `text` into the composer and clicks Send (or presses Enter). */
  async send(text: string, how: "click" | "enter" = "click"): Promise<void> {
    await expect(this.page.getByLabel("Message", { exact: true })).toHaveAttribute("id", "composer-input");
    await this.composerInput.fill(text);
    if (how === "enter") {
      await this.composerInput.press("Enter");
    } else {
      await this.sendButton.click();
    }
  }

  /**
   * Waits until this page shows exactly one message with `text` by `author`, checks it fully,
   * and returns its locator.
   */
  async expectMessage(text: string, author: string, own: boolean): Promise<Locator> {
    const message = this.message(text);
    await expect(message, `${this.label} sees "${text}"`).toHaveCount(1);
    await expect(this.messageText(message)).toHaveText(text);
    await expect(this.messageAuthor(message)).toContainText(author);
    await expect(message).toHaveAttribute("data-own", own ? "true" : "false");
    await expect(message).toHaveAttribute("data-seq", /^[1-9][0-9]*$/);
    return message;
  }
}

type Fixtures = {
  server: ServerHandle;
  /** Opens the app in a new browser context (a new, separate user) and waits for hydration. */
  openChat: (label: string) => Promise<ChatPage>;
};

async function newContext(browser: Browser, baseURL: string): Promise<BrowserContext> {
  return browser.newContext({ baseURL });
}

function attachOnFailure(testInfo: TestInfo, name: string, body: string): Promise<void> {
  if (testInfo.status === testInfo.expectedStatus || body.length === 0) return Promise.resolve();
  return testInfo.attach(name, { body, contentType: "text/plain" });
}

export const test = base.extend<Fixtures>({
  // eslint-disable-next-line no-empty-pattern
  server: async ({}, use, testInfo) => {
    const { handle, stop } = await startServer();
    try {
      await use(handle);
    } finally {
      const problem = await stop();
      await attachOnFailure(testInfo, "server log", handle.logs());
      if (problem) throw new Error(`${problem}\n${handle.logs()}`);
    }
  },

  baseURL: async ({ server }, use) => {
    await use(server.url);
  },

  openChat: async ({ browser, server }, use, testInfo) => {
    const opened: ChatPage[] = [];
    try {
      await use(async (label: string) => {
        const context = await newContext(browser, server.url);
        const page = await context.newPage();
        const chat = new ChatPage(context, page, label);
        opened.push(chat);
        await chat.open();
        return chat;
      });
    } finally {
      for (const chat of opened) {
        await attachOnFailure(testInfo, `${chat.label}: page errors`, chat.errors.join("\n"));
        await chat.context.close().catch(() => {});
      }
    }
  },
});
