/** The in-process broker (`memory://NAME`): the broker itself and its EventProvider. */
export { MemoryBroker, MemoryRequestError, isMemoryUrl, memoryBroker, memoryBrokerName } from './broker.js';
export type {
  HandlerErrorListener,
  MemoryHandler,
  MemoryMessage,
  MemoryResponder,
  MemorySubscription,
  Payload,
} from './broker.js';
export { MemoryProvider } from './provider.js';
export type { MemoryProviderConfig, MemoryProviderOptions } from './provider.js';
