/**
 * An in-process message broker with NATS subject semantics, for the demo and for tests that need
 * no broker process. Subjects are `.`-separated tokens; a subscription may use `*` (exactly one
 * token) and `>` (one or more trailing tokens). Request/reply works as in NATS: the request goes
 * out with a private `_INBOX.*` reply subject, the first reply wins, and a request nobody can
 * hear fails at once with "no responders".
 *
 * Why one broker per name and process (`memoryBroker(name)`): the router's `memory://NAME`
 * provider and the in-process services that publish events must meet on the same instance.
 *
 * Invariants: delivery is asynchronous (never inside `publish`, so a handler that publishes cannot
 * recurse) and in publish order for each subscription; a message goes to the subscriptions that
 * existed when it was published and are still open when it is delivered; a throwing handler never
 * reaches the publisher (it is reported to `onHandlerError` listeners).
 */
import { randomUUID } from 'node:crypto';
import { assertValidNatsSubject } from '../subjects.js';

export interface MemoryMessage {
  readonly subject: string;
  /** Shared by every receiver of the message: treat as read-only. */
  readonly data: Uint8Array;
  /** Where the publisher waits for an answer (request/reply). */
  readonly reply?: string;
  /** `data` as UTF-8 text. */
  string(): string;
  /** `data` parsed as JSON. */
  json<T = unknown>(): T;
}

export type MemoryHandler = (message: MemoryMessage) => void;
/** Answers a request; what it returns (or resolves to) is sent to the requester. */
export type MemoryResponder = (message: MemoryMessage) => Payload | Promise<Payload>;
export type Payload = Uint8Array | string;

export interface MemorySubscription {
  readonly subject: string;
  readonly closed: boolean;
  unsubscribe(): void;
}

/** A failed `MemoryBroker.request`; `code` tells the two outcomes apart. */
export class MemoryRequestError extends Error {
  override name = 'MemoryRequestError';
  constructor(
    readonly code: 'NO_RESPONDERS' | 'TIMEOUT',
    message: string,
  ) {
    super(message);
  }
}

export type HandlerErrorListener = (error: unknown, subject: string) => void;

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const INBOX_PREFIX = '_INBOX';

export class MemoryBroker {
  private readonly root = new TrieNode();
  private queue: Delivery[] = [];
  private scheduled = false;
  private readonly errorListeners = new Set<HandlerErrorListener>();
  private count = 0;

  constructor(readonly name: string) {}

  /** Subscribes a handler; wildcards allowed. Throws SubjectError for an invalid subject. */
  subscribe(subject: string, handler: MemoryHandler): MemorySubscription {
    assertValidNatsSubject(subject, { allowWildcards: true });
    const entry = new Entry(subject, handler);
    this.root.insert(subject.split('.'), 0, entry);
    this.count++;
    const unsubscribe = (): void => {
      if (entry.closed) return;
      entry.closed = true;
      this.root.remove(subject.split('.'), 0, entry);
      this.count--;
    };
    return {
      subject,
      get closed() {
        return entry.closed;
      },
      unsubscribe,
    };
  }

  /** Queues `data` for every matching subscription. Throws SubjectError for a wildcard or invalid subject. */
  publish(subject: string, data: Payload, options: { reply?: string } = {}): void {
    assertValidNatsSubject(subject, { allowWildcards: false });
    const receivers: Entry[] = [];
    this.root.collect(subject.split('.'), 0, receivers);
    if (receivers.length === 0) return;
    this.queue.push({ receivers, message: createMessage(subject, toBytes(data), options.reply) });
    this.schedule();
  }

  /** Whether a publish on `subject` would reach anyone right now. */
  hasSubscribers(subject: string): boolean {
    const receivers: Entry[] = [];
    this.root.collect(subject.split('.'), 0, receivers);
    return receivers.length > 0;
  }

  /**
   * Sends a request and resolves with the first reply. Rejects with MemoryRequestError
   * `NO_RESPONDERS` when nobody subscribes to `subject`, `TIMEOUT` after `timeoutMs`.
   */
  request(subject: string, data: Payload, timeoutMs: number): Promise<MemoryMessage> {
    assertValidNatsSubject(subject, { allowWildcards: false });
    if (!this.hasSubscribers(subject))
      return Promise.reject(new MemoryRequestError('NO_RESPONDERS', `no responders on subject "${subject}"`));
    const inbox = `${INBOX_PREFIX}.${randomUUID().replaceAll('-', '')}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        subscription.unsubscribe();
        reject(
          new MemoryRequestError(
            'TIMEOUT',
            `request to subject "${subject}" timed out after ${timeoutMs} ms`,
          ),
        );
      }, timeoutMs);
      const subscription = this.subscribe(inbox, (reply) => {
        clearTimeout(timer);
        subscription.unsubscribe();
        resolve(reply);
      });
      this.publish(subject, data, { reply: inbox });
    });
  }

  /** Serves requests on `subject` (wildcards allowed). A responder that throws sends no reply. */
  reply(subject: string, responder: MemoryResponder): MemorySubscription {
    return this.subscribe(subject, (message) => {
      const replyTo = message.reply;
      if (replyTo === undefined) return;
      Promise.resolve()
        .then(() => responder(message))
        .then(
          (answer) => this.publish(replyTo, answer),
          (error: unknown) => this.reportHandlerError(error, message.subject),
        );
    });
  }

  /** Listens for errors thrown by handlers; returns a function that stops listening. */
  onHandlerError(listener: HandlerErrorListener): () => void {
    this.errorListeners.add(listener);
    return () => this.errorListeners.delete(listener);
  }

  /** Open subscriptions (inboxes of pending requests included). */
  subscriptionCount(): number {
    return this.count;
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => this.drain());
  }

  /** Delivers what was queued before this turn; later publishes wait for the next turn (fairness). */
  private drain(): void {
    this.scheduled = false;
    const batch = this.queue;
    this.queue = [];
    for (const { receivers, message } of batch)
      for (const entry of receivers) {
        if (entry.closed) continue;
        try {
          entry.handler(message);
        } catch (error) {
          this.reportHandlerError(error, message.subject);
        }
      }
  }

  private reportHandlerError(error: unknown, subject: string): void {
    if (this.errorListeners.size === 0) {
      process.emitWarning(
        `memory broker "${this.name}": a handler for subject "${subject}" failed: ${error instanceof Error ? error.message : String(error)}`,
      );
      return;
    }
    for (const listener of this.errorListeners) {
      try {
        listener(error, subject);
      } catch {
        // a failing listener must not stop the others
      }
    }
  }
}

const brokers = new Map<string, MemoryBroker>();

/** The process-wide broker called `name` (created on first use). */
export function memoryBroker(name = 'default'): MemoryBroker {
  let broker = brokers.get(name);
  if (!broker) {
    broker = new MemoryBroker(name);
    brokers.set(name, broker);
  }
  return broker;
}

const MEMORY_SCHEME = 'memory://';

/** The broker name in a `memory://NAME` URL; `memory://` alone names "default". */
export function memoryBrokerName(url: string): string {
  if (!url.startsWith(MEMORY_SCHEME)) throw new Error(`"${url}" is not a memory:// URL`);
  const name = url.slice(MEMORY_SCHEME.length).replace(/\/+$/, '');
  return name.length > 0 ? name : 'default';
}

export function isMemoryUrl(url: string): boolean {
  return url.startsWith(MEMORY_SCHEME);
}

// ---------------------------------------------------------------------------------------------

interface Delivery {
  receivers: Entry[];
  message: MemoryMessage;
}

class Entry {
  closed = false;
  constructor(
    readonly subject: string,
    readonly handler: MemoryHandler,
  ) {}
}

/** A subject trie like the NATS server's sublist: literal tokens, `*` and `>` children. */
class TrieNode {
  private readonly children = new Map<string, TrieNode>();
  /** Subscriptions whose subject ends at this node. */
  private readonly entries = new Set<Entry>();

  insert(tokens: readonly string[], index: number, entry: Entry): void {
    if (index === tokens.length) {
      this.entries.add(entry);
      return;
    }
    const token = tokens[index]!;
    let child = this.children.get(token);
    if (!child) {
      child = new TrieNode();
      this.children.set(token, child);
    }
    child.insert(tokens, index + 1, entry);
  }

  /** Removes `entry`; returns true when this node became empty (so its parent can drop it). */
  remove(tokens: readonly string[], index: number, entry: Entry): boolean {
    if (index === tokens.length) this.entries.delete(entry);
    else {
      const token = tokens[index]!;
      const child = this.children.get(token);
      if (child?.remove(tokens, index + 1, entry)) this.children.delete(token);
    }
    return this.entries.size === 0 && this.children.size === 0;
  }

  /** Adds the entries matching the literal subject `tokens` to `out`. */
  collect(tokens: readonly string[], index: number, out: Entry[]): void {
    if (index === tokens.length) {
      for (const entry of this.entries) out.push(entry);
      return;
    }
    // `>` needs at least one remaining token, which index < length guarantees.
    const tail = this.children.get('>');
    if (tail) for (const entry of tail.entries) out.push(entry);
    this.children.get('*')?.collect(tokens, index + 1, out);
    const token = tokens[index]!;
    if (token !== '*' && token !== '>') this.children.get(token)?.collect(tokens, index + 1, out);
  }
}

function toBytes(data: Payload): Uint8Array {
  return typeof data === 'string' ? encoder.encode(data) : data;
}

function createMessage(subject: string, data: Uint8Array, reply: string | undefined): MemoryMessage {
  return {
    subject,
    data,
    ...(reply !== undefined ? { reply } : {}),
    string: () => decoder.decode(data),
    json: <T>() => JSON.parse(decoder.decode(data)) as T,
  };
}
