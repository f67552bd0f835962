/** The NATS event provider (core NATS and JetStream). */
export { NatsProvider } from './provider.js';
export type { NatsProviderOptions } from './provider.js';
