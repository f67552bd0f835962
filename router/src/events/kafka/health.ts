/**
 * Whether a Kafka provider's brokers answer, for `status()` and /health/ready. kafkajs has no
 * connection state of its own to watch, so a probe (one cluster-metadata request, no retries)
 * runs every `healthCheckIntervalMs` while the brokers answer, every `reconnectTimeWaitMs` while
 * they do not, and at once when a broker connection errors or is closed by the broker.
 *
 * Invariants: probes never overlap (concurrent callers share one); when a probe succeeds after a
 * failure, the outage is counted (`reconnects`) and reported once (`onReconnect`, `onBack`); no
 * probe is scheduled after `close()`.
 */
import { Kafka, type Admin, type KafkaConfig } from 'kafkajs';
import type { Logger } from 'pino';
import { describeConnectError } from '../provider.js';

export interface HealthOptions {
  brokers: readonly string[];
  logger: Logger | undefined;
  /** Period of the probe while the brokers answer. */
  healthIntervalMs: number;
  /** Period of the probe while they do not. */
  reconnectWaitMs: number;
  /** Bounds one probe (the provider's operation deadline). */
  deadline<T>(promise: Promise<T>, what: string): Promise<T>;
  /** The metric hook (KafkaProviderOptions.onReconnect). */
  onReconnect?: () => void;
  /** The brokers answer again after an outage. */
  onBack(): void;
}

export class BrokerHealth {
  /** Answers "reachable now?": no retries, not even for the connection itself. */
  private readonly kafka: Kafka;
  private admin: Admin | undefined;
  private probing: Promise<boolean> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private up = false;
  private everUp = false;
  private lastProblem: string | undefined;
  private reconnectCount = 0;
  private closed = false;

  constructor(
    client: KafkaConfig,
    private readonly options: HealthOptions,
  ) {
    this.kafka = new Kafka({ ...client, retry: { retries: 0 } });
  }

  /** The last probe got an answer. */
  get reachable(): boolean {
    return this.up;
  }

  /** Some probe got an answer: a failure since then is an outage, not a first connection. */
  get everReached(): boolean {
    return this.everUp;
  }

  /** Why the last probe failed (undefined once one succeeds). */
  get problem(): string | undefined {
    return this.lastProblem;
  }

  /** Outages survived so far: each time the brokers answered again after failing to. */
  get reconnects(): number {
    return this.reconnectCount;
  }

  /** One cluster-metadata round trip without retries: true when the brokers answered. */
  probe(): Promise<boolean> {
    this.probing ??= (async () => {
      clearTimeout(this.timer);
      let ok = false;
      try {
        if (!this.admin) {
          this.admin = this.kafka.admin({ retry: { retries: 0 } });
          await this.admin.connect();
        }
        await this.options.deadline(
          this.admin.describeCluster(),
          'the brokers did not answer a metadata request',
        );
        ok = true;
      } catch (error) {
        const stale = this.admin;
        this.admin = undefined;
        void stale?.disconnect().catch(() => undefined);
        this.lastProblem = describeConnectError(error);
      } finally {
        this.probing = undefined;
      }
      if (!this.closed) this.record(ok);
      return ok;
    })();
    return this.probing;
  }

  /** A broker connection broke or a consumer crashed: probe now, unless already known down. */
  probeSoon(): void {
    if (this.closed || this.probing || !this.everUp || !this.up) return;
    void this.probe();
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    await this.admin?.disconnect().catch(() => undefined);
    this.admin = undefined;
  }

  private record(ok: boolean): void {
    if (ok && !this.up) {
      if (this.everUp) {
        this.reconnectCount++;
        this.options.logger?.info({ reconnects: this.reconnectCount }, 'Kafka brokers reachable again');
        try {
          this.options.onReconnect?.();
        } catch (error) {
          this.options.logger?.error({ err: error }, 'reconnect hook failed');
        }
        this.options.onBack();
      }
      this.up = true;
      this.everUp = true;
      this.lastProblem = undefined;
    } else if (!ok && (this.up || !this.everUp)) {
      if (this.up)
        this.options.logger?.warn(
          { problem: this.lastProblem },
          `lost the Kafka brokers (${this.lastProblem}); check that ${this.options.brokers.join(', ')} run and are reachable`,
        );
      this.up = false;
    }
    clearTimeout(this.timer);
    this.timer = setTimeout(
      () => void this.probe(),
      ok ? this.options.healthIntervalMs : this.options.reconnectWaitMs,
    );
  }
}
