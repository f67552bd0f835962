/**
 * The test cluster itself (`src/infra/cluster.ts`): a node that runs pods for real. A Deployment
 * of two busybox web servers becomes Available; inside a pod, CoreDNS resolves the Service's name
 * and the ClusterIP (kube-proxy) reaches the pods, as does `kubernetes.default.svc` with the pod's
 * ServiceAccount token; an Ingress of class `traefik` routes a request from this machine to them;
 * a ConfigMap change reaches the file mounted in the running pods; a deleted pod is replaced.
 * The first run builds the parts (many minutes); later runs start the cluster in about half a
 * minute.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { request } from 'node:http';
import { eventually, waitFor } from '../src/fixtures/wait.js';
import { startCluster, type Cluster } from '../src/infra/cluster.js';

const SETUP_TIMEOUT_MS = 60 * 60_000;
const STEP_TIMEOUT_MS = 120_000;
const NS = `cluster-infra-${Date.now().toString(36)}`;
const HOST = 'web.cluster-infra.test';

type Obj = Record<string, any>;

let cluster: Cluster;

async function kubectlJson(args: string[]): Promise<Obj> {
  return JSON.parse(await cluster.kubectl([...args, '-o', 'json'])) as Obj;
}

/** Runs a command in one of the web pods. */
function inPod(pod: string, ...command: string[]): Promise<string> {
  return cluster.kubectl(['-n', NS, 'exec', pod, '-c', 'web', '--', ...command]);
}

async function webPods(): Promise<Obj[]> {
  const list = await kubectlJson(['-n', NS, 'get', 'pods', '-l', 'app=web']);
  return (list.items as Obj[]).filter((pod) => !pod.metadata.deletionTimestamp);
}

/** GET through the Ingress controller with the Ingress's host name. */
function ingressGet(path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${cluster.ingress.url}${path}`,
      { headers: { host: HOST }, timeout: 5_000 },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  });
}

const manifests = (busybox: string): string => `
apiVersion: v1
kind: ConfigMap
metadata: { name: page, namespace: ${NS} }
data:
  message: first
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: web, namespace: ${NS} }
spec:
  replicas: 2
  selector: { matchLabels: { app: web } }
  template:
    metadata: { labels: { app: web } }
    spec:
      terminationGracePeriodSeconds: 2
      containers:
        - name: web
          image: ${busybox}
          imagePullPolicy: IfNotPresent
          command:
            - sh
            - -c
            - mkdir -p /www && hostname > /www/index.html && ln -s /config/message /www/message && exec httpd -f -p 8080 -h /www
          ports: [{ name: http, containerPort: 8080 }]
          readinessProbe:
            httpGet: { path: /index.html, port: http }
            periodSeconds: 1
          lifecycle:
            preStop:
              exec: { command: [sh, -c, 'echo stopping > /www/index.html'] }
          volumeMounts: [{ name: page, mountPath: /config }]
      volumes:
        - name: page
          configMap: { name: page }
---
apiVersion: v1
kind: Service
metadata: { name: web, namespace: ${NS} }
spec:
  selector: { app: web }
  ports: [{ name: http, port: 80, targetPort: http }]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: { name: web, namespace: ${NS} }
spec:
  ingressClassName: traefik
  rules:
    - host: ${HOST}
      http:
        paths:
          - path: /
            pathType: Prefix
            backend: { service: { name: web, port: { name: http } } }
`;

beforeAll(async () => {
  const started = Date.now();
  cluster = await startCluster();
  console.log(`cluster up in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  await cluster.kubectl(['create', 'namespace', NS]);
  // The namespace's `default` ServiceAccount comes from the controller-manager.
  await waitFor(
    () => cluster.kubectl(['-n', NS, 'get', 'serviceaccount', 'default']).then(() => true),
    'the default ServiceAccount',
    30_000,
  );
  await cluster.kubectl(['apply', '-f', '-'], manifests(cluster.images.busybox));
}, SETUP_TIMEOUT_MS);

afterAll(async () => {
  if (!cluster) return;
  if (!cluster.external) {
    await cluster.stop();
    return;
  }
  await cluster.kubectl(['delete', 'namespace', NS, '--wait=false']).catch(() => undefined);
}, STEP_TIMEOUT_MS);

describe('a single-node cluster that runs pods', () => {
  it('has a Ready node', async () => {
    const nodes = await kubectlJson(['get', 'nodes']);
    const ready = (nodes.items as Obj[]).map(
      (node) => (node.status.conditions as Obj[]).find((c) => c.type === 'Ready')?.status,
    );
    expect(ready).toContain('True');
  });

  it(
    'makes a Deployment of two replicas Available',
    async () => {
      const started = Date.now();
      await eventually(
        async () =>
          (await kubectlJson(['-n', NS, 'get', 'deployment', 'web'])).status?.availableReplicas === 2,
        'deployment web Available with 2 replicas',
        STEP_TIMEOUT_MS - 10_000,
        250,
      ).catch((error: Error) => {
        throw new Error(`${error.message}\n${cluster.logs()}`);
      });
      console.log(`2 replicas Available in ${((Date.now() - started) / 1000).toFixed(1)} s`);
      expect(await webPods()).toHaveLength(2);
    },
    STEP_TIMEOUT_MS,
  );

  it(
    'resolves a Service name through CoreDNS and reaches the pods through its ClusterIP',
    async () => {
      const service = await kubectlJson(['-n', NS, 'get', 'service', 'web']);
      const clusterIP = service.spec.clusterIP as string;
      const [pod] = await webPods();
      const resolved = await waitFor(
        async () => {
          const out = await inPod(pod!.metadata.name, 'nslookup', `web.${NS}.svc.cluster.local`);
          return out.includes(clusterIP) && out;
        },
        'nslookup of the Service',
        30_000,
      );
      expect(resolved).toContain(clusterIP);
      // The short name through the pod's search path, and the ClusterIP through kube-proxy.
      const names = new Set<string>();
      const podNames = (await webPods()).map((p) => p.metadata.name as string);
      await eventually(
        async () => {
          names.add(
            (await inPod(pod!.metadata.name, 'wget', '-qO-', `http://web.${NS}.svc/index.html`)).trim(),
          );
          return podNames.every((name) => names.has(name));
        },
        'both pods answering through the ClusterIP',
        30_000,
        50,
      );
      expect([...names].sort()).toEqual([...podNames].sort());
    },
    STEP_TIMEOUT_MS,
  );

  it(
    'serves the API to a pod at kubernetes.default.svc with its ServiceAccount token',
    async () => {
      const [pod] = await webPods();
      const dir = '/var/run/secrets/kubernetes.io/serviceaccount';
      expect(await inPod(pod!.metadata.name, 'cat', `${dir}/ca.crt`)).toContain('BEGIN CERTIFICATE');
      // Through the `kubernetes` Service (kube-proxy to the API server on the node's address),
      // authenticated with the pod's projected ServiceAccount token: who am I?
      const review = JSON.parse(
        await inPod(
          pod!.metadata.name,
          'sh',
          '-c',
          `wget -qO- --no-check-certificate --header "Authorization: Bearer $(cat ${dir}/token)" ` +
            `--header 'Content-Type: application/json' ` +
            `--post-data '{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}' ` +
            'https://kubernetes.default.svc/apis/authentication.k8s.io/v1/selfsubjectreviews',
        ),
      ) as Obj;
      expect(review.status?.userInfo?.username).toBe(`system:serviceaccount:${NS}:default`);
    },
    STEP_TIMEOUT_MS,
  );

  it(
    'routes an Ingress of class traefik from this machine to the pods',
    async () => {
      const podNames = (await webPods()).map((p) => p.metadata.name as string);
      const res = await waitFor(
        async () => {
          const r = await ingressGet('/index.html');
          return r.status === 200 && r;
        },
        `GET ${cluster.ingress.url} with Host ${HOST}`,
        30_000,
      );
      expect(podNames).toContain(res.body.trim());
    },
    STEP_TIMEOUT_MS,
  );

  it(
    'updates a mounted ConfigMap in the running pods',
    async () => {
      const pods = await webPods();
      const uids = pods.map((p) => p.metadata.uid as string);
      await cluster.kubectl(['-n', NS, 'patch', 'configmap', 'page', '-p', '{"data":{"message":"second"}}']);
      const started = Date.now();
      for (const pod of pods) {
        await waitFor(
          async () => (await inPod(pod.metadata.name, 'cat', '/config/message')) === 'second',
          `the new ConfigMap value in ${pod.metadata.name}`,
          60_000,
        );
      }
      console.log(`ConfigMap update in both pods after ${((Date.now() - started) / 1000).toFixed(1)} s`);
      // Same pods (no restart), and the Ingress serves the file too.
      expect((await webPods()).map((p) => p.metadata.uid)).toEqual(expect.arrayContaining(uids));
      expect((await ingressGet('/message')).body).toBe('second');
    },
    STEP_TIMEOUT_MS,
  );

  it(
    'replaces a deleted pod',
    async () => {
      const [victim] = await webPods();
      await cluster.kubectl(['-n', NS, 'delete', 'pod', victim!.metadata.name, '--wait=true']);
      await eventually(
        async () => {
          const pods = await webPods();
          const ready = pods.filter((p) =>
            (p.status.conditions as Obj[] | undefined)?.some(
              (c) => c.type === 'Ready' && c.status === 'True',
            ),
          );
          return ready.length === 2 && !pods.some((p) => p.metadata.name === victim!.metadata.name);
        },
        'a replacement pod Ready',
        60_000,
        250,
      );
    },
    STEP_TIMEOUT_MS,
  );
});
