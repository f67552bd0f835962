/**
 * The router.yaml the operator generates (operator/src/desired/router-config.ts): broker
 * credentials only as `${ENV}` references and mounted files, the router's own loader reading
 * them, and spec.router.config merged on top without moving what the pod wiring depends on.
 */
import { describe, expect, it } from '@jest/globals';
import { parse } from 'yaml';
import type { EventProvider } from '../../src/api/v1alpha1.js';
import { envVarName, renderDesired, secretBindings } from '../../src/desired/index.js';
import { find, input, loadAsRouter, nats, routerContainer, routerYaml } from '../fixtures/desired.js';

describe('broker credentials', () => {
  const providers: EventProvider[] = [
    nats('token-nats', { auth: { tokenSecretRef: { name: 'nats-token', key: 'token' } } }, 'events'),
    nats('user-nats', { auth: { userPasswordSecretRef: { name: 'nats-user' } } }),
    nats('creds-nats', {
      auth: { credsSecretRef: { name: 'nats-creds', key: 'user.creds' } },
      tls: { caSecretRef: { name: 'nats-ca', key: 'ca.pem' } },
    }),
    {
      apiVersion: 'edfs.io/v1alpha1',
      kind: 'EventProvider',
      metadata: { name: 'kafka', namespace: 'demo' },
      spec: {
        providerId: 'my-kafka',
        kafka: {
          brokers: ['kafka-0:9092', 'kafka-1:9092'],
          sasl: {
            mechanism: 'SCRAM-SHA-512',
            secretRef: { name: 'kafka-user', usernameKey: 'user', passwordKey: 'pass' },
          },
          tls: { enabled: true },
        },
      },
    },
    {
      apiVersion: 'edfs.io/v1alpha1',
      kind: 'EventProvider',
      metadata: { name: 'plain', namespace: 'demo' },
      spec: {
        kafka: { brokers: ['k:9092'], sasl: { mechanism: 'PLAIN', secretRef: { name: 'plain-user' } } },
      },
    },
  ];
  const { objects, warnings } = renderDesired(input((i) => (i.providers = providers)));

  it('are named by provider id and field', () => {
    expect(envVarName('default', 'token')).toBe('EDFS_PROVIDER_DEFAULT_TOKEN');
    expect(envVarName('my-kafka', 'password')).toBe('EDFS_PROVIDER_MY_KAFKA_PASSWORD');
    expect(envVarName('team.orders_v2', 'username')).toBe('EDFS_PROVIDER_TEAM_ORDERS_V2_USERNAME');
  });

  it('reach router.yaml only as ${ENV} references and mounted file paths', () => {
    expect(warnings).toEqual([]);
    expect(parse(routerYaml(objects)).events.providers).toEqual({
      nats: [
        {
          id: 'creds-nats',
          url: 'nats://creds-nats:4222',
          authentication: { creds_file: '/etc/edfs-secrets/ep-creds-nats-creds/user.creds' },
          tls: { enabled: true, ca_file: '/etc/edfs-secrets/ep-creds-nats-ca/ca.crt' },
        },
        {
          id: 'events',
          url: 'nats://token-nats:4222',
          authentication: { token: '${EDFS_PROVIDER_EVENTS_TOKEN}' },
        },
        {
          id: 'user-nats',
          url: 'nats://user-nats:4222',
          authentication: {
            user_info: {
              username: '${EDFS_PROVIDER_USER_NATS_USERNAME}',
              password: '${EDFS_PROVIDER_USER_NATS_PASSWORD}',
            },
          },
        },
      ],
      kafka: [
        {
          id: 'my-kafka',
          brokers: ['kafka-0:9092', 'kafka-1:9092'],
          authentication: {
            sasl_scram: {
              username: '${EDFS_PROVIDER_MY_KAFKA_USERNAME}',
              password: '${EDFS_PROVIDER_MY_KAFKA_PASSWORD}',
              mechanism: 'SCRAM-SHA-512',
            },
          },
          tls: { enabled: true },
        },
        {
          id: 'plain',
          brokers: ['k:9092'],
          authentication: {
            sasl_plain: {
              username: '${EDFS_PROVIDER_PLAIN_USERNAME}',
              password: '${EDFS_PROVIDER_PLAIN_PASSWORD}',
            },
          },
        },
      ],
    });
  });

  it('reach the router container as env vars from secretKeyRef, sorted by name', () => {
    const ref = (name: string, key: string) => ({ secretKeyRef: { name, key } });
    expect(routerContainer(objects).env).toEqual([
      { name: 'EDFS_PROVIDER_EVENTS_TOKEN', valueFrom: ref('nats-token', 'token') },
      { name: 'EDFS_PROVIDER_MY_KAFKA_PASSWORD', valueFrom: ref('kafka-user', 'pass') },
      { name: 'EDFS_PROVIDER_MY_KAFKA_USERNAME', valueFrom: ref('kafka-user', 'user') },
      { name: 'EDFS_PROVIDER_PLAIN_PASSWORD', valueFrom: ref('plain-user', 'password') },
      { name: 'EDFS_PROVIDER_PLAIN_USERNAME', valueFrom: ref('plain-user', 'username') },
      { name: 'EDFS_PROVIDER_USER_NATS_PASSWORD', valueFrom: ref('nats-user', 'password') },
      { name: 'EDFS_PROVIDER_USER_NATS_USERNAME', valueFrom: ref('nats-user', 'username') },
    ]);
  });

  it('that are files (NATS creds, CA) are mounted from their Secret key, outside the config directory', () => {
    const pod = find(objects, 'Deployment').spec.template.spec;
    expect(pod.volumes.slice(1)).toEqual([
      {
        name: 'ep-creds-nats-ca',
        secret: { secretName: 'nats-ca', items: [{ key: 'ca.pem', path: 'ca.crt' }] },
      },
      {
        name: 'ep-creds-nats-creds',
        secret: { secretName: 'nats-creds', items: [{ key: 'user.creds', path: 'user.creds' }] },
      },
    ]);
    expect(routerContainer(objects).volumeMounts).toEqual([
      { name: 'config', mountPath: '/etc/edfs', readOnly: true },
      { name: 'ep-creds-nats-ca', mountPath: '/etc/edfs-secrets/ep-creds-nats-ca', readOnly: true },
      { name: 'ep-creds-nats-creds', mountPath: '/etc/edfs-secrets/ep-creds-nats-creds', readOnly: true },
    ]);
  });

  it('never appear in the ConfigMap: every credential there is a reference or a file path', () => {
    const yaml = routerYaml(objects);
    const values: string[] = [];
    const walk = (v: unknown, inAuth: boolean) => {
      if (typeof v === 'string' && inAuth) values.push(v);
      else if (v && typeof v === 'object')
        for (const [k, x] of Object.entries(v)) walk(x, inAuth || k === 'authentication' || k === 'tls');
    };
    walk(parse(yaml), false);
    expect(values.length).toBeGreaterThan(0);
    for (const value of values) {
      expect(value).toMatch(
        /^(\$\{EDFS_PROVIDER_[A-Z0-9_]+\}|\/etc\/edfs-secrets\/[a-z0-9-]+\/[a-z.]+|SCRAM-SHA-512)$/,
      );
    }
    expect(Object.keys(find(objects, 'ConfigMap').data)).toEqual(['config.json', 'router.yaml']);
  });

  it('are resolved by the router from the env vars the pod gets', () => {
    const env = Object.fromEntries(
      routerContainer(objects).env.map((e: any) => [e.name, `value-of-${e.name}`]),
    );
    const config = loadAsRouter(routerYaml(objects), env);
    const events = config.events.providers.nats.find((p) => p.id === 'events');
    expect(events?.authentication).toEqual({ kind: 'token', token: 'value-of-EDFS_PROVIDER_EVENTS_TOKEN' });
    expect(config.events.providers.kafka.find((p) => p.id === 'my-kafka')?.authentication).toEqual({
      mechanism: 'scram-sha-512',
      username: 'value-of-EDFS_PROVIDER_MY_KAFKA_USERNAME',
      password: 'value-of-EDFS_PROVIDER_MY_KAFKA_PASSWORD',
    });
  });

  it('are listed per provider for the reconciler to watch and check', () => {
    expect(secretBindings(providers[1]!)).toEqual([
      {
        providerId: 'user-nats',
        field: 'username',
        secret: { name: 'nats-user', key: 'username' },
        env: 'EDFS_PROVIDER_USER_NATS_USERNAME',
      },
      {
        providerId: 'user-nats',
        field: 'password',
        secret: { name: 'nats-user', key: 'password' },
        env: 'EDFS_PROVIDER_USER_NATS_PASSWORD',
      },
    ]);
  });

  it('of two providers with clashing ids or env names keep the first and warn about the second', () => {
    const result = renderDesired(
      input((i) => {
        i.providers = [nats('a', {}, 'orders-v1'), nats('b', {}, 'orders.v1'), nats('c', {}, 'orders-v1')];
      }),
    );
    expect(parse(routerYaml(result.objects)).events.providers.nats.map((p: any) => p.id)).toEqual([
      'orders-v1',
    ]);
    expect(result.warnings).toEqual([
      expect.stringContaining(
        'EventProvider "demo/c": provider id "orders-v1" clashes with EventProvider "demo/a"',
      ),
      expect.stringContaining(
        'EventProvider "demo/b": provider id "orders.v1" clashes with EventProvider "demo/a"',
      ),
    ]);
  });
});

describe('router.yaml overrides (spec.router.config)', () => {
  it('deep-merge on top of the generated config; null removes a key', () => {
    const { objects, warnings } = renderDesired(
      input(
        (i) =>
          (i.supergraph.spec.router = {
            config: {
              log_level: 'debug',
              playground: { enabled: false },
              websocket: { max_connections: 20000 },
              telemetry: { metrics: { prometheus: { path: '/internal/metrics' } } },
              graphql_path: null,
            },
          } as any),
      ),
    );
    expect(warnings).toEqual([]);
    const config = parse(routerYaml(objects));
    expect(config).toMatchObject({
      log_level: 'debug',
      playground: { enabled: false },
      websocket: { max_connections: 20000 },
      telemetry: {
        metrics: { prometheus: { enabled: true, listen_addr: '0.0.0.0:8088', path: '/internal/metrics' } },
      },
    });
    expect(config).not.toHaveProperty('graphql_path');
    expect(loadAsRouter(routerYaml(objects), {}).websocket.maxConnections).toBe(20000);
  });

  it('cannot move the listeners, the execution config or the drain window, and say so', () => {
    const { objects, warnings } = renderDesired(
      input(
        (i) =>
          (i.supergraph.spec.router = {
            config: {
              listen_addr: '0.0.0.0:4000',
              shutdown_delay: '5s',
              execution_config: { file: { path: './elsewhere.json' } },
              telemetry: { metrics: { prometheus: { listen_addr: '0.0.0.0:9999', enabled: false } } },
            },
          }),
      ),
    );
    const config = parse(routerYaml(objects));
    expect(config.listen_addr).toBe('0.0.0.0:3002');
    expect(config.shutdown_delay).toBe('20s');
    expect(config.execution_config).toEqual({ file: { path: '/etc/edfs/config.json', watch: true } });
    expect(config.telemetry.metrics.prometheus).toEqual({
      enabled: true,
      listen_addr: '0.0.0.0:8088',
      path: '/metrics',
    });
    expect(warnings).toEqual([
      'spec.router.config.listen_addr is set by the operator; the override is ignored',
      'spec.router.config.execution_config is set by the operator; the override is ignored',
      'spec.router.config.shutdown_delay is set by the operator (set spec.router.drainSeconds instead); the override is ignored',
      'spec.router.config.telemetry.metrics.prometheus.enabled is set by the operator; the override is ignored',
      'spec.router.config.telemetry.metrics.prometheus.listen_addr is set by the operator; the override is ignored',
    ]);
  });
});
