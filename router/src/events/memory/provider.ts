/**
 * The `memory://NAME` event provider: the EventProvider face of the process-wide MemoryBroker
 * called NAME, so the demo runs with no broker process and in-process services reach the router
 * by publishing to `memoryBroker(NAME)`.
 *
 * Invariants: as EventProvider requires; in addition every subject is checked before it reaches
 * the broker (errors name the subject), JetStream stream specs are refused (the broker has no
 * persistence), and after `close()` no callback runs and every operation rejects.
 */
import type { Logger } from 'pino';
import {
  ProviderError,
  type BrokerMessage,
  type BrokerSubscription,
  type EventProvider,
  type ProviderStatus,
  type SubscribeSpec,
} from '../provider.js';
import { natsSubjectProblem } from '../subjects.js';
import {
  MemoryRequestError,
  memoryBroker,
  memoryBrokerName,
  type MemoryBroker,
  type MemorySubscription,
} from './broker.js';

export interface MemoryProviderConfig {
  id: string;
  /** `memory://NAME`; `memory://` alone is `memory://default`. */
  url: string;
}

export interface MemoryProviderOptions {
  logger?: Logger;
}

export class MemoryProvider implements EventProvider {
  readonly kind = 'memory' as const;
  readonly id: string;
  readonly url: string;
  /** The shared broker this provider talks to. */
  readonly broker: MemoryBroker;
  private readonly logger: Logger | undefined;
  private state: 'new' | 'connected' | 'closed' = 'new';
  private readonly subscriptions = new Set<{ close(): Promise<void> }>();

  constructor(config: MemoryProviderConfig, options: MemoryProviderOptions = {}) {
    this.id = config.id;
    this.url = config.url;
    let name: string;
    try {
      name = memoryBrokerName(config.url);
    } catch (error) {
      throw new ProviderError(config.id, (error as Error).message);
    }
    this.broker = memoryBroker(name);
    this.logger = options.logger?.child({ provider_id: config.id, provider_url: config.url });
  }

  async connect(): Promise<void> {
    this.assertOpen('connect');
    this.state = 'connected';
  }

  async subscribe(
    spec: SubscribeSpec,
    onMessage: (message: BrokerMessage) => void,
    // The broker never ends a subscription by itself, so there is nothing to report.
    _onError: (error: Error) => void,
  ): Promise<BrokerSubscription> {
    this.assertOpen('subscribe');
    if (spec.stream)
      throw new ProviderError(
        this.id,
        `JetStream stream "${spec.stream.streamName}" (consumer "${spec.stream.consumerName}") cannot be used with the in-process broker ${this.url}: it has no streams; remove streamConfiguration from the field or point provider "${this.id}" at a nats:// server`,
      );
    if (spec.subjects.length === 0) throw new ProviderError(this.id, 'subscribe needs at least one subject');
    for (const subject of spec.subjects) {
      const problem = natsSubjectProblem(subject, { allowWildcards: true });
      if (problem !== undefined)
        throw new ProviderError(this.id, `cannot subscribe to subject "${subject}": ${problem}`);
    }
    await this.connect();

    let open = true;
    const deliver = (message: { subject: string; data: Uint8Array }): void => {
      if (!open) return;
      try {
        onMessage({ subject: message.subject, data: message.data });
      } catch (error) {
        this.logger?.error({ err: error, subject: message.subject }, 'event handler failed');
      }
    };
    const brokerSubscriptions: MemorySubscription[] = spec.subjects.map((subject) =>
      this.broker.subscribe(subject, deliver),
    );
    const subscription = {
      close: async (): Promise<void> => {
        if (!open) return;
        open = false;
        for (const brokerSubscription of brokerSubscriptions) brokerSubscription.unsubscribe();
        this.subscriptions.delete(subscription);
      },
    };
    this.subscriptions.add(subscription);
    return subscription;
  }

  async publish(subject: string, data: Uint8Array): Promise<void> {
    this.assertOpen('publish');
    this.assertConcrete(subject, 'publish to');
    await this.connect();
    this.broker.publish(subject, data);
  }

  async request(subject: string, data: Uint8Array, timeoutMs: number): Promise<Uint8Array> {
    this.assertOpen('request');
    this.assertConcrete(subject, 'send a request to');
    await this.connect();
    try {
      const reply = await this.broker.request(subject, data, timeoutMs);
      return reply.data;
    } catch (error) {
      if (error instanceof MemoryRequestError)
        throw new ProviderError(this.id, error.message, { cause: error });
      throw error;
    }
  }

  status(): ProviderStatus {
    if (this.state === 'connected') return { ready: true };
    return { ready: this.state === 'closed' ? `closed (${this.url})` : `not connected yet (${this.url})` };
  }

  async close(): Promise<void> {
    if (this.state === 'closed') return;
    this.state = 'closed';
    await Promise.all([...this.subscriptions].map((subscription) => subscription.close()));
  }

  private assertOpen(operation: string): void {
    if (this.state === 'closed')
      throw new ProviderError(this.id, `cannot ${operation}: the provider is closed`);
  }

  private assertConcrete(subject: string, operation: string): void {
    const problem = natsSubjectProblem(subject, { allowWildcards: false });
    if (problem !== undefined)
      throw new ProviderError(this.id, `cannot ${operation} subject "${subject}": ${problem}`);
  }
}
