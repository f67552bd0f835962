/** The Kafka event provider (kafkajs): broadcast consumption, one shared consumer and producer. */
export { KafkaProvider } from './provider.js';
export type { KafkaProviderOptions } from './provider.js';
export type { TopicPhase } from './topics.js';
