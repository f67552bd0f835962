/**
 * The rendering of a Supergraph's desired objects (operator/src/desired), without a cluster:
 * exact objects for examples/chat, and each option's effect on what a user would see in
 * `kubectl get -o yaml`.
 */
import { describe, expect, it } from '@jest/globals';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { parseRouterConfig } from '@edfs/router/config';
import type { DesiredInput, EventProvider, KubeObject, Supergraph } from '../src/api/v1alpha1.js';
import { composeSupergraph } from '../src/compose/compose.js';
import { loadComposeInputs, readComposeSources } from '../src/compose/sources.js';
import {
  CHILD_KINDS,
  CONFIG_HASH_ANNOTATION,
  PRE_STOP_SECONDS,
  ROUTER_CONFIG_HASH_ANNOTATION,
  SECRETS_HASH_ANNOTATION,
  envVarName,
  renderDesired,
  routerSelector,
  secretBindings,
  terminationGraceSeconds,
} from '../src/desired/index.js';

const CHAT = fileURLToPath(new URL('../../examples/chat/manifests', import.meta.url));
const sources = readComposeSources([CHAT]);
const composed = composeSupergraph(loadComposeInputs([CHAT]));
if (!composed.ok) throw new Error(`examples/chat does not compose: ${JSON.stringify(composed.errors)}`);
const CONFIG_JSON = composed.configJson;
const CONFIG_HASH = createHash('sha256').update(CONFIG_JSON).digest('hex');
const UID = '6f1e2d3c-0000-4000-8000-000000000001';
const IMAGE = 'ghcr.io/edfs/edfs-router:0.1.0';

/** The Supergraph and EventProvider of examples/chat as the API server returns them (with a uid). */
function chatSupergraph(): Supergraph {
  const manifest = sources.supergraphs[0]!;
  return {
    apiVersion: 'edfs.io/v1alpha1',
    kind: 'Supergraph',
    metadata: {
      name: manifest.metadata.name,
      namespace: manifest.metadata.namespace,
      uid: UID,
      generation: 1,
    },
    spec: structuredClone(manifest.spec) as Supergraph['spec'],
  };
}

function chatProvider(): EventProvider {
  const manifest = sources.eventProviders[0]!;
  return {
    apiVersion: 'edfs.io/v1alpha1',
    kind: 'EventProvider',
    metadata: { name: manifest.metadata.name, namespace: manifest.metadata.namespace },
    spec: structuredClone(manifest.spec) as EventProvider['spec'],
  };
}

function input(change: (i: DesiredInput) => void = () => {}): DesiredInput {
  const i: DesiredInput = {
    supergraph: chatSupergraph(),
    configJson: CONFIG_JSON,
    configHash: CONFIG_HASH,
    providers: [chatProvider()],
    capabilities: { serviceMonitor: false, keda: false },
    defaults: { routerImage: IMAGE },
  };
  change(i);
  return i;
}

function nats(
  name: string,
  spec: Partial<NonNullable<EventProvider['spec']['nats']>> = {},
  providerId?: string,
): EventProvider {
  return {
    apiVersion: 'edfs.io/v1alpha1',
    kind: 'EventProvider',
    metadata: { name, namespace: 'demo' },
    spec: { ...(providerId ? { providerId } : {}), nats: { url: `nats://${name}:4222`, ...spec } },
  };
}

function find(objects: KubeObject[], kind: string): any {
  return objects.find((o) => o.kind === kind);
}

function kinds(objects: KubeObject[]): string[] {
  return objects.map((o) => o.kind);
}

function routerYaml(objects: KubeObject[]): string {
  return find(objects, 'ConfigMap').data['router.yaml'];
}

function routerContainer(objects: KubeObject[]): any {
  return find(objects, 'Deployment').spec.template.spec.containers.find((c: any) => c.name === 'router');
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

/** The router's own loader, so router.yaml is checked by the code that will read it. */
function loadAsRouter(yaml: string, env: Record<string, string>) {
  return parseRouterConfig(yaml, { env, source: 'router.yaml' });
}

const labels = {
  'app.kubernetes.io/instance': 'chat',
  'app.kubernetes.io/managed-by': 'edfs-operator',
  'app.kubernetes.io/name': 'edfs-router',
};
const selector = { 'app.kubernetes.io/instance': 'chat', 'app.kubernetes.io/name': 'edfs-router' };
const owner = {
  apiVersion: 'edfs.io/v1alpha1',
  kind: 'Supergraph',
  name: 'chat',
  uid: UID,
  controller: true,
  blockOwnerDeletion: true,
};
const meta = (name: string) => ({ name, namespace: 'demo', labels, ownerReferences: [owner] });

describe('examples/chat renders', () => {
  const { objects, warnings } = renderDesired(input());

  it('a ConfigMap, Service, Deployment, PodDisruptionBudget and Ingress, in apply order, without warnings', () => {
    expect(kinds(objects)).toEqual(['ConfigMap', 'Service', 'Deployment', 'PodDisruptionBudget', 'Ingress']);
    expect(warnings).toEqual([]);
  });

  it('ConfigMap chat-router-config with the execution config and a generated router.yaml', () => {
    expect(find(objects, 'ConfigMap')).toEqual({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { ...meta('chat-router-config'), annotations: { 'edfs.io/config-hash': CONFIG_HASH } },
      data: {
        'config.json': CONFIG_JSON,
        'router.yaml': [
          '# Generated by edfs-operator for Supergraph demo/chat; edits here are overwritten.',
          '# Change spec.router.config of the Supergraph instead. Secrets are ${ENV} references',
          "# filled from the pod's environment, or files mounted from Secrets.",
          'version: "1"',
          'listen_addr: 0.0.0.0:3002',
          'graphql_path: /graphql',
          'execution_config:',
          '  file:',
          '    path: /etc/edfs/config.json',
          '    watch: true',
          'events:',
          '  providers:',
          '    nats:',
          '      - id: default',
          '        url: nats://nats.demo.svc:4222',
          'telemetry:',
          '  metrics:',
          '    prometheus:',
          '      enabled: true',
          '      listen_addr: 0.0.0.0:8088',
          '      path: /metrics',
          'shutdown_delay: 20s',
          '',
        ].join('\n'),
      },
    });
  });

  it('Service chat-router with ports http 3002 and metrics 8088', () => {
    expect(find(objects, 'Service')).toEqual({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: meta('chat-router'),
      spec: {
        type: 'ClusterIP',
        selector,
        ports: [
          { name: 'http', port: 3002, targetPort: 'http', protocol: 'TCP' },
          { name: 'metrics', port: 8088, targetPort: 'metrics', protocol: 'TCP' },
        ],
      },
    });
  });

  it('Deployment chat-router: 2 replicas, probes, preStop, grace period, the config directory', () => {
    const deployment = find(objects, 'Deployment');
    const routerHash = createHash('sha256').update(routerYaml(objects)).digest('hex');
    expect(deployment).toEqual({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: meta('chat-router'),
      spec: {
        replicas: 2,
        selector: { matchLabels: selector },
        strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: '25%', maxUnavailable: 0 } },
        template: {
          metadata: {
            labels,
            annotations: {
              'edfs.io/router-config-hash': routerHash,
              'prometheus.io/path': '/metrics',
              'prometheus.io/port': '8088',
              'prometheus.io/scrape': 'true',
            },
          },
          spec: {
            automountServiceAccountToken: false,
            securityContext: { runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } },
            terminationGracePeriodSeconds: 35,
            containers: [
              {
                name: 'router',
                image: IMAGE,
                args: ['-c', '/etc/edfs/router.yaml'],
                ports: [
                  { name: 'http', containerPort: 3002, protocol: 'TCP' },
                  { name: 'metrics', containerPort: 8088, protocol: 'TCP' },
                ],
                livenessProbe: {
                  httpGet: { path: '/health/live', port: 'http' },
                  periodSeconds: 10,
                  timeoutSeconds: 2,
                  failureThreshold: 3,
                },
                readinessProbe: {
                  httpGet: { path: '/health/ready', port: 'http' },
                  periodSeconds: 5,
                  timeoutSeconds: 2,
                  failureThreshold: 2,
                },
                lifecycle: { preStop: { exec: { command: ['sleep', '5'] } } },
                resources: { requests: { cpu: '100m', memory: '128Mi' } },
                securityContext: {
                  allowPrivilegeEscalation: false,
                  capabilities: { drop: ['ALL'] },
                  readOnlyRootFilesystem: true,
                },
                volumeMounts: [{ name: 'config', mountPath: '/etc/edfs', readOnly: true }],
              },
            ],
            volumes: [{ name: 'config', configMap: { name: 'chat-router-config' } }],
          },
        },
      },
    });
  });

  it('PodDisruptionBudget chat-router allowing one router down at a time', () => {
    expect(find(objects, 'PodDisruptionBudget')).toEqual({
      apiVersion: 'policy/v1',
      kind: 'PodDisruptionBudget',
      metadata: meta('chat-router'),
      spec: { maxUnavailable: 1, selector: { matchLabels: selector } },
    });
  });

  it('a router.yaml the router itself loads, listening where the probes and Service point', () => {
    const config = loadAsRouter(routerYaml(objects), {});
    expect(config.listenAddr).toEqual({ host: '0.0.0.0', port: 3002 });
    expect(config.telemetry.metrics.prometheus).toEqual({
      enabled: true,
      listenAddr: { host: '0.0.0.0', port: 8088 },
      path: '/metrics',
    });
    expect(config.executionConfig.file).toEqual({ path: '/etc/edfs/config.json', watch: true });
    expect(config.events.providers.nats).toEqual([{ id: 'default', url: 'nats://nats.demo.svc:4222' }]);
    expect(config.shutdownDelayMs).toBe(20_000);
  });

  it('objects whose selector matches status.selector of the scale subresource', () => {
    expect(routerSelector(chatSupergraph())).toBe(
      'app.kubernetes.io/instance=chat,app.kubernetes.io/name=edfs-router',
    );
  });

  it('only kinds listed in CHILD_KINDS, so the reconciler can prune the rest', () => {
    const listed = new Set(CHILD_KINDS.map((k) => `${k.apiVersion}/${k.kind}`));
    const all = renderDesired(
      input((i) => {
        i.capabilities = { serviceMonitor: true, keda: true };
        i.supergraph.spec.autoscaling = { maxReplicas: 4, targetConnectionsPerPod: 500 };
        i.supergraph.spec.ingress = { host: 'chat.example.com' };
      }),
    ).objects;
    for (const object of all) expect(listed).toContain(`${object.apiVersion}/${object.kind}`);
  });
});

describe('every rendered object', () => {
  const everything = renderDesired(
    input((i) => {
      i.capabilities = { serviceMonitor: true, keda: true };
      i.defaults.prometheusAddress = 'http://prometheus.monitoring.svc:9090';
      i.supergraph.spec.autoscaling = { maxReplicas: 4, targetConnectionsPerPod: 500, mode: 'KEDA' };
      i.supergraph.spec.ingress = { host: 'chat.example.com' };
    }),
  ).objects;

  it('lives in the Supergraph namespace, carries the standard labels and a controller owner reference', () => {
    expect(kinds(everything)).toEqual([
      'ConfigMap',
      'Service',
      'Deployment',
      'PodDisruptionBudget',
      'ScaledObject',
      'Ingress',
      'ServiceMonitor',
    ]);
    for (const object of everything) {
      expect(object.metadata.namespace).toBe('demo');
      expect(object.metadata.labels).toMatchObject(labels);
      expect(object.metadata.ownerReferences).toEqual([owner]);
      expect(object.metadata.name).toBe(object.kind === 'ConfigMap' ? 'chat-router-config' : 'chat-router');
    }
  });

  it('is rendered byte for byte the same from the same input, whatever its key order, and the input is not changed', () => {
    const a = input((i) => {
      i.supergraph.spec.router = {
        replicas: 3,
        config: { websocket: { max_connections: 5000, keepalive_interval: '15s' }, log_level: 'warn' },
        podTemplate: {
          metadata: { labels: { team: 'chat', tier: 'edge' } },
          spec: { nodeSelector: { pool: 'edge', zone: 'a' } },
        },
      };
      i.supergraph.spec.ingress = { host: 'chat.example.com', annotations: { b: '2', a: '1' } };
      i.providers.push(nats('b', { auth: { tokenSecretRef: { name: 's', key: 'token' } } }), nats('a'));
    });
    const b = input((i) => {
      i.supergraph.spec.ingress = { annotations: { a: '1', b: '2' }, host: 'chat.example.com' };
      i.supergraph.spec.router = {
        podTemplate: {
          spec: { nodeSelector: { zone: 'a', pool: 'edge' } },
          metadata: { labels: { tier: 'edge', team: 'chat' } },
        },
        config: { log_level: 'warn', websocket: { keepalive_interval: '15s', max_connections: 5000 } },
        replicas: 3,
      };
      i.providers.unshift(nats('a'), nats('b', { auth: { tokenSecretRef: { key: 'token', name: 's' } } }));
    });
    deepFreeze(a);
    const first = JSON.stringify(renderDesired(a));
    expect(JSON.stringify(renderDesired(a))).toBe(first);
    expect(JSON.stringify(renderDesired(b))).toBe(first);
  });
});

describe('Supergraph without a uid', () => {
  it('is refused with a message naming it, since its children need an owner reference', () => {
    const i = input((x) => delete x.supergraph.metadata.uid);
    expect(() => renderDesired(i)).toThrow('Supergraph "demo/chat" has no metadata.uid');
  });
});

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

describe('secret rotation', () => {
  const withToken = (secretsHash: string | undefined) =>
    input((i) => {
      i.providers = [nats('default', { auth: { tokenSecretRef: { name: 'nats-auth', key: 'token' } } })];
      i.secretsHash = secretsHash;
    });
  const podAnnotations = (objects: KubeObject[]) =>
    find(objects, 'Deployment').spec.template.metadata.annotations;

  it('puts the digest of the referenced Secret values in a pod-template annotation', () => {
    const { objects } = renderDesired(withToken('a'.repeat(64)));
    expect(podAnnotations(objects)[SECRETS_HASH_ANNOTATION]).toBe('a'.repeat(64));
    // Only the digest: the Deployment still gets the credential from the Secret itself.
    expect(routerContainer(objects).env).toEqual([
      {
        name: 'EDFS_PROVIDER_DEFAULT_TOKEN',
        valueFrom: { secretKeyRef: { name: 'nats-auth', key: 'token' } },
      },
    ]);
  });

  it('a changed digest changes only that annotation, so the pods roll; the same digest renders the same bytes', () => {
    const a = renderDesired(withToken('a'.repeat(64))).objects;
    const b = renderDesired(withToken('b'.repeat(64))).objects;
    expect(JSON.stringify(renderDesired(withToken('a'.repeat(64))).objects)).toBe(JSON.stringify(a));
    expect(podAnnotations(b)[SECRETS_HASH_ANNOTATION]).toBe('b'.repeat(64));
    const withoutHash = (objects: KubeObject[]) => {
      const copy = structuredClone(objects);
      delete find(copy, 'Deployment').spec.template.metadata.annotations[SECRETS_HASH_ANNOTATION];
      return copy;
    };
    expect(withoutHash(b)).toEqual(withoutHash(a));
    expect(find(b, 'Deployment')).not.toEqual(find(a, 'Deployment'));
  });

  it('is absent when no provider references a Secret, or when no digest is given', () => {
    const none = renderDesired(input((i) => (i.secretsHash = 'a'.repeat(64)))).objects;
    expect(podAnnotations(none)).not.toHaveProperty(SECRETS_HASH_ANNOTATION);
    expect(find(none, 'Deployment')).toEqual(find(renderDesired(input()).objects, 'Deployment'));
    expect(podAnnotations(renderDesired(withToken(undefined)).objects)).not.toHaveProperty(
      SECRETS_HASH_ANNOTATION,
    );
  });

  it('wins over a podTemplate override of the same annotation', () => {
    const { objects } = renderDesired(
      input((i) => {
        i.providers = [nats('default', { auth: { tokenSecretRef: { name: 'nats-auth', key: 'token' } } })];
        i.secretsHash = 'a'.repeat(64);
        i.supergraph.spec.router = {
          ...i.supergraph.spec.router,
          podTemplate: { metadata: { annotations: { [SECRETS_HASH_ANNOTATION]: 'forged' } } },
        };
      }),
    );
    expect(podAnnotations(objects)[SECRETS_HASH_ANNOTATION]).toBe('a'.repeat(64));
  });
});

describe('rollout', () => {
  const changed = (rollout: 'HotReload' | 'Restart' | undefined) =>
    input((i) => {
      if (rollout) i.supergraph.spec.router = { ...i.supergraph.spec.router, rollout };
      i.configJson = '{"version":"2"}';
      i.configHash = 'f'.repeat(64);
    });
  const before = (rollout: 'HotReload' | 'Restart' | undefined) =>
    input((i) => {
      if (rollout) i.supergraph.spec.router = { ...i.supergraph.spec.router, rollout };
    });

  it('HotReload (the default) leaves the pod template alone when the schema changes: pods stay', () => {
    for (const rollout of [undefined, 'HotReload'] as const) {
      const a = renderDesired(before(rollout)).objects;
      const b = renderDesired(changed(rollout)).objects;
      expect(find(b, 'Deployment')).toEqual(find(a, 'Deployment'));
      expect(
        find(a, 'Deployment').spec.template.metadata.annotations[CONFIG_HASH_ANNOTATION],
      ).toBeUndefined();
      expect(find(b, 'ConfigMap').data['config.json']).toBe('{"version":"2"}');
      expect(find(b, 'ConfigMap').metadata.annotations).toEqual({ [CONFIG_HASH_ANNOTATION]: 'f'.repeat(64) });
    }
  });

  it('Restart puts the config hash in a pod-template annotation, so each change rolls the pods', () => {
    const a = find(renderDesired(before('Restart')).objects, 'Deployment');
    const b = find(renderDesired(changed('Restart')).objects, 'Deployment');
    expect(a.spec.template.metadata.annotations[CONFIG_HASH_ANNOTATION]).toBe(CONFIG_HASH);
    expect(b.spec.template.metadata.annotations[CONFIG_HASH_ANNOTATION]).toBe('f'.repeat(64));
  });

  it('replaces pods in either mode when router.yaml changes (the router does not hot-reload it)', () => {
    for (const rollout of ['HotReload', 'Restart'] as const) {
      const a = find(renderDesired(before(rollout)).objects, 'Deployment');
      const withProvider = renderDesired(
        input((i) => {
          i.supergraph.spec.router = { ...i.supergraph.spec.router, rollout };
          i.providers.push(nats('second'));
        }),
      ).objects;
      const b = find(withProvider, 'Deployment');
      const hash = createHash('sha256').update(routerYaml(withProvider)).digest('hex');
      expect(b.spec.template.metadata.annotations[ROUTER_CONFIG_HASH_ANNOTATION]).toBe(hash);
      expect(b.spec.template.metadata.annotations[ROUTER_CONFIG_HASH_ANNOTATION]).not.toBe(
        a.spec.template.metadata.annotations[ROUTER_CONFIG_HASH_ANNOTATION],
      );
    }
  });
});

describe('autoscaling', () => {
  it('HPA (the default mode): autoscaling/v2 on the Pods metric router_engine_connections; the Deployment leaves replicas to it', () => {
    const { objects, warnings } = renderDesired(
      input(
        (i) =>
          (i.supergraph.spec.autoscaling = {
            minReplicas: 2,
            maxReplicas: 10,
            targetConnectionsPerPod: 1000,
          }),
      ),
    );
    expect(warnings).toEqual([]);
    expect(kinds(objects)).toEqual([
      'ConfigMap',
      'Service',
      'Deployment',
      'PodDisruptionBudget',
      'HorizontalPodAutoscaler',
      'Ingress',
    ]);
    expect(find(objects, 'HorizontalPodAutoscaler')).toEqual({
      apiVersion: 'autoscaling/v2',
      kind: 'HorizontalPodAutoscaler',
      metadata: meta('chat-router'),
      spec: {
        scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'chat-router' },
        minReplicas: 2,
        maxReplicas: 10,
        metrics: [
          {
            type: 'Pods',
            pods: {
              metric: { name: 'router_engine_connections' },
              target: { type: 'AverageValue', averageValue: '1000' },
            },
          },
        ],
        behavior: {
          scaleDown: {
            stabilizationWindowSeconds: 300,
            policies: [{ type: 'Pods', value: 1, periodSeconds: 60 }],
          },
        },
      },
    });
    expect(find(objects, 'Deployment').spec).not.toHaveProperty('replicas');
  });

  it("KEDA with the capability: a ScaledObject with a Prometheus trigger summing this Supergraph's connections", () => {
    const { objects, warnings } = renderDesired(
      input((i) => {
        i.capabilities.keda = true;
        i.defaults.prometheusAddress = 'http://prometheus.monitoring.svc:9090';
        i.supergraph.spec.autoscaling = { maxReplicas: 8, targetConnectionsPerPod: 2000, mode: 'KEDA' };
      }),
    );
    expect(warnings).toEqual([]);
    expect(kinds(objects)).toEqual([
      'ConfigMap',
      'Service',
      'Deployment',
      'PodDisruptionBudget',
      'ScaledObject',
      'Ingress',
    ]);
    expect(find(objects, 'ScaledObject')).toEqual({
      apiVersion: 'keda.sh/v1alpha1',
      kind: 'ScaledObject',
      metadata: meta('chat-router'),
      spec: {
        scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'chat-router' },
        minReplicaCount: 1,
        maxReplicaCount: 8,
        advanced: {
          horizontalPodAutoscalerConfig: {
            behavior: {
              scaleDown: {
                stabilizationWindowSeconds: 300,
                policies: [{ type: 'Pods', value: 1, periodSeconds: 60 }],
              },
            },
          },
        },
        triggers: [
          {
            type: 'prometheus',
            metadata: {
              serverAddress: 'http://prometheus.monitoring.svc:9090',
              query:
                'sum(router_engine_connections{namespace="demo",pod=~"chat-router-[a-z0-9]+-[a-z0-9]+"})',
              threshold: '2000',
            },
          },
        ],
      },
    });
    expect(find(objects, 'Deployment').spec).not.toHaveProperty('replicas');
  });

  it("KEDA takes the Supergraph's own Prometheus address and query over the operator default", () => {
    const { objects } = renderDesired(
      input((i) => {
        i.capabilities.keda = true;
        i.defaults.prometheusAddress = 'http://default:9090';
        i.supergraph.spec.autoscaling = {
          maxReplicas: 3,
          targetConnectionsPerPod: 10,
          mode: 'KEDA',
          keda: { serverAddress: 'http://mine:9090', query: 'sum(my_connections)' },
        };
      }),
    );
    expect(find(objects, 'ScaledObject').spec.triggers[0].metadata).toEqual({
      serverAddress: 'http://mine:9090',
      query: 'sum(my_connections)',
      threshold: '10',
    });
  });

  it('HPA on CPU: a Resource metric (metrics-server), alone or beside the connections metric', () => {
    const cpuOnly = renderDesired(
      input((i) => (i.supergraph.spec.autoscaling = { maxReplicas: 4, targetCPUUtilizationPercentage: 60 })),
    );
    expect(cpuOnly.warnings).toEqual([]);
    const cpu = {
      type: 'Resource',
      resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: 60 } },
    };
    expect(find(cpuOnly.objects, 'HorizontalPodAutoscaler').spec.metrics).toEqual([cpu]);
    const both = renderDesired(
      input(
        (i) =>
          (i.supergraph.spec.autoscaling = {
            maxReplicas: 4,
            targetConnectionsPerPod: 100,
            targetCPUUtilizationPercentage: 60,
          }),
      ),
    ).objects;
    expect(find(both, 'HorizontalPodAutoscaler').spec.metrics).toEqual([
      {
        type: 'Pods',
        pods: {
          metric: { name: 'router_engine_connections' },
          target: { type: 'AverageValue', averageValue: '100' },
        },
      },
      cpu,
    ]);
  });

  it('behavior: a direction given replaces its default, the other keeps it; KEDA gets the same', () => {
    const scaleUp = {
      stabilizationWindowSeconds: 0,
      policies: [{ type: 'Pods' as const, value: 2, periodSeconds: 15 }],
    };
    const scaleDown = {
      stabilizationWindowSeconds: 30,
      policies: [{ type: 'Percent' as const, value: 100, periodSeconds: 15 }],
    };
    const hpa = renderDesired(
      input(
        (i) =>
          (i.supergraph.spec.autoscaling = {
            maxReplicas: 3,
            targetConnectionsPerPod: 10,
            behavior: { scaleDown },
          }),
      ),
    ).objects;
    expect(find(hpa, 'HorizontalPodAutoscaler').spec.behavior).toEqual({ scaleDown });
    const upOnly = renderDesired(
      input(
        (i) =>
          (i.supergraph.spec.autoscaling = {
            maxReplicas: 3,
            targetConnectionsPerPod: 10,
            behavior: { scaleUp },
          }),
      ),
    ).objects;
    expect(find(upOnly, 'HorizontalPodAutoscaler').spec.behavior).toEqual({
      scaleUp,
      scaleDown: {
        stabilizationWindowSeconds: 300,
        policies: [{ type: 'Pods', value: 1, periodSeconds: 60 }],
      },
    });
    const keda = renderDesired(
      input((i) => {
        i.capabilities.keda = true;
        i.defaults.prometheusAddress = 'http://prometheus:9090';
        i.supergraph.spec.autoscaling = {
          maxReplicas: 3,
          targetConnectionsPerPod: 10,
          mode: 'KEDA',
          behavior: { scaleUp, scaleDown },
          keda: { pollingInterval: 5 },
        };
      }),
    ).objects;
    const scaledObject = find(keda, 'ScaledObject');
    expect(scaledObject.spec.advanced).toEqual({
      horizontalPodAutoscalerConfig: { behavior: { scaleUp, scaleDown } },
    });
    expect(scaledObject.spec.pollingInterval).toBe(5);
  });

  it('KEDA on CPU: a cpu trigger, and no Prometheus needed when connections are not a target', () => {
    const { objects, warnings } = renderDesired(
      input((i) => {
        i.capabilities.keda = true;
        i.supergraph.spec.autoscaling = { maxReplicas: 3, targetCPUUtilizationPercentage: 70, mode: 'KEDA' };
      }),
    );
    expect(warnings).toEqual([]);
    expect(find(objects, 'ScaledObject').spec.triggers).toEqual([
      { type: 'cpu', metricType: 'Utilization', metadata: { value: '70' } },
    ]);
  });

  it('neither target set (the CRD refuses it; an older API server may not): no autoscaler and a warning', () => {
    const { objects, warnings } = renderDesired(
      input((i) => (i.supergraph.spec.autoscaling = { minReplicas: 2, maxReplicas: 3 })),
    );
    expect(find(objects, 'HorizontalPodAutoscaler')).toBeUndefined();
    expect(find(objects, 'Deployment').spec.replicas).toBe(2);
    expect(warnings).toEqual([
      expect.stringContaining('sets neither targetConnectionsPerPod nor targetCPUUtilizationPercentage'),
    ]);
  });

  it('KEDA requested but not installed: no autoscaler, minReplicas fixed, and a warning saying why', () => {
    const { objects, warnings } = renderDesired(
      input((i) => {
        i.defaults.prometheusAddress = 'http://prometheus:9090';
        i.supergraph.spec.autoscaling = {
          minReplicas: 3,
          maxReplicas: 8,
          targetConnectionsPerPod: 100,
          mode: 'KEDA',
        };
      }),
    );
    expect(kinds(objects)).toEqual(['ConfigMap', 'Service', 'Deployment', 'PodDisruptionBudget', 'Ingress']);
    expect(find(objects, 'Deployment').spec.replicas).toBe(3);
    expect(warnings).toEqual([
      'spec.autoscaling.mode is KEDA but the cluster has no KEDA (scaledobjects.keda.sh is not installed); no autoscaler is rendered and the router runs spec.autoscaling.minReplicas (3) replicas',
    ]);
  });

  it('KEDA without any Prometheus address: no autoscaler and a warning naming the field to set', () => {
    const { objects, warnings } = renderDesired(
      input((i) => {
        i.capabilities.keda = true;
        i.supergraph.spec.autoscaling = { maxReplicas: 8, targetConnectionsPerPod: 100, mode: 'KEDA' };
      }),
    );
    expect(find(objects, 'ScaledObject')).toBeUndefined();
    expect(find(objects, 'Deployment').spec.replicas).toBe(1);
    expect(warnings).toEqual([expect.stringContaining('set spec.autoscaling.keda.serverAddress')]);
  });

  it('without autoscaling the Deployment runs spec.router.replicas (default 1)', () => {
    const one = renderDesired(input((i) => delete i.supergraph.spec.router)).objects;
    expect(find(one, 'Deployment').spec.replicas).toBe(1);
    const five = renderDesired(input((i) => (i.supergraph.spec.router = { replicas: 5 }))).objects;
    expect(find(five, 'Deployment').spec.replicas).toBe(5);
  });
});

describe('disruption budget', () => {
  it('is left out for a single router', () => {
    const { objects } = renderDesired(input((i) => (i.supergraph.spec.router = { replicas: 1 })));
    expect(find(objects, 'PodDisruptionBudget')).toBeUndefined();
  });

  it('defaults to maxUnavailable 1 whenever an autoscaler may run more than one router', () => {
    const { objects } = renderDesired(
      input((i) => {
        i.supergraph.spec.router = { replicas: 1 };
        i.supergraph.spec.autoscaling = { maxReplicas: 2, targetConnectionsPerPod: 100 };
      }),
    );
    expect(find(objects, 'PodDisruptionBudget').spec).toEqual({
      maxUnavailable: 1,
      selector: { matchLabels: selector },
    });
  });

  it('takes minAvailable or maxUnavailable from the spec, even for one router', () => {
    const min = renderDesired(
      input((i) => {
        i.supergraph.spec.router = { replicas: 1 };
        i.supergraph.spec.disruptionBudget = { minAvailable: '50%' };
      }),
    ).objects;
    expect(find(min, 'PodDisruptionBudget').spec).toEqual({
      minAvailable: '50%',
      selector: { matchLabels: selector },
    });
    const max = renderDesired(
      input((i) => (i.supergraph.spec.disruptionBudget = { maxUnavailable: 2 })),
    ).objects;
    expect(find(max, 'PodDisruptionBudget').spec).toEqual({
      maxUnavailable: 2,
      selector: { matchLabels: selector },
    });
  });
});

describe('ingress', () => {
  it('is off unless spec.ingress is set', () => {
    const objects = renderDesired(input((i) => delete i.supergraph.spec.ingress)).objects;
    expect(find(objects, 'Ingress')).toBeUndefined();
  });

  it('exposes the GraphQL path with WebSocket/SSE-friendly nginx timeouts, the class and TLS', () => {
    const { objects } = renderDesired(
      input(
        (i) =>
          (i.supergraph.spec.ingress = {
            host: 'chat.example.com',
            className: 'nginx',
            tls: { secretName: 'chat-tls' },
            annotations: {
              'cert-manager.io/cluster-issuer': 'letsencrypt',
              'nginx.ingress.kubernetes.io/proxy-read-timeout': '7200',
            },
          }),
      ),
    );
    expect(find(objects, 'Ingress')).toEqual({
      apiVersion: 'networking.k8s.io/v1',
      kind: 'Ingress',
      metadata: {
        ...meta('chat-router'),
        annotations: {
          'cert-manager.io/cluster-issuer': 'letsencrypt',
          'nginx.ingress.kubernetes.io/proxy-buffering': 'off',
          'nginx.ingress.kubernetes.io/proxy-read-timeout': '7200',
          'nginx.ingress.kubernetes.io/proxy-send-timeout': '3600',
        },
        ownerReferences: [owner],
      },
      spec: {
        ingressClassName: 'nginx',
        tls: [{ hosts: ['chat.example.com'], secretName: 'chat-tls' }],
        rules: [
          {
            host: 'chat.example.com',
            http: {
              paths: [
                {
                  path: '/graphql',
                  pathType: 'Prefix',
                  backend: { service: { name: 'chat-router', port: { name: 'http' } } },
                },
              ],
            },
          },
        ],
      },
    });
  });

  it('defaults the timeouts to 3600 s and follows a graphql_path override', () => {
    const { objects } = renderDesired(
      input((i) => {
        i.supergraph.spec.ingress = { host: 'chat.example.com' };
        i.supergraph.spec.router = { config: { graphql_path: '/api/graphql' } };
      }),
    );
    const ingress = find(objects, 'Ingress');
    expect(ingress.metadata.annotations).toEqual({
      'nginx.ingress.kubernetes.io/proxy-buffering': 'off',
      'nginx.ingress.kubernetes.io/proxy-read-timeout': '3600',
      'nginx.ingress.kubernetes.io/proxy-send-timeout': '3600',
    });
    expect(ingress.spec).not.toHaveProperty('tls');
    expect(ingress.spec).not.toHaveProperty('ingressClassName');
    expect(ingress.spec.rules[0].http.paths[0].path).toBe('/api/graphql');
  });
});

describe('ServiceMonitor', () => {
  it('is rendered only when the cluster has the capability', () => {
    expect(find(renderDesired(input()).objects, 'ServiceMonitor')).toBeUndefined();
    const { objects } = renderDesired(input((i) => (i.capabilities.serviceMonitor = true)));
    expect(find(objects, 'ServiceMonitor')).toEqual({
      apiVersion: 'monitoring.coreos.com/v1',
      kind: 'ServiceMonitor',
      metadata: meta('chat-router'),
      spec: { selector: { matchLabels: selector }, endpoints: [{ port: 'metrics', path: '/metrics' }] },
    });
  });

  it('takes extra labels and an interval, and follows a metrics path override', () => {
    const { objects } = renderDesired(
      input((i) => {
        i.capabilities.serviceMonitor = true;
        i.supergraph.spec.serviceMonitor = { labels: { release: 'kube-prometheus-stack' }, interval: '15s' };
        i.supergraph.spec.router = { config: { telemetry: { metrics: { prometheus: { path: '/prom' } } } } };
      }),
    );
    const monitor = find(objects, 'ServiceMonitor');
    expect(monitor.metadata.labels).toEqual({ ...labels, release: 'kube-prometheus-stack' });
    expect(monitor.spec.endpoints).toEqual([{ port: 'metrics', path: '/prom', interval: '15s' }]);
    expect(find(objects, 'Deployment').spec.template.metadata.annotations['prometheus.io/path']).toBe(
      '/prom',
    );
  });

  it('can be switched off, and asking for one without the capability says why there is none', () => {
    const off = renderDesired(
      input((i) => {
        i.capabilities.serviceMonitor = true;
        i.supergraph.spec.serviceMonitor = { enabled: false };
      }),
    );
    expect(find(off.objects, 'ServiceMonitor')).toBeUndefined();
    const missing = renderDesired(input((i) => (i.supergraph.spec.serviceMonitor = { enabled: true })));
    expect(find(missing.objects, 'ServiceMonitor')).toBeUndefined();
    expect(missing.warnings).toEqual([
      expect.stringContaining('servicemonitors.monitoring.coreos.com is not installed'),
    ]);
  });
});

describe('pod template and container overrides', () => {
  const { objects, warnings } = renderDesired(
    input((i) => {
      i.providers = [nats('default', { auth: { tokenSecretRef: { name: 'nats', key: 'token' } } })];
      i.supergraph.spec.router = {
        replicas: 2,
        image: 'registry.example.com/edfs-router:9.9.9',
        imagePullPolicy: 'Always',
        resources: { requests: { cpu: '500m', memory: '256Mi' }, limits: { memory: '1Gi' } },
        podTemplate: {
          metadata: {
            labels: { team: 'chat', 'app.kubernetes.io/name': 'not-mine' },
            annotations: { 'sidecar.istio.io/inject': 'false', [CONFIG_HASH_ANNOTATION]: 'forged' },
          },
          spec: {
            nodeSelector: { pool: 'edge' },
            tolerations: [{ key: 'edge', operator: 'Exists', effect: 'NoSchedule' }],
            priorityClassName: 'high',
            containers: [
              { name: 'router', env: [{ name: 'NODE_OPTIONS', value: '--max-old-space-size=768' }] },
              { name: 'log-shipper', image: 'fluent-bit:3' },
            ],
            volumes: [{ name: 'scratch', emptyDir: {} }],
          },
        },
      };
    }),
  );
  const deployment = find(objects, 'Deployment');
  const pod = deployment.spec.template;

  it('use the spec image and pull policy over the operator default', () => {
    expect(routerContainer(objects).image).toBe('registry.example.com/edfs-router:9.9.9');
    expect(routerContainer(objects).imagePullPolicy).toBe('Always');
  });

  it('replace the default resources with spec.router.resources', () => {
    expect(routerContainer(objects).resources).toEqual({
      limits: { memory: '1Gi' },
      requests: { cpu: '500m', memory: '256Mi' },
    });
  });

  it('merge scheduling fields, extra labels and annotations into the pod template', () => {
    expect(pod.spec.nodeSelector).toEqual({ pool: 'edge' });
    expect(pod.spec.tolerations).toEqual([{ effect: 'NoSchedule', key: 'edge', operator: 'Exists' }]);
    expect(pod.spec.priorityClassName).toBe('high');
    expect(pod.metadata.labels).toEqual({ ...labels, team: 'chat' });
    expect(pod.metadata.annotations['sidecar.istio.io/inject']).toBe('false');
  });

  it('never change the selector labels or the rollout annotations', () => {
    expect(deployment.spec.selector).toEqual({ matchLabels: selector });
    expect(pod.metadata.labels['app.kubernetes.io/name']).toBe('edfs-router');
    expect(pod.metadata.annotations).not.toHaveProperty(CONFIG_HASH_ANNOTATION);
  });

  it('merge containers and volumes by name: router env extended, a sidecar and a volume added', () => {
    expect(pod.spec.containers.map((c: any) => c.name)).toEqual(['router', 'log-shipper']);
    expect(routerContainer(objects).env).toEqual([
      { name: 'EDFS_PROVIDER_DEFAULT_TOKEN', valueFrom: { secretKeyRef: { name: 'nats', key: 'token' } } },
      { name: 'NODE_OPTIONS', value: '--max-old-space-size=768' },
    ]);
    expect(routerContainer(objects).args).toEqual(['-c', '/etc/edfs/router.yaml']);
    expect(pod.spec.volumes).toEqual([
      { name: 'config', configMap: { name: 'chat-router-config' } },
      { emptyDir: {}, name: 'scratch' },
    ]);
    expect(warnings).toEqual([]);
  });

  it('delete a generated field with null (JSON merge patch)', () => {
    const { objects: withoutProbe } = renderDesired(
      input((i) => {
        i.supergraph.spec.router = {
          podTemplate: {
            spec: {
              automountServiceAccountToken: null,
              containers: [{ name: 'router', readinessProbe: null }],
            },
          },
        } as any;
      }),
    );
    expect(find(withoutProbe, 'Deployment').spec.template.spec).not.toHaveProperty(
      'automountServiceAccountToken',
    );
    expect(routerContainer(withoutProbe)).not.toHaveProperty('readinessProbe');
    expect(routerContainer(withoutProbe).livenessProbe).toBeDefined();
  });
});

describe('shutdown and hot reload', () => {
  const allMounts = (objects: KubeObject[]) =>
    find(objects, 'Deployment').spec.template.spec.containers.flatMap((c: any) => c.volumeMounts ?? []);

  it("mount the ConfigMap as a directory, never with subPath, so kubelet's symlink swap reaches the router", () => {
    const { objects } = renderDesired(
      input((i) => {
        i.providers = [nats('n', { auth: { credsSecretRef: { name: 'c', key: 'k' } } })];
      }),
    );
    expect(allMounts(objects)).toContainEqual({ name: 'config', mountPath: '/etc/edfs', readOnly: true });
    for (const mount of allMounts(objects)) expect(mount).not.toHaveProperty('subPath');
    const config = parse(routerYaml(objects));
    expect(config.execution_config).toEqual({ file: { path: '/etc/edfs/config.json', watch: true } });
  });

  it.each([
    [undefined, 20],
    [0, 0],
    [120, 120],
  ])(
    'with drainSeconds %s: shutdown_delay %ss, and a grace period longer than preStop + drain',
    (drainSeconds, expected) => {
      const { objects } = renderDesired(
        input((i) => {
          if (drainSeconds !== undefined) i.supergraph.spec.router = { drainSeconds };
        }),
      );
      expect(parse(routerYaml(objects)).shutdown_delay).toBe(`${expected}s`);
      const pod = find(objects, 'Deployment').spec.template.spec;
      expect(routerContainer(objects).lifecycle.preStop.exec.command).toEqual([
        'sleep',
        String(PRE_STOP_SECONDS),
      ]);
      expect(pod.terminationGracePeriodSeconds).toBeGreaterThan(PRE_STOP_SECONDS + expected);
      expect(pod.terminationGracePeriodSeconds).toBe(
        terminationGraceSeconds(input((i) => (i.supergraph.spec.router = { drainSeconds })).supergraph),
      );
    },
  );

  it('raise a podTemplate grace period that would cut the drain short, with a warning; keep a longer one', () => {
    const short = renderDesired(
      input(
        (i) =>
          (i.supergraph.spec.router = {
            drainSeconds: 60,
            podTemplate: { spec: { terminationGracePeriodSeconds: 30 } },
          }),
      ),
    );
    expect(find(short.objects, 'Deployment').spec.template.spec.terminationGracePeriodSeconds).toBe(75);
    expect(short.warnings).toEqual([
      expect.stringContaining('terminationGracePeriodSeconds 30 is shorter than'),
    ]);
    const long = renderDesired(
      input(
        (i) => (i.supergraph.spec.router = { podTemplate: { spec: { terminationGracePeriodSeconds: 300 } } }),
      ),
    );
    expect(find(long.objects, 'Deployment').spec.template.spec.terminationGracePeriodSeconds).toBe(300);
    expect(long.warnings).toEqual([]);
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

describe('a very large execution config', () => {
  it('is rendered with a warning that the API server will refuse the ConfigMap', () => {
    const { warnings } = renderDesired(input((i) => (i.configJson = `"${'x'.repeat(1024 * 1024)}"`)));
    expect(warnings).toEqual([expect.stringContaining('more than a ConfigMap holds (1 MiB)')]);
  });
});
