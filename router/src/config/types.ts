/**
 * Two shapes of the router configuration:
 * - `RouterConfigFile`: what a user (or the operator) writes to `router.yaml`, Cosmo's snake_case
 *   keys, everything optional but `execution_config`.
 * - `RouterConfig`: what the router runs on, after environment expansion, validation and defaults:
 *   every value present, durations in milliseconds, addresses split, paths absolute.
 */

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';

export interface HostPort {
  host: string;
  port: number;
}

// ---------------------------------------------------------------------------------------------
// router.yaml as written

export interface RouterConfigFile {
  version?: string;
  listen_addr?: string;
  graphql_path?: string;
  log_level?: LogLevel;
  playground?: { enabled?: boolean };
  execution_config: { file: { path: string; watch?: boolean } };
  events?: {
    providers?: {
      nats?: NatsProviderFile[];
      kafka?: KafkaProviderFile[];
    };
  };
  telemetry?: {
    metrics?: { prometheus?: { enabled?: boolean; listen_addr?: string; path?: string } };
  };
  traffic_shaping?: {
    all?: { request_timeout?: string };
    router?: { max_request_body_size?: string };
  };
}

export interface NatsProviderFile {
  id: string;
  url: string;
  authentication?: {
    token?: string;
    user_info?: { username: string; password: string };
    creds_file?: string;
    nkey_seed?: string;
  };
  tls?: { enabled?: boolean; cert_file?: string; key_file?: string; ca_file?: string };
}

export interface KafkaProviderFile {
  id: string;
  brokers: string[];
  authentication?: {
    sasl_plain?: { username: string; password: string };
    sasl_scram?: { username: string; password: string; mechanism?: 'SCRAM-SHA-256' | 'SCRAM-SHA-512' };
  };
  tls?: { enabled?: boolean };
}

// ---------------------------------------------------------------------------------------------
// The resolved configuration

export interface RouterConfig {
  /** Where the configuration came from, for messages (the file path as given, or a label). */
  source: string;
  /** Absolute directory that relative paths in the file were resolved against. */
  baseDir: string;
  listenAddr: HostPort;
  graphqlPath: string;
  logLevel: LogLevel;
  playground: { enabled: boolean };
  executionConfig: { file: { /** absolute */ path: string; watch: boolean } };
  events: { providers: { nats: NatsProviderConfig[]; kafka: KafkaProviderConfig[] } };
  telemetry: { metrics: { prometheus: PrometheusConfig } };
  trafficShaping: {
    /** Rules for every subgraph request. */
    all: {
      /** Deadline of one subgraph request; unset = each subgraph's timeout from the execution config. */
      requestTimeoutMs?: number;
    };
    /** Rules for client requests to the router. */
    router: { maxRequestBodySizeBytes: number };
  };
}

export interface PrometheusConfig {
  enabled: boolean;
  listenAddr: HostPort;
  path: string;
}

export type NatsAuthentication =
  | { kind: 'token'; token: string }
  | { kind: 'user_info'; username: string; password: string }
  | { kind: 'creds_file'; /** absolute */ path: string }
  | { kind: 'nkey'; seed: string };

export interface NatsProviderConfig {
  id: string;
  url: string;
  authentication?: NatsAuthentication;
  /** Present when TLS is enabled; file paths are absolute. */
  tls?: { certFile?: string; keyFile?: string; caFile?: string };
}

export interface KafkaProviderConfig {
  id: string;
  brokers: string[];
  /** Mechanism names as kafkajs spells them. */
  authentication?: {
    mechanism: 'plain' | 'scram-sha-256' | 'scram-sha-512';
    username: string;
    password: string;
  };
  tls: { enabled: boolean };
}
