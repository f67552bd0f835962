/**
 * Turns a provider's router.yaml entry into the NATS client's connection options: servers,
 * reconnect pacing, authentication (token, user/password, credentials file, nkey) and TLS files.
 * The provider dials with them; nothing here touches the network.
 *
 * Invariants: the client reconnects forever, through authentication failures too (rotated
 * credentials come back); a credentials file is read each time the provider dials a new
 * connection, and an unreadable one is a ProviderError naming the file and the setting.
 */
import { readFile } from 'node:fs/promises';
import { credsAuthenticator, nkeyAuthenticator, type NodeConnectionOptions } from '@nats-io/transport-node';
import type { NatsProviderConfig } from '../../config/types.js';
import { messageOf, ProviderError } from '../provider.js';

/** How the provider paces its connection (NatsProviderOptions, defaults applied). */
export interface ConnectionSettings {
  /** The connection name the server shows. */
  name: string;
  reconnectWaitMs: number;
  connectTimeoutMs: number;
}

export async function natsConnectionOptions(
  config: NatsProviderConfig,
  settings: ConnectionSettings,
): Promise<NodeConnectionOptions> {
  const options: NodeConnectionOptions = {
    servers: config.url
      .split(',')
      .map((server) => server.trim())
      .filter((server) => server.length > 0),
    name: settings.name,
    maxReconnectAttempts: -1,
    reconnectTimeWait: settings.reconnectWaitMs,
    timeout: settings.connectTimeoutMs,
    // Reconnect forever also through auth failures (rotated credentials come back).
    ignoreAuthErrorAbort: true,
    ...(await authOptions(config)),
  };
  const tls = config.tls;
  if (tls)
    options.tls = {
      ...(tls.caFile ? { caFile: tls.caFile } : {}),
      ...(tls.certFile ? { certFile: tls.certFile } : {}),
      ...(tls.keyFile ? { keyFile: tls.keyFile } : {}),
    };
  return options;
}

async function authOptions(config: NatsProviderConfig): Promise<Partial<NodeConnectionOptions>> {
  const auth = config.authentication;
  if (!auth) return {};
  switch (auth.kind) {
    case 'token':
      return { token: auth.token };
    case 'user_info':
      return { user: auth.username, pass: auth.password };
    case 'creds_file': {
      let creds: Uint8Array;
      try {
        creds = await readFile(auth.path);
      } catch (error) {
        throw new ProviderError(
          config.id,
          `cannot read the credentials file "${auth.path}" (authentication.creds_file): ${messageOf(error)}`,
          { cause: error },
        );
      }
      return { authenticator: credsAuthenticator(creds) };
    }
    case 'nkey':
      return { authenticator: nkeyAuthenticator(new TextEncoder().encode(auth.seed.trim())) };
  }
}
