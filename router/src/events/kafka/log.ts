/**
 * kafkajs' own logger, routed into the router's pino logger (kafkajs would otherwise print plain
 * text to the console). kafkajs logs every retry of a lost connection at ERROR, several a second;
 * the provider logs an outage itself, once, with what to check. So kafkajs' lines are demoted:
 * ERROR and WARN become warn (debug while `quiet()`, i.e. during an outage already reported),
 * INFO becomes debug (joins, stops), DEBUG becomes trace (every request).
 *
 * Invariant: the bridge never throws into kafkajs, and asks kafkajs only for what pino would keep.
 */
import { logLevel, type logCreator } from 'kafkajs';
import type { Logger } from 'pino';

/** The kafkajs level to configure, so that kafkajs does not build entries pino drops. */
export function kafkajsLevel(logger: Logger | undefined): logLevel {
  if (!logger) return logLevel.NOTHING;
  if (logger.isLevelEnabled('trace')) return logLevel.DEBUG;
  if (logger.isLevelEnabled('debug')) return logLevel.INFO;
  if (logger.isLevelEnabled('warn')) return logLevel.WARN;
  return logLevel.NOTHING;
}

export function kafkajsLogCreator(
  logger: Logger | undefined,
  quiet: () => boolean = () => false,
): logCreator {
  return () => (entry) => {
    if (!logger) return;
    try {
      const {
        message,
        timestamp: _timestamp,
        logger: _name,
        ...fields
      } = entry.log as {
        message: string;
        timestamp: string;
        logger?: string;
        [key: string]: unknown;
      };
      const line = `kafkajs ${entry.namespace}: ${message}`;
      const data = { kafkajs: entry.namespace, ...fields };
      switch (entry.level) {
        case logLevel.ERROR:
        case logLevel.WARN:
          if (quiet()) logger.debug(data, line);
          else logger.warn(data, line);
          break;
        case logLevel.INFO:
          logger.debug(data, line);
          break;
        default:
          logger.trace(data, line);
      }
    } catch {
      // a log line is never worth breaking the client over
    }
  };
}
