/**
 * The gateway currently being served. Request handlers read `current` once per request, so a new
 * execution config can be swapped in while requests run: a request keeps the gateway it started
 * with, and the previous gateway is handed back for the caller to close once it is drained.
 * It sits with the gateway because both its readers, the HTTP handlers (server/) and the
 * operation service of the streaming protocols (subscriptions/), depend on the engine, never on
 * each other.
 */
import type { Gateway } from './gateway.js';

export class GatewayHolder {
  private gateway: Gateway | undefined;

  constructor(initial?: Gateway) {
    this.gateway = initial;
  }

  get current(): Gateway | undefined {
    return this.gateway;
  }

  /** Serves `next` from the next request on; returns the gateway it replaces. */
  swap(next: Gateway): Gateway | undefined {
    const previous = this.gateway;
    this.gateway = next;
    return previous;
  }

  /** Stops serving and closes the current gateway. */
  async close(): Promise<void> {
    const gateway = this.gateway;
    this.gateway = undefined;
    await gateway?.close();
  }
}
