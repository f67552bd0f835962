/**
 * Turns a provider's router.yaml entry into the kafkajs client config: brokers, SASL
 * authentication, TLS (files read once, at start), the log bridge (log.ts) and a socket factory
 * that reports a broker closing a connection. The provider builds its clients from it; nothing here
 * touches the network. Also the same settings for the client that replays (replay.ts,
 * `@platformatic/kafka`), so both clients reach the brokers alike.
 *
 * Invariants: an unreadable TLS file is an error naming the setting and the path; sockets are
 * kafkajs' own (TCP keep-alive, SNI for host names), with only the loss report added; the replay
 * client sends SNI only when every broker is named by host name.
 */
import { readFileSync } from 'node:fs';
import { connect as netConnect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import type { ISocketFactory, KafkaConfig, SASLOptions } from 'kafkajs';
import type { BaseOptions } from '@platformatic/kafka';
import type { Logger } from 'pino';
import type { KafkaProviderConfig } from '../../config/types.js';
import { kafkajsLevel, kafkajsLogCreator } from './log.js';

/** What the provider decides about its client (KafkaProviderOptions, defaults applied). */
export interface ClientSettings {
  clientId: string;
  /** Deadline of one TCP/TLS connection attempt. */
  connectTimeoutMs: number;
  /** TLS settings given in code; otherwise read from the config's files when TLS is enabled. */
  tls: ConnectionOptions | undefined;
  logger: Logger | undefined;
  /** While true, kafkajs' error lines are demoted (an outage the provider already reported). */
  quiet(): boolean;
  /** A broker connection errored or was closed by the broker. */
  onConnectionLost(): void;
}

export function kafkaClientConfig(config: KafkaProviderConfig, settings: ClientSettings): KafkaConfig {
  return {
    clientId: settings.clientId,
    brokers: [...config.brokers],
    ...(config.tls.enabled ? { ssl: settings.tls ?? tlsFromFiles(config.tls) } : {}),
    ...(config.authentication ? { sasl: saslOptions(config.authentication) } : {}),
    connectionTimeout: settings.connectTimeoutMs,
    logLevel: kafkajsLevel(settings.logger),
    logCreator: kafkajsLogCreator(settings.logger, settings.quiet),
    socketFactory: socketFactory(settings.onConnectionLost),
  };
}

/** The replay client's connection options (its timeouts and retries are replay.ts' business). */
export type ReplayClientOptions = Pick<
  BaseOptions,
  'clientId' | 'bootstrapBrokers' | 'connectTimeout' | 'tls' | 'tlsServerName' | 'sasl'
> & { clientId: string };

export function replayClientOptions(
  config: KafkaProviderConfig,
  settings: Pick<ClientSettings, 'clientId' | 'connectTimeoutMs' | 'tls'>,
): ReplayClientOptions {
  const auth = config.authentication;
  const tls = config.tls.enabled ? (settings.tls ?? tlsFromFiles(config.tls)) : undefined;
  return {
    clientId: settings.clientId,
    bootstrapBrokers: [...config.brokers],
    connectTimeout: settings.connectTimeoutMs,
    ...(tls
      ? {
          tls: tls === true ? {} : tls,
          tlsServerName: config.brokers.every((broker) => isIP(hostOf(broker)) === 0),
        }
      : {}),
    ...(auth
      ? {
          sasl: {
            mechanism: (
              { plain: 'PLAIN', 'scram-sha-256': 'SCRAM-SHA-256', 'scram-sha-512': 'SCRAM-SHA-512' } as const
            )[auth.mechanism],
            username: auth.username,
            password: auth.password,
          },
        }
      : {}),
  };
}

/** The host of `host:port` or `[v6]:port`. */
function hostOf(broker: string): string {
  return broker.replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1');
}

function saslOptions(auth: NonNullable<KafkaProviderConfig['authentication']>): SASLOptions {
  switch (auth.mechanism) {
    case 'plain':
      return { mechanism: 'plain', username: auth.username, password: auth.password };
    case 'scram-sha-256':
      return { mechanism: 'scram-sha-256', username: auth.username, password: auth.password };
    case 'scram-sha-512':
      return { mechanism: 'scram-sha-512', username: auth.username, password: auth.password };
  }
}

/** TLS options from router.yaml's file paths (read once, at start); `true` = system CAs only. */
function tlsFromFiles(tls: KafkaProviderConfig['tls']): ConnectionOptions | true {
  if (!tls.caFile && !tls.certFile) return true;
  const read = (path: string, what: string): Buffer => {
    try {
      return readFileSync(path);
    } catch (err) {
      throw new Error(`kafka tls.${what} ${path}: cannot read: ${(err as Error).message}`, { cause: err });
    }
  };
  return {
    ...(tls.caFile ? { ca: read(tls.caFile, 'ca_file') } : {}),
    ...(tls.certFile ? { cert: read(tls.certFile, 'cert_file') } : {}),
    ...(tls.keyFile ? { key: read(tls.keyFile, 'key_file') } : {}),
  };
}

/** kafkajs' default socket factory, plus `onConnectionLost` when a connection errors or a broker ends it. */
function socketFactory(onConnectionLost: () => void): ISocketFactory {
  return ({ host, port, ssl, onConnect }) => {
    const socket: Socket = ssl
      ? tlsConnect(
          { host, port, ...(isIP(host) ? {} : { servername: host }), ...(ssl as ConnectionOptions) },
          onConnect,
        )
      : netConnect({ host, port }, onConnect);
    socket.setKeepAlive(true, 60_000);
    let endedHere = false;
    socket.once('finish', () => {
      endedHere = true;
    });
    socket.on('error', () => onConnectionLost());
    socket.once('end', () => {
      if (!endedHere) onConnectionLost();
    });
    return socket;
  };
}
