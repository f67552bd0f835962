/**
 * The project's images, built the way a release builds them and run the way a cluster runs them:
 * Dockerfile.router, Dockerfile.operator and examples/Dockerfile from a clean copy of the sources
 * (`git archive HEAD`: what is committed, not the working tree; EDFS_IMAGES_SOURCE=worktree takes
 * the working tree as the next commit would hold it, any other value names a git revision), plus
 * the static nats-server image. Then the chat graph runs entirely in containers: nats-server, the
 * messages and users subgraphs from the examples image, the execution config composed by the
 * operator image's `edfs compose`, and the router image with its config mounted at /etc/edfs.
 *
 * A cold machine makes the base image and builds every layer first (several minutes); a warm one
 * takes seconds (Docker's layer cache). Images are tagged `:checkout`, so the `:dev` images that
 * `e2e/infra/images.sh` builds from the working tree stay as they are. Every container is removed
 * afterwards by name, also when a test fails.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { chmod, cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEMO_MUTATION, DEMO_SUBSCRIPTION } from '@edfs/operator/demo/demo';
import { post, subscribe, wsClient } from '../src/fixtures/clients.js';
import { eventually, eventuallyResolves } from '../src/fixtures/wait.js';
import {
  buildImages,
  containerLogs,
  docker,
  removeContainers,
  runContainer,
  runOnce,
  sourceSnapshot,
  type ProjectImages,
  type SourceSnapshot,
} from '../src/infra/images.js';
import { freePorts } from '../src/infra/nats.js';

// A cold machine runs debootstrap, downloads Node.js and npm, and installs every dependency.
const BUILD_TIMEOUT_MS = 30 * 60_000;
const SOURCE = process.env.EDFS_IMAGES_SOURCE ?? 'HEAD';
const TAG = 'checkout';
const RUN_ID = randomBytes(4).toString('hex');
const containers: string[] = [];

let images: ProjectImages;
let sources: SourceSnapshot;

const containerName = (role: string) => {
  const name = `edfs-images-test-${RUN_ID}-${role}`;
  containers.push(name);
  return name;
};

const seconds = (since: number) => `${((Date.now() - since) / 1000).toFixed(1)} s`;

beforeAll(async () => {
  const started = Date.now();
  sources = await sourceSnapshot(SOURCE);
  process.stderr.write(
    `images.test: sources of ${sources.revision} in ${sources.dir} (${seconds(started)})\n`,
  );
  const building = Date.now();
  images = await buildImages(sources.dir, { tag: TAG });
  process.stderr.write(`images.test: ${Object.values(images).join(', ')} built (${seconds(building)})\n`);
}, BUILD_TIMEOUT_MS);

afterAll(async () => {
  try {
    await removeContainers(containers);
  } finally {
    await sources?.remove();
  }
});

describe('the images', () => {
  it.each(['router', 'operator', 'examples'] as const)('%s runs Node.js 24 as uid 1000', async (which) => {
    const image = images[which];
    const version = await runOnce(image, ['--version'], { entrypoint: 'node' });
    expect(version).toMatchObject({ code: 0, stdout: expect.stringMatching(/^v24\.\d+\.\d+\n$/) });
    const user = await runOnce(image, ['-u'], { entrypoint: 'id' });
    expect(user.stdout.trim()).toBe('1000');
    // Production images: no TypeScript compiler, no test runner.
    const devDeps = await runOnce(
      image,
      ['-e', 'for (const m of ["typescript", "jest"]) require.resolve(m)'],
      {
        entrypoint: 'node',
      },
    );
    expect(devDeps.code).not.toBe(0);
  });

  it('router: edfs-router -c /etc/edfs/router.yaml by default, /bin/sleep for the preStop hook', async () => {
    const config = JSON.parse(
      await docker(['image', 'inspect', '--format', '{{json .Config}}', images.router]),
    ) as {
      Entrypoint: string[];
      Cmd: string[];
      User: string;
    };
    expect(config).toMatchObject({
      Entrypoint: ['edfs-router'],
      Cmd: ['-c', '/etc/edfs/router.yaml'],
      User: '1000:1000',
    });
    expect(await runOnce(images.router, ['0'], { entrypoint: '/bin/sleep' })).toMatchObject({ code: 0 });
    const help = await runOnce(images.router, ['--help']);
    expect(help).toMatchObject({ code: 0, stdout: expect.stringContaining('Usage: edfs-router') });
  });

  it('operator: edfs operator --leader-elect by default; the CLI starts and prints usage', async () => {
    const config = JSON.parse(
      await docker(['image', 'inspect', '--format', '{{json .Config}}', images.operator]),
    ) as {
      Entrypoint: string[];
      Cmd: string[];
      User: string;
    };
    expect(config).toMatchObject({
      Entrypoint: ['edfs'],
      Cmd: ['operator', '--leader-elect'],
      User: '1000:1000',
    });
    const help = await runOnce(images.operator, ['--help']);
    expect(help).toMatchObject({
      code: 0,
      stdout: expect.stringMatching(/Usage: edfs[\s\S]*compose[\s\S]*operator/),
    });
    const operatorHelp = await runOnce(images.operator, ['operator', '--help']);
    expect(operatorHelp).toMatchObject({ code: 0, stdout: expect.stringContaining('--leader-elect') });
  });

  it('nats: a static nats-server in an otherwise empty image', async () => {
    const version = await runOnce(images.nats, ['--version']);
    expect(version.code).toBe(0);
    expect(version.stdout + version.stderr).toMatch(/nats-server: v2\.\d+\.\d+/);
  });
});

describe('the chat graph in containers: nats-server, subgraphs, composed config, router', () => {
  let routerUrl: string;
  let routerName: string;
  let configDir: string;

  beforeAll(async () => {
    const started = Date.now();
    const [natsPort, messagesPort, usersPort, routerPort] = await freePorts(4);
    const natsUrl = `nats://127.0.0.1:${natsPort}`;

    const natsName = containerName('nats');
    await runContainer(images.nats, {
      name: natsName,
      args: ['-a', '127.0.0.1', '-p', String(natsPort), '-js', '-sd', '/data'],
    });
    const usersName = containerName('users');
    await runContainer(images.examples, {
      name: usersName,
      args: ['node', 'examples/chat/subgraphs/users/server.js'],
      env: { PORT: String(usersPort), HOST: '127.0.0.1' },
    });
    // The messages subgraph connects to NATS at start: give nats-server its moment first.
    await eventually(
      async () => (await containerLogs(natsName)).includes('Server is ready'),
      'nats-server ready',
      30_000,
      200,
    );
    const messagesName = containerName('messages');
    await runContainer(images.examples, {
      name: messagesName,
      args: ['node', 'examples/chat/subgraphs/messages/server.js'],
      env: { PORT: String(messagesPort), HOST: '127.0.0.1', NATS_URL: natsUrl },
    });
    for (const [name, port] of [
      [usersName, usersPort],
      [messagesName, messagesPort],
    ] as const) {
      await eventuallyResolves(
        async () => {
          const res = await fetch(`http://127.0.0.1:${port}/health`);
          if (res.status !== 200) throw new Error(`HTTP ${res.status}`);
        },
        `container ${name}`,
        30_000,
      ).catch(async (error: Error) => {
        throw new Error(`${error.message}\nlogs:\n${await containerLogs(name)}`);
      });
    }

    // The execution config, composed by the operator image from the example's graph.yaml with
    // the routing URLs of these containers.
    configDir = await mkdtemp(join(tmpdir(), 'edfs-images-test-'));
    await chmod(configDir, 0o755);
    const graphDir = join(configDir, 'graph');
    await cp(join(sources.dir, 'examples/chat'), graphDir, { recursive: true });
    const graphYaml = await readFile(join(graphDir, 'graph.yaml'), 'utf8');
    const rewritten = graphYaml
      .replace('http://localhost:4001/graphql', `http://127.0.0.1:${messagesPort}/graphql`)
      .replace('http://localhost:4002/graphql', `http://127.0.0.1:${usersPort}/graphql`);
    expect(rewritten).not.toContain('localhost:400');
    await writeFile(join(graphDir, 'graph.yaml'), rewritten);
    const composed = await runOnce(images.operator, ['compose', '-f', '/graph/graph.yaml'], {
      volumes: [`${graphDir}:/graph:ro`],
    });
    if (composed.code !== 0) throw new Error(`edfs compose failed (${composed.code}):\n${composed.stderr}`);

    const routerDir = join(configDir, 'router');
    await mkdir(routerDir, { mode: 0o755 });
    await writeFile(join(routerDir, 'config.json'), composed.stdout);
    await writeFile(
      join(routerDir, 'router.yaml'),
      [
        "version: '1'",
        `listen_addr: 127.0.0.1:${routerPort}`,
        'shutdown_delay: 1s',
        'execution_config:',
        '  file: { path: ./config.json }',
        'events:',
        '  providers:',
        '    nats:',
        '      - id: default',
        `        url: ${natsUrl}`,
        '',
      ].join('\n'),
    );

    routerName = containerName('router');
    await runContainer(images.router, { name: routerName, volumes: [`${routerDir}:/etc/edfs:ro`] });
    routerUrl = `http://127.0.0.1:${routerPort}/graphql`;
    await eventuallyResolves(
      async () => {
        const res = await fetch(`http://127.0.0.1:${routerPort}/health/ready`);
        if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
      },
      'router /health/ready',
      30_000,
    ).catch(async (error: Error) => {
      throw new Error(`${error.message}\nrouter logs:\n${await containerLogs(routerName)}`);
    });
    process.stderr.write(`images.test: the chat graph runs in containers (${seconds(started)})\n`);
  }, 120_000);

  afterAll(async () => {
    if (configDir) await rm(configDir, { recursive: true, force: true });
  });

  it('a query joins both subgraph containers through the router container', async () => {
    const response = await post(routerUrl, '{ messages(roomID: "123") { text user { name } } }');
    expect(response.errors).toBeUndefined();
    expect(response.data.messages.length).toBeGreaterThan(0);
    for (const message of response.data.messages) {
      expect(message).toEqual({ text: expect.any(String), user: { name: expect.any(String) } });
    }
  });

  it('a message sent through the router reaches a subscriber through the nats-server container', async () => {
    const client = wsClient(routerUrl);
    try {
      const stream = subscribe(client, DEMO_SUBSCRIPTION);
      // The router's NATS subscription is in place some moment after the client's: send until
      // the first event arrives (earlier ones are, by design, not delivered).
      const sent: string[] = [];
      await eventually(
        async () => {
          const response = await post(routerUrl, DEMO_MUTATION);
          sent.push(response.data.sendMessage.id);
          return stream.results.length > 0 || stream.errors.length > 0;
        },
        'a subscription event',
        20_000,
        250,
      );
      const [event] = await stream.next(1);
      expect(event).toEqual({
        data: {
          messageAdded: {
            id: expect.any(String),
            text: 'Hello',
            createdAt: expect.any(String),
            user: { name: 'Alice' },
          },
        },
      });
      expect(sent).toContain((event!.data as { messageAdded: { id: string } }).messageAdded.id);
      stream.stop();
    } finally {
      await client.dispose();
    }
  });

  it('SIGTERM (docker stop): the router drains and exits 0', async () => {
    await docker(['stop', '--time', '30', routerName], 60_000);
    const state = JSON.parse(await docker(['inspect', '--format', '{{json .State}}', routerName])) as {
      ExitCode: number;
      OOMKilled: boolean;
    };
    expect(state).toMatchObject({ ExitCode: 0, OOMKilled: false });
  });
});
