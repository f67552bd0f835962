/**
 * A real Apache Kafka broker for tests (KRaft, one node): jars resolved once per machine by
 * `e2e/infra/kafka.sh` (cached outside the repository), one broker started per test file on free
 * 127.0.0.1 ports with a fresh log directory.
 *
 * Invariants: every broker this module starts is stopped by pid, by `stop()` or at process exit;
 * `startKafka` resolves only once the broker answers a kafkajs admin `listTopics`; `restart()`
 * keeps the ports and the log directory (topics and offsets survive), so clients see an outage,
 * not a new cluster; a start that loses a port to another process retries on fresh ones.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Kafka, logLevel } from 'kafkajs';
import { freePorts } from './nats.js';

export interface KafkaBrokerOptions {
  /**
   * Adds a SASL_PLAINTEXT listener where this user exists for PLAIN, SCRAM-SHA-256 and
   * SCRAM-SHA-512 (SCRAM users are bootstrap metadata, so such a start formats its log directory
   * with a JVM run: about a second slower).
   */
  sasl?: { username: string; password: string };
  /** Adds an SSL listener with a fresh self-signed certificate for 127.0.0.1 / localhost. */
  tls?: boolean;
  /**
   * Broker settings on top of the test defaults, e.g. `{ 'group.initial.rebalance.delay.ms': '3000' }`
   * for the production default the tests otherwise turn off.
   */
  properties?: Record<string, string>;
}

export interface KafkaBroker {
  /** `127.0.0.1:PORT` of the PLAINTEXT listener. */
  brokers: string[];
  /** The SASL_PLAINTEXT listener, when `sasl` was asked for. */
  saslBrokers?: string[];
  /** The SSL listener, when `tls` was asked for, and the PEM certificate that signs it. */
  tlsBrokers?: string[];
  tlsCa?: string;
  /** The broker's working directory (server.properties, logs/). Removed by `stop()`. */
  dir: string;
  /** Stops the broker and removes its log directory. Idempotent. */
  stop(): Promise<void>;
  /**
   * Stops the broker and starts it again on the same ports with the same log directory; resolves
   * once it answers again. `hard`: SIGKILL instead of a clean shutdown (a crash).
   */
  restart(options?: { hard?: boolean; downMs?: number }): Promise<void>;
  /** The pid of the broker's JVM (changes with every restart). */
  pid(): number;
}

const SCRIPT = fileURLToPath(new URL('../../infra/kafka.sh', import.meta.url));
const READY_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 15_000;
const START_ATTEMPTS = 4;

let home: Promise<string> | undefined;

/** KAFKA_HOME of the cached broker, installing it on first use (once per process). */
export function kafkaHome(): Promise<string> {
  home ??= new Promise<string>((resolve, reject) => {
    const child = execFile(
      'bash',
      [SCRIPT, 'install'],
      { maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => {
        if (error) {
          reject(new Error(`${SCRIPT} failed (${error.message}):\n${stderr}`));
          return;
        }
        const path = stdout.trim().split('\n').pop()?.trim();
        if (!path) reject(new Error(`${SCRIPT} printed no KAFKA_HOME:\n${stderr}`));
        else resolve(path);
      },
    );
    // Progress of a first install (half a minute) shows up while the tests wait.
    child.stderr?.on('data', (chunk: Buffer) => process.stderr.write(chunk));
  });
  home.catch(() => {
    home = undefined;
  });
  return home;
}

interface Ports {
  plain: number;
  controller: number;
  sasl?: number;
  tls?: number;
}

export async function startKafka(options: KafkaBrokerOptions = {}): Promise<KafkaBroker> {
  await kafkaHome();
  const dir = await mkdtemp(join(tmpdir(), 'edfs-kafka-'));
  const scram = options.sasl
    ? ['SCRAM-SHA-256', 'SCRAM-SHA-512'].flatMap((mechanism) => [
        '--scram',
        `${mechanism}=[name=${options.sasl!.username},password=${options.sasl!.password}]`,
      ])
    : [];
  const tls = options.tls ? await selfSignedCertificate(dir) : undefined;

  let ports: Ports | undefined;
  let running: Running | undefined;
  let lastError: Error | undefined;
  for (let attempt = 0; attempt < START_ATTEMPTS && !running; attempt++) {
    const [plain, controller, sasl, tlsPort] = await freePorts(4);
    ports = {
      plain: plain!,
      controller: controller!,
      ...(options.sasl ? { sasl: sasl! } : {}),
      ...(tls ? { tls: tlsPort! } : {}),
    };
    await writeFile(join(dir, 'server.properties'), serverProperties(dir, ports, options, tls?.keystore));
    try {
      running = await launch(dir, ports, scram);
    } catch (error) {
      lastError = error as Error;
      // A failed first start may have formatted the log directory with the old ports: harmless
      // (the ports are not stored there), but start clean anyway.
      await rm(join(dir, 'logs'), { recursive: true, force: true });
      if (!(error instanceof PortInUseError)) break;
    }
  }
  if (!running || !ports) {
    await rm(dir, { recursive: true, force: true });
    throw lastError ?? new Error('the Kafka broker did not start');
  }

  const fixedPorts = ports;
  let stopped = false;
  return {
    brokers: [`127.0.0.1:${fixedPorts.plain}`],
    ...(fixedPorts.sasl ? { saslBrokers: [`127.0.0.1:${fixedPorts.sasl}`] } : {}),
    ...(fixedPorts.tls && tls ? { tlsBrokers: [`127.0.0.1:${fixedPorts.tls}`], tlsCa: tls.certificate } : {}),
    dir,
    pid: () => running?.pid ?? 0,
    async stop() {
      if (stopped) return;
      stopped = true;
      await running?.stop();
      running = undefined;
      await rm(dir, { recursive: true, force: true });
    },
    async restart({ hard = false, downMs = 0 } = {}) {
      if (stopped) throw new Error('the Kafka broker was stopped; start a new one');
      await running?.stop(hard);
      running = undefined;
      if (downMs > 0) await new Promise((resolve) => setTimeout(resolve, downMs));
      // The ports were ours a moment ago; retry briefly in case the kernel still holds one.
      for (let attempt = 0; ; attempt++) {
        try {
          running = await launch(dir, fixedPorts, []);
          return;
        } catch (error) {
          if (!(error instanceof PortInUseError) || attempt >= 20) throw error;
          await new Promise((resolve) => setTimeout(resolve, 250));
        }
      }
    },
  };
}

// ---------------------------------------------------------------------------------------------

function serverProperties(
  dir: string,
  ports: Ports,
  options: KafkaBrokerOptions,
  keystore: string | undefined,
): string {
  const listeners = [`PLAINTEXT://127.0.0.1:${ports.plain}`];
  const map = ['CONTROLLER:PLAINTEXT', 'PLAINTEXT:PLAINTEXT'];
  const extra: string[] = [];
  if (ports.sasl && options.sasl) {
    listeners.push(`SASL_PLAINTEXT://127.0.0.1:${ports.sasl}`);
    map.push('SASL_PLAINTEXT:SASL_PLAINTEXT');
    const { username, password } = options.sasl;
    extra.push(
      'sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512',
      `listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_${username}="${password}";`,
      'listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;',
      'listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;',
    );
  }
  if (ports.tls && keystore) {
    listeners.push(`SSL://127.0.0.1:${ports.tls}`);
    map.push('SSL:SSL');
    extra.push(
      'listener.name.ssl.ssl.keystore.type=PEM',
      `listener.name.ssl.ssl.keystore.location=${keystore}`,
    );
  }
  return [
    'process.roles=broker,controller',
    'node.id=1',
    `controller.quorum.voters=1@127.0.0.1:${ports.controller}`,
    `listeners=${[...listeners, `CONTROLLER://127.0.0.1:${ports.controller}`].join(',')}`,
    `advertised.listeners=${listeners.join(',')}`,
    'controller.listener.names=CONTROLLER',
    'inter.broker.listener.name=PLAINTEXT',
    `listener.security.protocol.map=${map.join(',')}`,
    `log.dirs=${join(dir, 'logs')}`,
    'num.partitions=1',
    'offsets.topic.replication.factor=1',
    'offsets.topic.num.partitions=1',
    'transaction.state.log.replication.factor=1',
    'transaction.state.log.min.isr=1',
    // Tests create groups all the time: no 3 s wait for more members to join an empty group.
    'group.initial.rebalance.delay.ms=0',
    // Nothing here needs compaction; the cleaner thread costs about a second of start-up.
    'log.cleaner.enable=false',
    // After a crash (SIGKILL) the restarted node cannot register until its old registration
    // expires: keep that short, so a hard restart takes seconds, not ten.
    'broker.session.timeout.ms=2000',
    'broker.heartbeat.interval.ms=500',
    'auto.include.jmx.reporter=false',
    ...extra,
    ...Object.entries(options.properties ?? {}).map(([key, value]) => `${key}=${value}`),
    '',
  ].join('\n');
}

async function selfSignedCertificate(dir: string): Promise<{ certificate: string; keystore: string }> {
  const key = join(dir, 'tls-key.pem');
  const cert = join(dir, 'tls-cert.pem');
  await promisify(execFile)('openssl', [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    key,
    '-out',
    cert,
    '-days',
    '2',
    '-subj',
    '/CN=localhost',
    '-addext',
    'subjectAltName=IP:127.0.0.1,DNS:localhost',
  ]);
  const certificate = await readFile(cert, 'utf8');
  const keystore = join(dir, 'tls-keystore.pem');
  await writeFile(keystore, `${await readFile(key, 'utf8')}${certificate}`);
  return { certificate, keystore };
}

class PortInUseError extends Error {}

interface Running {
  pid: number;
  stop(hard?: boolean): Promise<void>;
}

const children = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

async function launch(dir: string, ports: Ports, scram: string[]): Promise<Running> {
  // kafka.sh `exec`s the JVM: this child's pid is the broker's.
  const child = spawn('bash', [SCRIPT, 'run', dir, ...scram], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let log = '';
  const append = (chunk: Buffer) => {
    log = (log + chunk.toString()).slice(-20_000);
  };
  child.stdout!.on('data', append);
  child.stderr!.on('data', append);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  void exited.then(() => children.delete(child));

  let exitedEarly: Error | undefined;
  void exited.then((code) => {
    const message = `Kafka broker in ${dir} exited with code ${code}:\n${log}`;
    exitedEarly = /Address already in use|BindException/i.test(log)
      ? new PortInUseError(message)
      : new Error(message);
  });

  const stop = async (hard = false): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill(hard ? 'SIGKILL' : 'SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
    await exited;
    clearTimeout(timer);
  };

  try {
    await waitUntilAnswering(
      `127.0.0.1:${ports.plain}`,
      () => exitedEarly,
      () => log,
    );
  } catch (error) {
    await stop(true);
    throw error;
  }
  return { pid: child.pid ?? 0, stop };
}

/** Polls `listTopics` until the broker answers (a started JVM is not yet a serving broker). */
async function waitUntilAnswering(
  broker: string,
  failed: () => Error | undefined,
  log: () => string,
): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  const kafka = new Kafka({
    clientId: 'edfs-test-readiness',
    brokers: [broker],
    connectionTimeout: 500,
    requestTimeout: 2_000,
    retry: { retries: 0 },
    logLevel: logLevel.NOTHING,
  });
  for (;;) {
    const error = failed();
    if (error) throw error;
    if (Date.now() > deadline)
      throw new Error(`Kafka broker ${broker} did not answer within ${READY_TIMEOUT_MS} ms:\n${log()}`);
    const admin = kafka.admin();
    try {
      await admin.connect();
      await admin.listTopics();
      return;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 100));
    } finally {
      await admin.disconnect().catch(() => undefined);
    }
  }
}
