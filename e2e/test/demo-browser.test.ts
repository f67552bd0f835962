/**
 * `edfs demo` in a real browser (Debian chromium via playwright-core): GraphiQL served by the
 * router, a subscription typed into it and run, a message sent from outside, and the joined
 * result in GraphiQL's result pane, as a user following the demo's printed instructions sees it.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Browser, Page, WebSocket as PageWebSocket } from 'playwright-core';
import { DEMO_MUTATION, DEMO_SUBSCRIPTION, startDemo, type RunningDemo } from '@edfs/operator/demo/demo';
import { launchBrowser } from '../src/infra/browser.js';

let demo: RunningDemo;
let browser: Browser;

beforeAll(async () => {
  [demo, browser] = await Promise.all([startDemo({ port: 0, logLevel: 'silent' }), launchBrowser()]);
}, 300_000); // a first run installs chromium

afterAll(async () => {
  await browser?.close();
  await demo?.close();
});

async function openGraphiQL(): Promise<{ page: Page; requests: string[]; sockets: PageWebSocket[] }> {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  const requests: string[] = [];
  const sockets: PageWebSocket[] = [];
  page.on('request', (request) => requests.push(request.url()));
  page.on('websocket', (socket) => sockets.push(socket));
  await page.goto(demo.url);
  await page.locator('.graphiql-query-editor .monaco-editor').first().waitFor({ timeout: 20_000 });
  return { page, requests, sockets };
}

/** Replaces the operation in GraphiQL's editor, as a user pasting it would. */
async function setOperation(page: Page, operation: string): Promise<void> {
  await page.locator('.graphiql-query-editor .monaco-editor').first().click();
  await page.keyboard.press('Control+A');
  await page.keyboard.press('Delete');
  // insertText, not type: the editor would auto-close every bracket typed key by key.
  await page.keyboard.insertText(operation);
  expect(await editorText(page, '.graphiql-query-editor')).toBe(operation);
}

/** The text an editor shows (the editor renders spaces as non-breaking ones). */
async function editorText(page: Page, container: string): Promise<string> {
  const text = await page.locator(`${container} .view-lines`).first().innerText();
  return text.replace(/\u00a0/g, ' ');
}

const resultText = (page: Page) => editorText(page, '.graphiql-response');

/** Waits until GraphiQL's result pane shows `text`. */
async function resultShows(page: Page, text: string, timeout = 10_000): Promise<void> {
  await page.locator('.graphiql-response', { hasText: text }).waitFor({ timeout });
}

async function sendMessage(): Promise<string> {
  const res = await fetch(demo.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ query: DEMO_MUTATION }),
  });
  const body = (await res.json()) as { data?: { sendMessage?: { id: string } } };
  const id = body.data?.sendMessage?.id;
  if (!id) throw new Error(`sendMessage failed: ${JSON.stringify(body)}`);
  return id;
}

describe('the demo in a browser', () => {
  it('GraphiQL loads entirely from the router and runs a query', async () => {
    const { page, requests } = await openGraphiQL();
    try {
      await setOperation(page, '{ messages(roomID: "123") { text user { name } } }');
      await page.locator('.graphiql-execute-button').click();

      await resultShows(page, 'Hello, World!');
      expect(await resultText(page)).toContain('"name": "Carol"');
      const origin = new URL(demo.url).origin;
      const elsewhere = requests.filter((url) => /^https?:/.test(url) && new URL(url).origin !== origin);
      expect(elsewhere).toEqual([]);
    } finally {
      await page.close();
    }
  });

  it('a subscription run in GraphiQL shows a message sent with sendMessage, joined with its author', async () => {
    const { page, sockets } = await openGraphiQL();
    try {
      await setOperation(page, DEMO_SUBSCRIPTION);
      const subscribed = page.waitForEvent('websocket', { timeout: 10_000 }).then(
        (socket) =>
          new Promise<PageWebSocket>((resolve) =>
            socket.on('framesent', (frame) => {
              if (String(frame.payload).includes('"type":"subscribe"')) resolve(socket);
            }),
          ),
      );
      await page.locator('.graphiql-execute-button').click();
      const socket = await subscribed;

      // GraphiQL speaks graphql-transport-ws to the router's own endpoint.
      expect(socket.url()).toBe(demo.subscriptionsUrl);
      expect(sockets).toHaveLength(1);

      // The router's broker subscription is in place shortly after the subscribe frame; events
      // before it are not delivered (by design), so send until the first one shows up.
      const sent: string[] = [];
      const deadline = Date.now() + 15_000;
      while (!(await resultText(page)).includes('Alice')) {
        if (Date.now() > deadline) throw new Error(`no result in GraphiQL after sending ${sent.join(', ')}`);
        sent.push(await sendMessage());
        await page.waitForTimeout(300);
      }

      const pane = await resultText(page);
      expect(pane).toContain('"messageAdded"');
      expect(pane).toContain('"text": "Hello"');
      expect(pane).toContain('"name": "Alice"');
      const shownId = /"id": "(\d+)"/.exec(pane)?.[1];
      expect(sent).toContain(shownId);
    } finally {
      await page.close();
    }
  });
});
