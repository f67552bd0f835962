/**
 * What the GitOps engines make of our objects, from their real evaluators rather than a reading of
 * their docs: `e2e/infra/gitops-health.sh` builds a small Go tool (cached outside the repository,
 * once per version of its sources) that runs an Argo CD health.lua on gopher-lua as Argo CD does
 * and computes Flux's kstatus (sigs.k8s.io/cli-utils) for the same object. Also here: the
 * version-pinned kubectl of `kube.sh`, for `kubectl kustomize` and `kubectl patch` as the docs
 * tell users to run them.
 *
 * Invariant: objects go to the tool as the API server returned them (JSON, integers as integers),
 * so a verdict is the one Argo CD and Flux would reach on the same object.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runScript } from './cluster.js';

/** One engine's verdict: Argo CD's {status, message} or kstatus' {status, message}, or why none. */
export interface Verdict {
  status?: string;
  message?: string;
  error?: string;
}

export interface HealthVerdicts {
  argocd: Verdict;
  kstatus: Verdict;
}

const HEALTH_SCRIPT = fileURLToPath(new URL('../../infra/gitops-health.sh', import.meta.url));
const KUBE_SCRIPT = fileURLToPath(new URL('../../infra/kube.sh', import.meta.url));

let tool: Promise<string> | undefined;
let kubectl: Promise<string> | undefined;

/** Path of the gitops-health binary, building it on first use (a minute or two cold). */
export function gitopsHealthBinary(): Promise<string> {
  tool ??= runScript(HEALTH_SCRIPT, []).then((lines) => lines[lines.length - 1]!);
  tool.catch(() => {
    tool = undefined;
  });
  return tool;
}

/** Path of kube.sh's kubectl, building it on first use (minutes cold; reuses the apiserver build). */
function kubectlBinary(): Promise<string> {
  kubectl ??= runScript(KUBE_SCRIPT, ['kubectl']).then((lines) => lines[lines.length - 1]!);
  kubectl.catch(() => {
    kubectl = undefined;
  });
  return kubectl;
}

/**
 * Both verdicts for each object, in order, with the health scripts of the ConfigMap argocd-cm in
 * `argocdCm` (a YAML file, as installed).
 */
export async function healthOf(argocdCm: string, objects: object[]): Promise<HealthVerdicts[]> {
  const out = await run(
    await gitopsHealthBinary(),
    ['eval', '--argocd-cm', argocdCm],
    JSON.stringify(objects),
  );
  return JSON.parse(out) as HealthVerdicts[];
}

/**
 * Runs every `<group>/<Kind>/health_test.yaml` under `dir` as Argo CD's own test of its
 * resource_customizations does; resolves to the tool's report, rejects with it on a mismatch.
 */
export async function runHealthTests(dir: string): Promise<string> {
  return run(await gitopsHealthBinary(), ['test', dir]);
}

/**
 * `kubectl kustomize` of a kustomization that takes the ConfigMap `argocdCm` (standing in for Argo
 * CD's install manifest) and the Kustomize component in `componentDir`; resolves to the output.
 */
export async function kustomizeArgocdCm(argocdCm: object, componentDir: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'edfs-kustomize-'));
  try {
    await writeFile(join(dir, 'argocd-cm.yaml'), JSON.stringify(argocdCm));
    const kustomization = {
      apiVersion: 'kustomize.config.k8s.io/v1beta1',
      kind: 'Kustomization',
      namespace: 'argocd',
      resources: ['argocd-cm.yaml'],
      // kustomize takes components by relative path only.
      components: [relative(dir, componentDir)],
    };
    await writeFile(join(dir, 'kustomization.yaml'), JSON.stringify(kustomization));
    return await run(await kubectlBinary(), ['kustomize', dir]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Runs kube.sh's kubectl with `args`; resolves to its stdout. */
export async function runKubectl(args: string[]): Promise<string> {
  return run(await kubectlBinary(), args);
}

/** Runs `bin args` with `input` on stdin; resolves to stdout, rejects with stdout and stderr. */
function run(bin: string, args: string[], input = ''): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(bin, args, { maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${bin} ${args.join(' ')}: ${error.message}\n${stdout}${stderr}`));
      else resolve(stdout);
    });
    child.stdin?.end(input);
  });
}
