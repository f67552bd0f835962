/**
 * Tells when the execution config file has new content. Kubernetes updates a ConfigMap volume by
 * swapping a symlink (`..data`) in the file's directory, which a watch on the file itself never
 * sees; editors and `edfs compose -o` rewrite the file in place or rename over it. So the
 * directory is watched (fast), the path is also polled by stat (covers network filesystems and
 * missed events), and a change is reported only when the content's hash differs from the last one
 * reported: touching or re-writing identical bytes reloads nothing.
 */
import { createHash } from 'node:crypto';
import { watch, watchFile, unwatchFile, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname } from 'node:path';

export interface ConfigWatcher {
  close(): void;
}

export interface WatchOptions {
  /** Quiet time after the last file system event before reading. Default 100 ms. */
  debounceMs?: number;
  /** stat() polling interval. Default 1000 ms. */
  pollMs?: number;
}

export function contentHash(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/**
 * Calls `onChange(text)` whenever the file at `path` holds content other than `initialHash`'s (or
 * the last content reported). Read errors (a swap in progress, a missing file) are retried on the
 * next event or poll, never reported as content.
 */
export function watchExecutionConfig(
  path: string,
  initialHash: string,
  onChange: (text: string) => void,
  options: WatchOptions = {},
): ConfigWatcher {
  let lastHash = initialHash;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  let reading = false;
  let again = false;

  const check = async (): Promise<void> => {
    if (closed) return;
    if (reading) {
      again = true;
      return;
    }
    reading = true;
    try {
      const text = await readFile(path, 'utf8');
      const hash = contentHash(text);
      if (!closed && hash !== lastHash) {
        lastHash = hash;
        onChange(text);
      }
    } catch {
      // Mid-swap or deleted: the next event or poll looks again.
    } finally {
      reading = false;
      if (again) {
        again = false;
        void check();
      }
    }
  };
  const schedule = () => {
    clearTimeout(timer);
    timer = setTimeout(() => void check(), options.debounceMs ?? 100);
  };

  let dirWatcher: FSWatcher | undefined;
  try {
    // Any entry may be part of the symlink chain (`..data`, `..2024_...`): every event checks.
    dirWatcher = watch(dirname(path), { persistent: false }, schedule);
    dirWatcher.on('error', () => undefined);
  } catch {
    dirWatcher = undefined;
  }
  const poll = () => schedule();
  watchFile(path, { interval: options.pollMs ?? 1000, persistent: false }, poll);

  return {
    close() {
      closed = true;
      clearTimeout(timer);
      dirWatcher?.close();
      unwatchFile(path, poll);
    },
  };
}
