/**
 * A real Kubernetes cluster that runs pods, for the suites that deploy the project as users do:
 * kubelet and containerd (runc), kube-proxy (iptables), CoreDNS, and Traefik v3 as the Ingress
 * controller (IngressClass `traefik`, the default class), plus the control plane of `kube.ts`
 * with a controller-manager and a scheduler.
 *
 * Which cluster:
 * - `EDFS_E2E_KUBECONFIG` (or else `KUBECONFIG`, unless `EDFS_E2E_CLUSTER=local`) set: that
 *   cluster (for example
 *   `kind create cluster`), used as it is. Nothing is started or stopped; images are loaded with
 *   `kind load docker-image` when the context is a kind one (`kind-NAME`, or
 *   `EDFS_E2E_KIND_CLUSTER=NAME`), with `EDFS_E2E_LOAD_IMAGE` (a command the image name is
 *   appended to) when set, and not at all otherwise (the cluster pulls them). The Ingress
 *   controller is the cluster's own, at `EDFS_E2E_INGRESS_URL` (default `http://127.0.0.1:80`,
 *   kind's documented port mapping). The suites create namespaces and objects in that cluster.
 * - otherwise: a single-node cluster on this machine, from `e2e/infra/cluster.sh` (needs root;
 *   parts built once per machine by `e2e/infra/cluster-parts.sh`: 15-25 min cold on 2 cores,
 *   cached). The node runs on the machine's own address (`nodeIP`), the API server on
 *   `https://NODE_IP:6443`, the Ingress on `http://NODE_IP:30080`. A warm start takes ~12 s; images
 *   loaded once stay in the node's store across runs (`loadImage` of an unchanged image is instant).
 *   One such cluster per machine: suites that use it run in band; a start while another
 *   process's cluster runs fails and leaves that cluster alone.
 *
 * Invariants: everything the module started is stopped by pid by `stop()` and at process exit
 * (pods through the container runtime, then the processes, mounts, iptables chains and the bridge);
 * a start after a crashed run cleans up what that run left first.
 */
import { execFile, execFileSync, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KubeConfig } from '@kubernetes/client-node';

export interface Cluster {
  /** True when the cluster was not started here (`EDFS_E2E_KUBECONFIG` / `KUBECONFIG`). */
  external: boolean;
  /** An admin kubeconfig, for kubectl, helm and clients. */
  kubeconfigPath: string;
  /** The API server's URL. */
  server: string;
  /** The node's address (the first node's InternalIP on an external cluster). */
  nodeIP: string;
  /**
   * Where the Ingress controller listens for plain HTTP from this machine: `url` is
   * `http://address:port`. Send the Ingress host in the `Host` header (or resolve it to `address`).
   */
  ingress: { address: string; port: number; url: string };
  /** Images present in the node without pulling, for test workloads (upstream names and tags). */
  images: { pause: string; busybox: string; coredns: string; traefik: string };
  /** A fresh client configuration for the admin kubeconfig. */
  kubeConfig(): KubeConfig;
  /** Runs kubectl with the admin kubeconfig (`input` on stdin); resolves to its stdout. */
  kubectl(args: string[], input?: string): Promise<string>;
  /** Makes a local Docker image (`docker save`) available to the node's container runtime. */
  loadImage(image: string): Promise<void>;
  /**
   * Makes the image of a `docker save`-style archive (the parts scripts make them without a
   * container engine) available to the node: imported once per content here, `kind load
   * image-archive` on a kind cluster, nothing elsewhere (the cluster pulls the upstream name).
   */
  importArchive(archive: string): Promise<void>;
  /** The last lines of every component's log (for failure messages). */
  logs(): string;
  /** Stops everything started for this cluster and cleans up. Idempotent; a no-op when external. */
  stop(): Promise<void>;
}

const CLUSTER_SCRIPT = fileURLToPath(new URL('../../infra/cluster.sh', import.meta.url));
const KUBE_SCRIPT = fileURLToPath(new URL('../../infra/kube.sh', import.meta.url));
/** `cluster.sh up`'s exit status when another live process owns the running cluster. */
const CLUSTER_BUSY_EXIT = 75;
const LOG_TAIL_BYTES = 6_000;
const MAX_BUFFER = 64 * 1024 * 1024;

/** The images `cluster-parts.sh` makes (the same names are pullable by an external cluster). */
const UPSTREAM_IMAGES = {
  pause: 'registry.k8s.io/pause:3.10',
  busybox: 'docker.io/library/busybox:1.35.0',
  coredns: 'registry.k8s.io/coredns/coredns:v1.14.7',
  traefik: 'docker.io/library/traefik:v3.6.12',
};

/**
 * Starts the cluster (or connects to the external one) and resolves once the node is Ready and
 * DNS and the Ingress controller serve. A cold machine first builds the parts: give the caller's
 * `beforeAll` a long timeout.
 */
export async function startCluster(): Promise<Cluster> {
  const external =
    process.env.EDFS_E2E_KUBECONFIG ||
    (process.env.EDFS_E2E_CLUSTER === 'local' ? undefined : process.env.KUBECONFIG);
  return external ? externalCluster(external) : localCluster();
}

// ---------------------------------------------------------------------------------------------

const running = new Set<string>();
process.once('exit', () => {
  // Synchronous: nothing asynchronous runs at exit. The script stops by pid what it started.
  for (const script of running) {
    try {
      execFileSync('bash', [script, 'down'], { stdio: 'ignore', timeout: 120_000 });
    } catch {
      // The next start cleans up whatever is left.
    }
  }
});

async function localCluster(): Promise<Cluster> {
  running.add(CLUSTER_SCRIPT);
  let env: Record<string, string>;
  try {
    env = parseEnv(await runScript(CLUSTER_SCRIPT, ['up', '--owner', String(process.pid)]));
  } catch (error) {
    running.delete(CLUSTER_SCRIPT);
    // Another process's cluster is running: it is theirs to stop, not ours.
    if ((error as { exitCode?: number }).exitCode !== CLUSTER_BUSY_EXIT) {
      await runScript(CLUSTER_SCRIPT, ['down']).catch(() => undefined);
    }
    throw error;
  }
  const need = (key: string): string => {
    const value = env[key];
    if (!value) throw new Error(`${CLUSTER_SCRIPT} up printed no ${key}`);
    return value;
  };
  const kubeconfigPath = need('KUBECONFIG');
  const kubectlBin = need('KUBECTL');
  const logDir = need('LOG_DIR');
  const runDir = need('RUN_DIR');
  const ingressAddress = need('INGRESS_ADDRESS');
  const ingressPort = Number(need('INGRESS_PORT'));
  let stopped = false;

  return {
    external: false,
    kubeconfigPath,
    server: need('SERVER'),
    nodeIP: need('NODE_IP'),
    ingress: { address: ingressAddress, port: ingressPort, url: `http://${ingressAddress}:${ingressPort}` },
    images: {
      pause: need('PAUSE_IMAGE'),
      busybox: need('BUSYBOX_IMAGE'),
      coredns: need('COREDNS_IMAGE'),
      traefik: need('TRAEFIK_IMAGE'),
    },
    kubeConfig: () => kubeConfigFrom(kubeconfigPath),
    kubectl: (args, input) => run(kubectlBin, ['--kubeconfig', kubeconfigPath, ...args], input),
    async loadImage(image) {
      await runScript(CLUSTER_SCRIPT, ['load-image', image]);
    },
    async importArchive(archive) {
      await runScript(CLUSTER_SCRIPT, ['import', archive]);
    },
    // After `stop()` the run's logs are kept next to the run directory.
    logs: () => tailLogs(existsSync(logDir) ? logDir : `${runDir}.last-logs`),
    async stop() {
      if (stopped) return;
      stopped = true;
      await runScript(CLUSTER_SCRIPT, ['down']);
      running.delete(CLUSTER_SCRIPT);
    },
  };
}

async function externalCluster(kubeconfigPath: string): Promise<Cluster> {
  const kubectlBin = await externalKubectl();
  const kubectl = (args: string[], input?: string): Promise<string> =>
    run(kubectlBin, ['--kubeconfig', kubeconfigPath, ...args], input);
  const [server, context, nodeIP] = await Promise.all([
    kubectl(['config', 'view', '--minify', '-o', 'jsonpath={.clusters[0].cluster.server}']),
    kubectl(['config', 'current-context']),
    kubectl(['get', 'nodes', '-o', 'jsonpath={.items[0].status.addresses[?(@.type=="InternalIP")].address}']),
  ]);
  const ingressUrl = new URL(process.env.EDFS_E2E_INGRESS_URL || 'http://127.0.0.1:80');
  const kind = process.env.EDFS_E2E_KIND_CLUSTER || /^kind-(.+)$/.exec(context.trim())?.[1];
  const loadCommand = process.env.EDFS_E2E_LOAD_IMAGE;
  return {
    external: true,
    kubeconfigPath,
    server: server.trim(),
    nodeIP: nodeIP.trim().split(/\s+/)[0] ?? '',
    ingress: {
      address: ingressUrl.hostname,
      port: Number(ingressUrl.port || 80),
      url: ingressUrl.origin,
    },
    images: { ...UPSTREAM_IMAGES },
    kubeConfig: () => kubeConfigFrom(kubeconfigPath),
    kubectl,
    async loadImage(image) {
      if (loadCommand) await run('sh', ['-c', `${loadCommand} "$1"`, 'load-image', image]);
      else if (kind) await run('kind', ['load', 'docker-image', image, '--name', kind]);
    },
    async importArchive(archive) {
      if (kind) await run('kind', ['load', 'image-archive', archive, '--name', kind]);
    },
    logs: () => `(external cluster ${server.trim()}: its logs are not collected here)`,
    async stop() {},
  };
}

/** `EDFS_E2E_KUBECTL`, else `kubectl` on the PATH, else the one `kube.sh` builds. */
async function externalKubectl(): Promise<string> {
  if (process.env.EDFS_E2E_KUBECTL) return process.env.EDFS_E2E_KUBECTL;
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (dir && existsSync(join(dir, 'kubectl'))) return join(dir, 'kubectl');
  }
  const lines = await runScript(KUBE_SCRIPT, ['kubectl']);
  return lines[lines.length - 1]!;
}

function kubeConfigFrom(path: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(path);
  return kc;
}

function parseEnv(lines: string[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of lines) {
    const eq = line.indexOf('=');
    if (eq > 0) env[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return env;
}

function tailLogs(dir: string): string {
  if (!existsSync(dir)) return `(no logs in ${dir})`;
  const parts: string[] = [];
  for (const file of readdirSync(dir).sort()) {
    if (!file.endsWith('.log')) continue;
    let text = '';
    try {
      const whole = readFileSync(join(dir, file), 'utf8');
      text = whole.slice(-LOG_TAIL_BYTES);
    } catch (error) {
      text = String(error);
    }
    parts.push(`--- ${basename(file, '.log')} ---\n${text}`);
  }
  return parts.join('\n');
}

/** Runs `bin args`, with `input` on stdin; resolves to stdout, rejects with stderr. */
function run(bin: string, args: string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(bin, args, { maxBuffer: MAX_BUFFER }, (error, stdout, stderr) => {
      if (error) {
        reject(new Error(`${basename(bin)} ${args.join(' ')}: ${error.message}\n${stderr}`.trim()));
        return;
      }
      resolve(stdout);
    });
    child.stdin?.end(input ?? '');
  });
}

/** Runs a script of `e2e/infra`, its progress on our stderr; resolves to its stdout lines. */
export function runScript(script: string, args: string[]): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString()).slice(-20_000);
      process.stderr.write(chunk);
    });
    child.once('error', reject);
    child.once('close', (code) => {
      if (code === 0) {
        resolve(
          stdout
            .split('\n')
            .map((line) => line.trim())
            .filter(Boolean),
        );
      } else {
        reject(
          Object.assign(new Error(`${basename(script)} ${args.join(' ')} exited with ${code}:\n${stderr}`), {
            exitCode: code,
          }),
        );
      }
    });
  });
}
