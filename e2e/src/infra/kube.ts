/**
 * A real Kubernetes control plane for tests, envtest-style: etcd plus kube-apiserver, built once
 * per machine by `e2e/infra/kube.sh` (cached outside the repository) and started per test file on
 * free 127.0.0.1 ports, with RBAC on and a static admin token.
 *
 * What it is and is not: the API server is the real one (validation, CEL rules, defaulting,
 * server-side apply, RBAC, TokenRequest, watches, the scale subresource). No controller-manager,
 * scheduler or kubelet runs, so nothing reacts to the objects: Deployments get no ReplicaSets or
 * Pods, namespaces get no `default` ServiceAccount, ownerReferences are not garbage-collected and
 * deleted namespaces stay `Terminating`. Tests should use a fresh namespace each, not delete them.
 *
 * Invariants: every process this module starts is stopped by pid, by `stop()` or at process exit;
 * a start that loses a port to another process retries on fresh ones; the temporary directory
 * (etcd data, certificates, keys, kubeconfigs) is removed by `stop()`.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPair, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { freePort, freePorts } from './nats.js';

export interface ControlPlane {
  /** `https://127.0.0.1:PORT` (a self-signed certificate: skip TLS verification). */
  server: string;
  /** Bearer token of `admin` in group `system:masters` (everything allowed). */
  token: string;
  /** A kubeconfig file for the admin token (insecure-skip-tls-verify), for helm and kubectl. */
  kubeconfigPath: string;
  /** `http://127.0.0.1:PORT` of the etcd behind the API server. */
  etcdUrl: string;
  /** A fresh `KubeConfig` for the admin token, or for `token` when given (e.g. from `tokenFor`). */
  kubeConfig(token?: string): KubeConfig;
  /** Writes a kubeconfig file for `token` (for a process run as that identity); returns its path. */
  kubeconfigFor(token: string): Promise<string>;
  /**
   * A token for ServiceAccount `namespace/serviceAccount` from the TokenRequest API, so code under
   * test runs with exactly the RBAC granted to that account. The account must exist (a chart
   * creates it), unless `create` is set, which creates the namespace and account when missing.
   */
  tokenFor(namespace: string, serviceAccount: string, options?: TokenOptions): Promise<string>;
  /** The last lines the API server and etcd logged (for failure messages). */
  logs(): string;
  /** Stops the API server and etcd, and removes their files. Idempotent. */
  stop(): Promise<void>;
}

export interface TokenOptions {
  /** Create the namespace and the ServiceAccount when they do not exist. */
  create?: boolean;
  /** Token lifetime (the API server enforces at least 600 s). Default 3600. */
  expirationSeconds?: number;
}

export interface ControlPlaneOptions {
  /** Extra kube-apiserver flags (`--name=value`), appended after the defaults. */
  apiServerFlags?: string[];
}

export interface KubeBinaries {
  etcd: string;
  kubeApiServer: string;
}

const KUBE_SCRIPT = fileURLToPath(new URL('../../infra/kube.sh', import.meta.url));
const HELM_SCRIPT = fileURLToPath(new URL('../../infra/helm.sh', import.meta.url));
const READY_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 5_000;
const START_ATTEMPTS = 3;
const LOG_TAIL = 30_000;

let binaries: Promise<KubeBinaries> | undefined;
let helm: Promise<string> | undefined;

/**
 * Paths of etcd and kube-apiserver, building them on first use (once per machine: ~15 min cold,
 * milliseconds warm; progress goes to stderr). Give the caller's `beforeAll` a long timeout.
 */
export function kubeBinaries(): Promise<KubeBinaries> {
  binaries ??= runScript(KUBE_SCRIPT, ['etcd', 'kube-apiserver']).then((lines) => {
    const [etcd, kubeApiServer] = lines.slice(-2);
    if (!etcd || !kubeApiServer) throw new Error(`${KUBE_SCRIPT} printed too few paths: ${lines.join(' ')}`);
    return { etcd, kubeApiServer };
  });
  binaries.catch(() => {
    binaries = undefined;
  });
  return binaries;
}

/** Path of the helm binary, installing it on first use (a few minutes cold). */
export function helmBinary(): Promise<string> {
  helm ??= runScript(HELM_SCRIPT, []).then((lines) => lines[lines.length - 1]!);
  helm.catch(() => {
    helm = undefined;
  });
  return helm;
}

/** Starts etcd and kube-apiserver in a new temporary directory; resolves once `/readyz` is ok. */
export async function startControlPlane(options: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const [bins, keys] = await Promise.all([kubeBinaries(), serviceAccountKeys()]);
  const dir = await mkdtemp(join(tmpdir(), 'edfs-kube-'));
  const token = randomBytes(24).toString('hex');
  try {
    await Promise.all([
      writeFile(join(dir, 'sa.key'), keys.privateKey, { mode: 0o600 }),
      writeFile(join(dir, 'sa.pub'), keys.publicKey),
      writeFile(join(dir, 'tokens.csv'), `${token},admin,admin,"system:masters"\n`, { mode: 0o600 }),
    ]);

    let lastError: Error | undefined;
    for (let attempt = 0; attempt < START_ATTEMPTS; attempt++) {
      let etcd: Running | undefined;
      try {
        etcd = await startEtcd(bins.etcd, dir, attempt);
        const port = await freePort();
        const apiServer = await startApiServer(bins.kubeApiServer, dir, port, etcd.url, token, options);
        return await controlPlane(dir, port, token, etcd, apiServer).catch(async (error: unknown) => {
          await apiServer.stop();
          throw error;
        });
      } catch (error) {
        lastError = error as Error;
        await etcd?.stop();
        if (!(error instanceof PortInUseError)) break;
      }
    }
    throw lastError ?? new Error('the control plane did not start');
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}

// ---------------------------------------------------------------------------------------------

async function controlPlane(
  dir: string,
  port: number,
  token: string,
  etcd: Running,
  apiServer: Running,
): Promise<ControlPlane> {
  const server = `https://127.0.0.1:${port}`;
  const kubeconfigPath = join(dir, 'admin.kubeconfig');
  await writeFile(kubeconfigPath, kubeconfigYaml(server, 'admin', token), { mode: 0o600 });
  let files = 0;
  let stopped = false;

  const kubeConfig = (bearer = token): KubeConfig => {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'edfs-test', server, skipTLSVerify: true }],
      users: [{ name: 'edfs-test-user', token: bearer }],
      contexts: [{ name: 'edfs-test', cluster: 'edfs-test', user: 'edfs-test-user' }],
      currentContext: 'edfs-test',
    });
    return kc;
  };

  return {
    server,
    token,
    kubeconfigPath,
    etcdUrl: etcd.url,
    kubeConfig,
    async kubeconfigFor(bearer) {
      const path = join(dir, `user-${++files}.kubeconfig`);
      await writeFile(path, kubeconfigYaml(server, 'user', bearer), { mode: 0o600 });
      return path;
    },
    async tokenFor(namespace, serviceAccount, opts = {}) {
      const core = kubeConfig().makeApiClient(CoreV1Api);
      if (opts.create) {
        await ignoreConflict(core.createNamespace({ body: { metadata: { name: namespace } } }));
        await ignoreConflict(
          core.createNamespacedServiceAccount({ namespace, body: { metadata: { name: serviceAccount } } }),
        );
      }
      const res = await core.createNamespacedServiceAccountToken({
        name: serviceAccount,
        namespace,
        body: { spec: { audiences: [], expirationSeconds: opts.expirationSeconds ?? 3600 } },
      });
      const issued = res.status?.token;
      if (!issued) throw new Error(`TokenRequest for ${namespace}/${serviceAccount} returned no token`);
      return issued;
    },
    logs: () => `--- kube-apiserver ---\n${apiServer.log()}\n--- etcd ---\n${etcd.log()}`,
    async stop() {
      if (stopped) return;
      stopped = true;
      await apiServer.stop();
      await etcd.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

async function startEtcd(bin: string, dir: string, attempt: number): Promise<Running> {
  const [clientPort, peerPort] = (await freePorts(2)) as [number, number];
  const url = `http://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  const args = [
    '--name=default',
    `--data-dir=${join(dir, `etcd-${attempt}`)}`,
    `--listen-client-urls=${url}`,
    `--advertise-client-urls=${url}`,
    `--listen-peer-urls=${peer}`,
    `--initial-advertise-peer-urls=${peer}`,
    `--initial-cluster=default=${peer}`,
    // Throwaway data: no fsync (as envtest does), small backend, quiet logs.
    '--unsafe-no-fsync=true',
    '--quota-backend-bytes=2147483648',
    '--log-level=warn',
  ];
  const running = launch('etcd', bin, args, url);
  await waitReady(running, async () => {
    const res = await fetch(`${url}/health`, { signal: AbortSignal.timeout(2_000) });
    return res.ok && ((await res.json()) as { health?: string }).health === 'true';
  });
  return running;
}

async function startApiServer(
  bin: string,
  dir: string,
  port: number,
  etcdUrl: string,
  token: string,
  options: ControlPlaneOptions,
): Promise<Running> {
  const server = `https://127.0.0.1:${port}`;
  const args = [
    `--etcd-servers=${etcdUrl}`,
    '--bind-address=127.0.0.1',
    '--advertise-address=127.0.0.1',
    `--secure-port=${port}`,
    `--cert-dir=${join(dir, 'certs')}`,
    '--service-cluster-ip-range=10.0.0.0/24',
    '--allow-privileged=true',
    `--service-account-issuer=${server}`,
    `--service-account-key-file=${join(dir, 'sa.pub')}`,
    `--service-account-signing-key-file=${join(dir, 'sa.key')}`,
    '--authorization-mode=RBAC',
    `--token-auth-file=${join(dir, 'tokens.csv')}`,
    // Without a controller-manager no namespace gets a `default` ServiceAccount; the admission
    // plugin would reject every Pod for want of it.
    '--disable-admission-plugins=ServiceAccount',
    // The `kubernetes` Service's endpoints would point at 127.0.0.1, which Endpoints reject
    // (loopback): the reconciler would log an error every few seconds.
    '--endpoint-reconciler-type=none',
    '--profiling=false',
    ...(options.apiServerFlags ?? []),
  ];
  const running = launch('kube-apiserver', bin, args, server);
  await waitReady(running, async () => {
    // Ready once /readyz passes (RBAC bootstrap roles, CRD controllers, priority and fairness
    // are post-start hooks it checks) and the system namespaces exist.
    const ready = await httpsGet(`${server}/readyz`, token);
    if (ready.status !== 200) return false;
    for (const ns of ['default', 'kube-system']) {
      if ((await httpsGet(`${server}/api/v1/namespaces/${ns}`, token)).status !== 200) return false;
    }
    return true;
  });
  return running;
}

// ---------------------------------------------------------------------------------------------

class PortInUseError extends Error {}

interface Running {
  url: string;
  log(): string;
  exited: Promise<number | null>;
  stop(): Promise<void>;
}

const children = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

function launch(name: string, bin: string, args: string[], url: string): Running {
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let log = '';
  const append = (chunk: Buffer): void => {
    log = (log + chunk.toString()).slice(-LOG_TAIL);
  };
  child.stdout!.on('data', append);
  child.stderr!.on('data', append);
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code, signal) => resolve(code ?? (signal ? -1 : null)));
    child.once('error', (error) => {
      append(Buffer.from(`${name}: ${error.message}\n`));
      resolve(-1);
    });
  });
  void exited.then(() => children.delete(child));
  const outcome = exited.then((code) => {
    if (code !== null && child.signalCode === null && /address already in use/i.test(log)) {
      throw new PortInUseError(`${name} lost its port:\n${log}`);
    }
    return code;
  });
  outcome.catch(() => undefined); // only waitReady cares; never an unhandled rejection
  return {
    url,
    log: () => log,
    exited: outcome,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Polls `check` until it passes; fails fast when the process exits, with its log. */
async function waitReady(running: Running, check: () => Promise<boolean>): Promise<void> {
  let exitedWith: { code: number | null } | { error: Error } | undefined;
  running.exited.then(
    (code) => (exitedWith = { code }),
    (error: Error) => (exitedWith = { error }),
  );
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (exitedWith) {
      await running.stop();
      if ('error' in exitedWith) throw exitedWith.error;
      throw new Error(`${running.url}: process exited with code ${exitedWith.code}:\n${running.log()}`);
    }
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) {
      await running.stop();
      throw new Error(`${running.url} not ready after ${READY_TIMEOUT_MS} ms:\n${running.log()}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function httpsGet(url: string, token: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { headers: { authorization: `Bearer ${token}` }, rejectUnauthorized: false, timeout: 2_000 },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`GET ${url} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

let saKeys: Promise<{ privateKey: string; publicKey: string }> | undefined;

/** One RSA key pair per process for signing ServiceAccount tokens (each server trusts only its own). */
function serviceAccountKeys(): Promise<{ privateKey: string; publicKey: string }> {
  saKeys ??= promisify(generateKeyPair)('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs1', format: 'pem' },
  }).then(({ privateKey, publicKey }) => ({ privateKey, publicKey }));
  return saKeys;
}

function kubeconfigYaml(server: string, user: string, token: string): string {
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '- name: edfs-test',
    '  cluster:',
    `    server: ${server}`,
    '    insecure-skip-tls-verify: true',
    'users:',
    `- name: ${user}`,
    '  user:',
    `    token: ${token}`,
    'contexts:',
    '- name: edfs-test',
    '  context:',
    '    cluster: edfs-test',
    `    user: ${user}`,
    'current-context: edfs-test',
    '',
  ].join('\n');
}

async function ignoreConflict(call: Promise<unknown>): Promise<void> {
  try {
    await call;
  } catch (error) {
    if ((error as { code?: number }).code !== 409) throw error;
  }
}

function runScript(script: string, args: string[]): Promise<string[]> {
  return new Promise<string[]>((resolve, reject) => {
    const child = execFile(
      'bash',
      [script, ...args],
      { maxBuffer: 64 * 1024 * 1024 },
      (error, stdout, stderr) => {
        if (error) {
          reject(new Error(`${script} failed (${error.message}):\n${stderr.slice(-20_000)}`));
          return;
        }
        const lines = stdout
          .split('\n')
          .map((line) => line.trim())
          .filter(Boolean);
        if (lines.length === 0) reject(new Error(`${script} printed no binary path:\n${stderr}`));
        else resolve(lines);
      },
    );
    // Progress of a first build (minutes) shows up while the tests wait.
    child.stderr?.on('data', (chunk: Buffer) => process.stderr.write(chunk));
  });
}
