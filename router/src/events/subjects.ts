/**
 * What the brokers accept as an address: NATS subject syntax and wildcard overlap, Kafka topic
 * names, and the size of a NATS protocol line. The adapters check every subject here before it
 * reaches a broker; the subject templates of the schema (event-fields/subject-templates.ts) render
 * into addresses these checks accept.
 *
 * Invariants: pure (no I/O, no clock); a check returns why an address is refused, in words that
 * quote it, or undefined; an error message quotes at most a short preview of a client's value.
 */

/** A template, argument value or subject that cannot be used as a broker address. */
export class SubjectError extends Error {
  override name = 'SubjectError';
  constructor(
    message: string,
    /** The template (or subject) at fault. */
    readonly subject: string,
    /** The argument path (`id`, `input.field`) at fault, when an argument caused it. */
    readonly argument?: string,
  ) {
    super(message);
  }
}

/** Characters Kafka accepts in a topic name. */
export const KAFKA_TOPIC_CHARS = /^[a-zA-Z0-9._-]+$/;
export const KAFKA_TOPIC_MAX_LENGTH = 249;

/** Whitespace and control characters end a NATS protocol token. */
export const hasForbiddenNatsChar = (text: string): boolean =>
  /\s/.test(text) || [...text].some((char) => char.charCodeAt(0) < 0x20 || char.charCodeAt(0) === 0x7f);

/** nats-server's default `max_control_line`: the longest protocol line it accepts from a client. */
export const NATS_DEFAULT_MAX_CONTROL_LINE = 4096;

/**
 * Bytes of a NATS protocol line such as `SUB <subject> <sid>\r\n` or
 * `PUB <subject> <reply> <size>\r\n`: the verb, each argument after a space, and CRLF.
 */
export function natsControlLineBytes(verb: string, subject: string, ...rest: (string | number)[]): number {
  let bytes = Buffer.byteLength(verb) + 1 + Buffer.byteLength(subject) + 2;
  for (const arg of rest) bytes += 1 + Buffer.byteLength(String(arg));
  return bytes;
}

const PREVIEW_CHARS = 64;

/** A client's value as an error message may quote it: short ones whole, long ones cut. */
export function preview(text: string): string {
  if (text.length <= PREVIEW_CHARS) return text;
  return `${text.slice(0, PREVIEW_CHARS)}... (${Buffer.byteLength(text)} bytes)`;
}

/**
 * Why `subject` is not a valid NATS subject, or undefined when it is. Tokens are separated by `.`
 * and must be non-empty; `*` and `>` are wildcards only as whole tokens, `>` only as the last one.
 */
export function natsSubjectProblem(
  subject: string,
  options: { allowWildcards?: boolean } = {},
): string | undefined {
  if (subject.length === 0) return 'it is empty';
  if (hasForbiddenNatsChar(subject)) return 'it contains whitespace or a control character';
  const tokens = subject.split('.');
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i]!;
    if (token.length === 0) return `token ${i + 1} is empty (leading, trailing or double ".")`;
    const wildcard = token === '*' || token === '>';
    if (!wildcard && (token.includes('*') || token.includes('>')))
      return `token "${token}" mixes a wildcard with other characters`;
    if (wildcard && options.allowWildcards === false)
      return `wildcard "${token}" is not allowed here (publish and request need a concrete subject)`;
    if (token === '>' && i !== tokens.length - 1) return '">" must be the last token';
  }
  return undefined;
}

export function isValidNatsSubject(subject: string, options: { allowWildcards?: boolean } = {}): boolean {
  return natsSubjectProblem(subject, options) === undefined;
}

/** Throws a SubjectError naming the subject when it is not a valid NATS subject. */
export function assertValidNatsSubject(subject: string, options: { allowWildcards?: boolean } = {}): void {
  const problem = natsSubjectProblem(subject, options);
  if (problem !== undefined) throw new SubjectError(`invalid NATS subject "${subject}": ${problem}`, subject);
}

/** Whether some subject matches both patterns (`*` one token, `>` one or more trailing tokens). */
export function subjectsOverlap(a: string, b: string): boolean {
  const left = a.split('.');
  const right = b.split('.');
  for (let i = 0; ; i++) {
    const x = left[i];
    const y = right[i];
    if (x === undefined || y === undefined) return x === y;
    if (x === '>' || y === '>') return true;
    if (x !== '*' && y !== '*' && x !== y) return false;
  }
}

/** Why `topic` is not a valid Kafka topic name, or undefined when it is. */
export function kafkaTopicProblem(topic: string): string | undefined {
  if (topic.length === 0) return 'it is empty';
  if (topic === '.' || topic === '..') return `"${topic}" is reserved`;
  if (topic.length > KAFKA_TOPIC_MAX_LENGTH) return `it is longer than ${KAFKA_TOPIC_MAX_LENGTH} characters`;
  if (!KAFKA_TOPIC_CHARS.test(topic)) return 'only letters, digits, ".", "_" and "-" are allowed';
  return undefined;
}
