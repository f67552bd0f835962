/**
 * The router Deployment and Ingress (operator/src/desired/workload.ts): when pods roll (Secret
 * digest, config hash, router.yaml), podTemplate and container overrides, the drain-aware
 * shutdown and the ConfigMap mount that hot reload needs, and the Ingress options.
 */
import { describe, expect, it } from '@jest/globals';
import { createHash } from 'node:crypto';
import { parse } from 'yaml';
import type { KubeObject } from '../../src/api/v1alpha1.js';
import {
  CONFIG_HASH_ANNOTATION,
  PRE_STOP_SECONDS,
  ROUTER_CONFIG_HASH_ANNOTATION,
  SECRETS_HASH_ANNOTATION,
  renderDesired,
  terminationGraceSeconds,
} from '../../src/desired/index.js';
import {
  CONFIG_HASH,
  find,
  input,
  labels,
  meta,
  nats,
  owner,
  routerContainer,
  routerYaml,
  selector,
} from '../fixtures/desired.js';

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
