/**
 * The project's container images for tests: built by `e2e/infra/images.sh` (which also makes sure a
 * Docker engine answers and, on machines that cannot pull, makes the `node:24-slim` base image),
 * plus the few `docker` calls the suites need to run them.
 *
 * Why a copy of the sources: an image must build from what a clone of the repository holds, not
 * from a working tree with installs, builds and stray files in it. `sourceSnapshot()` exports a
 * commit (`git archive`, HEAD by default) or the working tree as the next commit would hold it
 * (tracked files plus untracked ones git does not ignore) into a temporary directory.
 *
 * Invariants: containers started through `runContainer` are named by the caller, so a test removes
 * exactly its own with `removeContainers`; nothing here removes images or stops the engine.
 * Progress of builds (minutes on a cold machine) goes to stderr while the tests wait.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface ProjectImages {
  /** Dockerfile.router: `edfs-router -c /etc/edfs/router.yaml` as uid 1000. */
  router: string;
  /** Dockerfile.operator: `edfs operator --leader-elect` as uid 1000. */
  operator: string;
  /** examples/Dockerfile: the example subgraphs; the command names the server to run. */
  examples: string;
  /** A static nats-server (entrypoint), from `e2e/infra/nats-image.sh`. */
  nats: string;
}

export interface BuildOptions {
  /** Tag of the four images (`EDFS_IMAGE_TAG`); default `dev`. */
  tag?: string;
}

export interface SourceSnapshot {
  /** The directory holding the sources (readable by every user, for bind mounts). */
  dir: string;
  /** What it holds: the commit id, or `worktree`. */
  revision: string;
  /** Removes the directory. Idempotent. */
  remove(): Promise<void>;
}

export interface RunOptions {
  /** Container name (required: it is how the test removes the container). */
  name: string;
  /** Arguments after the image (the command, or the entrypoint's arguments). */
  args?: string[];
  env?: Record<string, string>;
  /** Bind mounts as `hostPath:containerPath[:ro]`. */
  volumes?: string[];
  entrypoint?: string;
  /** Network mode; default `host` (the engine of `docker.sh` has no bridge). */
  network?: string;
}

const IMAGES_SCRIPT = fileURLToPath(new URL('../../infra/images.sh', import.meta.url));
const DOCKER_SCRIPT = fileURLToPath(new URL('../../infra/docker.sh', import.meta.url));
const REPO_ROOT = fileURLToPath(new URL('../../..', import.meta.url));

const builds = new Map<string, Promise<ProjectImages>>();
let engine: Promise<void> | undefined;

/**
 * Builds the images from `contextDir` (default: this repository's working tree) and returns their
 * names. Cold: Debian, Node.js and every dependency once, several minutes; warm: seconds (Docker's
 * layer cache). Give the caller's `beforeAll` a long timeout.
 */
export function buildImages(
  contextDir: string = REPO_ROOT,
  options: BuildOptions = {},
): Promise<ProjectImages> {
  const tag = options.tag ?? 'dev';
  const key = `${contextDir}\0${tag}`;
  let build = builds.get(key);
  if (!build) {
    build = runScript(IMAGES_SCRIPT, [contextDir], { EDFS_IMAGE_TAG: tag }).then((lines) => {
      const [router, operator, examples, nats] = lines.slice(-4);
      if (!router || !operator || !examples || !nats)
        throw new Error(`${IMAGES_SCRIPT} printed too few image names: ${lines.join(' ')}`);
      return { router, operator, examples, nats };
    });
    builds.set(key, build);
    build.catch(() => builds.delete(key));
  }
  return build;
}

/** Makes sure a Docker engine answers (starts one as root when none does; see docker.sh). */
export function ensureDocker(): Promise<void> {
  engine ??= runScript(DOCKER_SCRIPT, [], {}, { allowEmpty: true }).then(() => undefined);
  engine.catch(() => {
    engine = undefined;
  });
  return engine;
}

/**
 * Exports the sources into a new temporary directory: `revision` is a git revision (default
 * `HEAD`: what is committed), or `worktree` for the working tree as the next commit would hold it.
 */
export async function sourceSnapshot(revision = 'HEAD', repo: string = REPO_ROOT): Promise<SourceSnapshot> {
  const dir = await mkdtemp(join(tmpdir(), 'edfs-image-sources-'));
  const remove = () => rm(dir, { recursive: true, force: true });
  try {
    let resolved = 'worktree';
    if (revision === 'worktree') {
      const listed = await run('git', [
        '-C',
        repo,
        'ls-files',
        '-z',
        '--cached',
        '--others',
        '--exclude-standard',
      ]);
      // Tracked files deleted in the working tree are listed too; the next commit would not hold them.
      const files = listed.split('\0').filter((file) => file && existsSync(join(repo, file)));
      await pipe(
        ['tar', '-C', repo, '--null', '-T', '-', '-cf', '-'],
        ['tar', '-C', dir, '-xf', '-'],
        files.join('\0'),
      );
    } else {
      resolved = (await run('git', ['-C', repo, 'rev-parse', '--verify', `${revision}^{commit}`])).trim();
      await pipe(['git', '-C', repo, 'archive', '--format=tar', resolved], ['tar', '-C', dir, '-xf', '-']);
    }
    await chmod(dir, 0o755);
    return { dir, revision: resolved, remove };
  } catch (error) {
    await remove();
    throw error;
  }
}

/** Runs `docker ARGS...` and resolves with its stdout; rejects with its stderr on failure. */
export function docker(args: string[], timeoutMs = 120_000): Promise<string> {
  return run('docker', args, timeoutMs);
}

/** Starts a detached container (`docker run -d`); resolves with its id. */
export async function runContainer(image: string, options: RunOptions): Promise<string> {
  const args = ['run', '-d', '--name', options.name, '--network', options.network ?? 'host'];
  for (const [name, value] of Object.entries(options.env ?? {})) args.push('-e', `${name}=${value}`);
  for (const volume of options.volumes ?? []) args.push('-v', volume);
  if (options.entrypoint !== undefined) args.push('--entrypoint', options.entrypoint);
  args.push(image, ...(options.args ?? []));
  return (await docker(args)).trim();
}

/** `docker run --rm` to completion; resolves with exit code and output (stdout and stderr apart). */
export function runOnce(
  image: string,
  args: string[],
  options: { entrypoint?: string; volumes?: string[]; timeoutMs?: number } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const dockerArgs = ['run', '--rm', '--network', 'host'];
  for (const volume of options.volumes ?? []) dockerArgs.push('-v', volume);
  if (options.entrypoint !== undefined) dockerArgs.push('--entrypoint', options.entrypoint);
  dockerArgs.push(image, ...args);
  return new Promise((resolve, reject) => {
    execFile(
      'docker',
      dockerArgs,
      { maxBuffer: 64 * 1024 * 1024, timeout: options.timeoutMs ?? 60_000 },
      (error, stdout, stderr) => {
        if (error && typeof error.code !== 'number')
          reject(new Error(`docker ${dockerArgs.join(' ')}: ${error.message}`));
        else resolve({ code: error ? (error.code as number) : 0, stdout, stderr });
      },
    );
  });
}

/** The container's output so far (stdout and stderr), its last `tail` lines. */
export async function containerLogs(name: string, tail = 200): Promise<string> {
  return new Promise((resolve) => {
    execFile(
      'docker',
      ['logs', '--tail', String(tail), name],
      { maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => resolve(error ? `(no logs of ${name}: ${error.message})` : stdout + stderr),
    );
  });
}

/** Removes the named containers (running or not); names that do not exist are ignored. */
export async function removeContainers(names: string[]): Promise<void> {
  const unique = [...new Set(names)];
  if (unique.length === 0) return;
  await run('docker', ['rm', '-f', '-v', ...unique]).catch((error: Error) => {
    if (!/No such container/i.test(error.message)) throw error;
  });
}

// ---------------------------------------------------------------------------------------------

function run(command: string, args: string[], timeoutMs = 120_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { maxBuffer: 64 * 1024 * 1024, timeout: timeoutMs }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${command} ${args.join(' ')} failed (${error.message}):\n${stderr}`));
      else resolve(stdout);
    });
  });
}

/** `from | to`, with `input` on the first command's stdin; rejects when either fails. */
function pipe(from: string[], to: string[], input?: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const producer = spawn(from[0]!, from.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
    const consumer = spawn(to[0]!, to.slice(1), { stdio: ['pipe', 'ignore', 'pipe'] });
    let errors = '';
    producer.stderr.on('data', (chunk: Buffer) => (errors += chunk.toString()));
    consumer.stderr.on('data', (chunk: Buffer) => (errors += chunk.toString()));
    producer.stdout.pipe(consumer.stdin);
    producer.stdin.end(input ?? '');
    const exit = (child: ReturnType<typeof spawn>) =>
      new Promise<number | null>((done, fail) => {
        child.once('error', fail);
        child.once('close', (code) => done(code));
      });
    Promise.all([exit(producer), exit(consumer)]).then(([a, b]) => {
      if (a === 0 && b === 0) resolve();
      else reject(new Error(`${from.join(' ')} | ${to.join(' ')} failed (${a}, ${b}):\n${errors}`));
    }, reject);
  });
}

function runScript(
  script: string,
  args: string[],
  env: Record<string, string>,
  { allowEmpty = false }: { allowEmpty?: boolean } = {},
): Promise<string[]> {
  return new Promise<string[]>((resolve, reject) => {
    const child = execFile(
      'bash',
      [script, ...args],
      { maxBuffer: 64 * 1024 * 1024, env: { ...process.env, ...env } },
      (error, stdout, stderr) => {
        if (error) {
          reject(new Error(`${script} failed (${error.message}):\n${stderr.slice(-20_000)}`));
          return;
        }
        const lines = stdout
          .split('\n')
          .map((line) => line.trim())
          .filter(Boolean);
        if (lines.length === 0 && !allowEmpty) reject(new Error(`${script} printed nothing:\n${stderr}`));
        else resolve(lines);
      },
    );
    // Progress of a first build (minutes) shows up while the tests wait.
    child.stderr?.on('data', (chunk: Buffer) => process.stderr.write(chunk));
  });
}
