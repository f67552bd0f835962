/**
 * The `events` section: the bounds of rendered subjects and the broker providers (NATS, Kafka),
 * checked and turned into what events/providers.ts connects with. File paths come out absolute.
 *
 * Invariants: provider ids are unique across brokers (the schema's directives name a provider by
 * id alone), and every NATS provider's control line leaves room for the longest subject allowed.
 */
import { DEFAULTS } from './defaults.js';
import type { Issues } from './issues.js';
import type {
  KafkaProviderConfig,
  KafkaProviderFile,
  NatsAuthentication,
  NatsProviderConfig,
  NatsProviderFile,
  RouterConfig,
  RouterConfigFile,
} from './types.js';
import { parseHostPort } from './units.js';

type EventsFile = RouterConfigFile['events'];
type Subjects = RouterConfig['events']['subjects'];

export function subjectsConfig(file: EventsFile, issues: Issues): Subjects {
  const subjectsFile = file?.subjects ?? {};
  return {
    maxLength: issues.atLeastOne(
      'events.subjects.max_length',
      subjectsFile.max_length ?? DEFAULTS.subjects.maxLength,
    ),
    maxTokens: issues.atLeastOne(
      'events.subjects.max_tokens',
      subjectsFile.max_tokens ?? DEFAULTS.subjects.maxTokens,
    ),
  };
}

export function providersConfig(
  file: EventsFile,
  subjects: Subjects,
  filePath: (p: string) => string,
  issues: Issues,
): RouterConfig['events']['providers'] {
  const nats = (file?.providers?.nats ?? []).map((p, i) =>
    natsProvider(p, `events.providers.nats[${i}]`, filePath, issues),
  );
  nats.forEach((p, i) => {
    const line = p.maxControlLine ?? DEFAULTS.natsMaxControlLine;
    if (subjects.maxLength + CONTROL_LINE_HEADROOM > line)
      issues.push({
        path:
          p.maxControlLine === undefined
            ? 'events.subjects.max_length'
            : `events.providers.nats[${i}].max_control_line`,
        message: `events.subjects.max_length (${subjects.maxLength}) leaves too little of provider "${p.id}"'s max_control_line (${line} bytes) for the rest of a NATS protocol line; keep max_length at most max_control_line - ${CONTROL_LINE_HEADROOM}`,
      });
  });
  const kafka = (file?.providers?.kafka ?? []).map((p, i) =>
    kafkaProvider(p, `events.providers.kafka[${i}]`, filePath, issues),
  );
  const ids = new Map<string, string>();
  for (const [kind, list] of [
    ['nats', nats],
    ['kafka', kafka],
  ] as const)
    list.forEach((p, i) => {
      const path = `events.providers.${kind}[${i}].id`;
      const first = ids.get(p.id);
      if (first)
        issues.push({
          path,
          message: `duplicate provider id ${JSON.stringify(p.id)} (already used by ${first})`,
        });
      else ids.set(p.id, path.slice(0, -'.id'.length));
    });
  return { nats, kafka };
}

/** Bytes of a NATS protocol line kept for everything but the subject (see events/subjects.ts). */
const CONTROL_LINE_HEADROOM = 256;

const NATS_URL = /^(?:(?:nats|tls|ws|wss):\/\/[^\s,]+|memory:\/\/[^\s,]*|[^\s,:/]+:\d+)$/;

function natsProvider(
  p: NatsProviderFile,
  at: string,
  filePath: (p: string) => string,
  issues: Issues,
): NatsProviderConfig {
  if (!p.url.split(',').every((u) => NATS_URL.test(u.trim())))
    issues.push({
      path: `${at}.url`,
      message: `must be a NATS server URL such as "nats://localhost:4222" (or "memory://" for the in-process broker); got ${JSON.stringify(p.url)}`,
    });
  const out: NatsProviderConfig = { id: p.id, url: p.url };
  const a = p.authentication;
  let auth: NatsAuthentication | undefined;
  if (a?.token !== undefined) auth = { kind: 'token', token: a.token };
  else if (a?.user_info) auth = { kind: 'user_info', ...a.user_info };
  else if (a?.creds_file !== undefined) auth = { kind: 'creds_file', path: filePath(a.creds_file) };
  else if (a?.nkey_seed !== undefined) auth = { kind: 'nkey', seed: a.nkey_seed };
  if (auth) out.authentication = auth;
  if (p.max_control_line !== undefined) {
    if (p.max_control_line < 1)
      issues.push({
        path: `${at}.max_control_line`,
        message: `must be at least 1 (got ${p.max_control_line})`,
      });
    out.maxControlLine = p.max_control_line;
  }
  const tls = p.tls;
  if (tls && (tls.enabled ?? true)) {
    if ((tls.cert_file === undefined) !== (tls.key_file === undefined))
      issues.push({
        path: `${at}.tls`,
        message: 'cert_file and key_file go together (a client certificate needs its key)',
      });
    out.tls = {};
    if (tls.cert_file !== undefined) out.tls.certFile = filePath(tls.cert_file);
    if (tls.key_file !== undefined) out.tls.keyFile = filePath(tls.key_file);
    if (tls.ca_file !== undefined) out.tls.caFile = filePath(tls.ca_file);
  }
  return out;
}

function kafkaProvider(
  p: KafkaProviderFile,
  at: string,
  filePath: (p: string) => string,
  issues: Issues,
): KafkaProviderConfig {
  p.brokers.forEach((b, i) => {
    const parsed = parseHostPort(b);
    if (!parsed.ok || parsed.value.port === 0)
      issues.push({
        path: `${at}.brokers[${i}]`,
        message: `must be "host:port" such as "localhost:9092" (got ${JSON.stringify(b)})`,
      });
  });
  const out: KafkaProviderConfig = {
    id: p.id,
    brokers: [...p.brokers],
    tls: { enabled: p.tls?.enabled ?? false },
  };
  if (p.tls && (p.tls.cert_file === undefined) !== (p.tls.key_file === undefined))
    issues.push({ path: `${at}.tls`, message: 'cert_file and key_file go together: set both or neither' });
  if (p.tls?.cert_file !== undefined) out.tls.certFile = filePath(p.tls.cert_file);
  if (p.tls?.key_file !== undefined) out.tls.keyFile = filePath(p.tls.key_file);
  if (p.tls?.ca_file !== undefined) out.tls.caFile = filePath(p.tls.ca_file);
  const a = p.authentication;
  if (a?.sasl_plain) out.authentication = { mechanism: 'plain', ...a.sasl_plain };
  else if (a?.sasl_scram) {
    const { mechanism = 'SCRAM-SHA-512', username, password } = a.sasl_scram;
    out.authentication = {
      mechanism: mechanism === 'SCRAM-SHA-256' ? 'scram-sha-256' : 'scram-sha-512',
      username,
      password,
    };
  }
  return out;
}
