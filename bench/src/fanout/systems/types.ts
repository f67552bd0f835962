/** What the bench needs from each server under test, whatever it is built on. */
export interface SystemOptions {
  natsUrl: string;
  subgraphUrl: string;
  /** The composed execution config (EDFS router only). */
  configJson: string;
  /** The same with the subscription read from the JetStream stream (resumable, EDFS router only). */
  streamConfigJson: string;
  /** The delivery frame with `{{ID}}` for the event id (bare ws only). */
  frameTemplate: string;
  subject: string;
}

export interface RunningSystem {
  /** Where clients connect (ws://...). */
  url: string;
  /** Client subscriptions the server holds right now. */
  subscriptions(): Promise<number> | number;
  /** Server-side counters worth reporting (dropped messages, fan-out time, ...). */
  details?(): Promise<Record<string, number>> | Record<string, number>;
  close(): Promise<void>;
}

export type SystemName = 'edfs' | 'edfs-cursors' | 'edfs-jetstream' | 'naive' | 'bare';
