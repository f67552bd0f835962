/**
 * Renders the subject/topic templates of the EDFS directives (`"employeeUpdated.{{ args.id }}"`)
 * from a field's already-coerced arguments and, for `{{ request.auth.claims.NAME }}`, the verified
 * claims of the client's token (`"tenant.{{ request.auth.claims.tenant }}.room.{{ args.roomID }}"`),
 * so a client can only ever address its own tenant's subjects. A claim template refuses an
 * anonymous client and a token without that claim (`ClaimError`): never a subject without it.
 *
 * Why the strictness: a rendered subject is a broker address chosen partly by the client. A value
 * containing `*`, `>` or `.` would widen a subscription (`employee.*` hears every employee) or
 * address a different token; whitespace or an empty token makes the subject invalid. So a value is
 * rejected, never escaped, and every error names the argument and the template to fix.
 *
 * Why the bounds: the rendered subject travels in a protocol line to a connection every client of
 * the router shares. nats-server closes a connection whose line is longer than its
 * `max_control_line` (4,096 bytes by default), which would cut every subscriber off at once; Kafka
 * refuses topics over 249 characters. So a rendered subject is bounded (`SubjectLimits`: bytes and
 * tokens) before any broker sees it, and the error names the argument that made it too long.
 *
 * Invariants: pure (no I/O, no clock); the output of `renderSubject` for NATS is a syntactically
 * valid subject within its limits (as events/subjects.ts defines it); only scalars (string,
 * number, boolean; an ID is a string) are ever interpolated; errors are SubjectErrors that quote
 * at most a short preview of a client's value.
 */
import {
  hasForbiddenNatsChar,
  KAFKA_TOPIC_CHARS,
  KAFKA_TOPIC_MAX_LENGTH,
  kafkaTopicProblem,
  natsSubjectProblem,
  preview,
  SubjectError,
} from '../events/subjects.js';

export type SubjectKind = 'nats' | 'kafka';

/** `{{ args.a.b }}`, whitespace-tolerant; group 1 is the dotted path after `args.`. */
const ARGUMENT_TEMPLATE = /\{\{\s*args\.([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)\s*\}\}/g;
/** `{{ request.auth.claims.a.b }}`; group 1 is the claim path. */
const CLAIM_TEMPLATE =
  /\{\{\s*request\.auth\.claims\.([A-Za-z_][A-Za-z0-9_-]*(?:\.[A-Za-z_][A-Za-z0-9_-]*)*)\s*\}\}/g;
/** Either kind of reference; group 1 is `args` or `request.auth.claims`, group 2 the path. */
const REFERENCE_TEMPLATE = new RegExp(
  `\\{\\{\\s*(args|request\\.auth\\.claims)\\.([A-Za-z_][A-Za-z0-9_-]*(?:\\.[A-Za-z_][A-Za-z0-9_-]*)*)\\s*\\}\\}`,
  'g',
);
const WHOLE_ARGUMENT_TEMPLATE = new RegExp(`^${ARGUMENT_TEMPLATE.source}$`);
const WHOLE_CLAIM_TEMPLATE = new RegExp(`^${CLAIM_TEMPLATE.source}$`);
const ANY_TEMPLATE = /\{\{(.*?)\}\}/g;

/** Bounds of a rendered subject (router.yaml `events.subjects`). */
export interface SubjectLimits {
  /**
   * Longest rendered NATS subject, in UTF-8 bytes. A Kafka topic is held to the smaller of this
   * and Kafka's own 249 characters.
   */
  maxLength: number;
  /** Most `.`-separated tokens in a rendered NATS subject. */
  maxTokens: number;
}

/**
 * Far below nats-server's 4,096-byte control line (which also carries the verb, a reply subject or
 * a JetStream API prefix, sizes and ids), and far above any subject a schema needs.
 */
export const DEFAULT_SUBJECT_LIMITS: Readonly<SubjectLimits> = { maxLength: 512, maxTokens: 32 };

/**
 * A claim template could not be rendered: `anonymous` (no verified token), `missing` (the token
 * has no such claim) or `invalid` (its value cannot be part of a subject, for the same reasons as
 * an argument's).
 */
export class ClaimError extends SubjectError {
  override name = 'ClaimError';
  constructor(
    message: string,
    template: string,
    readonly claim: string,
    readonly reason: 'anonymous' | 'missing' | 'invalid',
  ) {
    super(message, template);
  }
}

export interface RenderOptions {
  /** Whether the template itself may contain `*`/`>` tokens (subscribe: yes; publish/request: no). */
  allowWildcards?: boolean;
  /** Bounds of the rendered subject; default `DEFAULT_SUBJECT_LIMITS`. */
  limits?: SubjectLimits;
  /** The client's verified claims, for `{{ request.auth.claims.NAME }}`; undefined = anonymous. */
  claims?: Readonly<Record<string, unknown>>;
}

/**
 * The argument paths a template uses, each as its segments (`{{ args.input.id }}` -> `['input','id']`).
 * Lets a caller key triggers by only the arguments that shape the subject.
 */
export function templateArguments(template: string): string[][] {
  checkTemplateSyntax(template);
  return [...template.matchAll(ARGUMENT_TEMPLATE)].map((match) => match[1]!.split('.'));
}

/**
 * Renders one template. For NATS the result is validated as a subject (wildcard tokens allowed
 * only when written in the template itself and `allowWildcards` is not false); for Kafka as a topic.
 */
export function renderSubject(
  template: string,
  args: Readonly<Record<string, unknown>>,
  kind: SubjectKind = 'nats',
  options: RenderOptions = {},
): string {
  checkTemplateSyntax(template);
  const limits = options.limits ?? DEFAULT_SUBJECT_LIMITS;
  const maxBytes = maxSubjectBytes(kind, limits);
  const noun = kind === 'nats' ? 'subject' : 'topic';
  const limit = `a ${noun} may be at most ${maxBytes} ${kind === 'nats' ? 'bytes' : 'characters'} (${limitSource(kind, limits)})`;
  /** The longest interpolated value, to blame when the whole subject is too long. */
  let longest: { argument: string; bytes: number } | undefined;
  const rendered = template.replace(REFERENCE_TEMPLATE, (_match, scope: string, path: string) => {
    const text =
      scope === 'args'
        ? renderValue(lookup(args, path.split('.')), path, template, kind, maxBytes, limit)
        : renderClaim(options.claims, path, template, kind, maxBytes, limit);
    const bytes = Buffer.byteLength(text);
    if (!longest || bytes > longest.bytes) longest = { argument: path, bytes };
    return text;
  });
  const bytes = Buffer.byteLength(rendered);
  if (bytes > maxBytes) {
    if (longest && longest.bytes > 0)
      throw new SubjectError(
        `argument "${longest.argument}" of ${noun} template "${template}" is ${longest.bytes} bytes long, which makes the ${noun} ${bytes} bytes; ${limit}`,
        template,
        longest.argument,
      );
    throw new SubjectError(`${noun} template "${template}" is ${bytes} bytes long; ${limit}`, template);
  }
  if (kind === 'nats') {
    const tokens = rendered.split('.').length;
    // Values cannot contain ".", so only the template decides the number of tokens.
    if (tokens > limits.maxTokens)
      throw new SubjectError(
        `subject template "${template}" has ${tokens} tokens; a subject may have at most ${limits.maxTokens} (events.subjects.max_tokens)`,
        template,
      );
    const problem = natsSubjectProblem(rendered, { allowWildcards: options.allowWildcards ?? true });
    if (problem !== undefined)
      throw new SubjectError(
        `subject template "${template}" renders to "${preview(rendered)}", which is not a valid NATS subject: ${problem}`,
        template,
      );
  } else {
    const problem = kafkaTopicProblem(rendered);
    if (problem !== undefined)
      throw new SubjectError(
        `topic template "${template}" renders to "${preview(rendered)}", which is not a valid Kafka topic: ${problem}`,
        template,
      );
  }
  return rendered;
}

/** The longest subject `kind` allows under `limits`: bytes for NATS, characters for Kafka (ASCII only). */
export function maxSubjectBytes(kind: SubjectKind, limits: SubjectLimits = DEFAULT_SUBJECT_LIMITS): number {
  return kind === 'kafka' ? Math.min(limits.maxLength, KAFKA_TOPIC_MAX_LENGTH) : limits.maxLength;
}

function limitSource(kind: SubjectKind, limits: SubjectLimits): string {
  if (kind === 'kafka' && limits.maxLength >= KAFKA_TOPIC_MAX_LENGTH) return "Kafka's limit";
  return 'events.subjects.max_length';
}

/** Renders every template of one directive, in order. */
export function renderSubjects(
  templates: readonly string[],
  args: Readonly<Record<string, unknown>>,
  kind: SubjectKind = 'nats',
  options: RenderOptions = {},
): string[] {
  return templates.map((template) => renderSubject(template, args, kind, options));
}

// ---------------------------------------------------------------------------------------------

/** Templates already found well-formed (a config has few; every subscribe renders one). */
const checkedTemplates = new Set<string>();

/**
 * Rejects `{{ ... }}` expressions other than `args.x` and `request.auth.claims.x`, which would
 * otherwise pass through verbatim.
 */
function checkTemplateSyntax(template: string): void {
  if (checkedTemplates.has(template)) return;
  for (const match of template.matchAll(ANY_TEMPLATE)) {
    if (!WHOLE_ARGUMENT_TEMPLATE.test(match[0]) && !WHOLE_CLAIM_TEMPLATE.test(match[0]))
      throw new SubjectError(
        `subject template "${template}": "${match[0]}" is not supported; only "{{ args.NAME }}" (or "{{ args.NAME.FIELD }}") and "{{ request.auth.claims.NAME }}" can be used`,
        template,
      );
  }
  const rest = template.replace(ANY_TEMPLATE, '');
  if (rest.includes('{{') || rest.includes('}}'))
    throw new SubjectError(`subject template "${template}" has an unclosed "{{" or a stray "}}"`, template);
  if (checkedTemplates.size < 10_000) checkedTemplates.add(template);
}

function lookup(args: Readonly<Record<string, unknown>>, path: readonly string[]): unknown {
  let current: unknown = args;
  for (const segment of path) {
    if (current === null || typeof current !== 'object' || Array.isArray(current)) return undefined;
    if (!Object.prototype.hasOwnProperty.call(current, segment)) return undefined;
    current = (current as Record<string, unknown>)[segment];
  }
  return current;
}

/** A claim's value, held to the same rules as an argument's; a missing one is a ClaimError. */
function renderClaim(
  claims: Readonly<Record<string, unknown>> | undefined,
  claim: string,
  template: string,
  kind: SubjectKind,
  maxBytes: number,
  limit: string,
): string {
  const noun = kind === 'nats' ? 'subject' : 'topic';
  if (!claims)
    throw new ClaimError(
      `this subscription's ${noun} depends on the claim "${claim}" of your token: authenticate to subscribe`,
      template,
      claim,
      'anonymous',
    );
  const value = lookup(claims, claim.split('.'));
  if (value === undefined || value === null)
    throw new ClaimError(
      `your token has no "${claim}" claim, which this subscription's ${noun} needs`,
      template,
      claim,
      'missing',
    );
  return renderValue(value, claim, template, kind, maxBytes, limit, 'claim');
}

function renderValue(
  value: unknown,
  argument: string,
  template: string,
  kind: SubjectKind,
  maxBytes: number,
  /** How the limit is described in messages. */
  limit: string,
  source: 'argument' | 'claim' = 'argument',
): string {
  const where = `${source} "${argument}" of ${kind === 'nats' ? 'subject' : 'topic'} template "${template}"`;
  const fail = (why: string): never => {
    if (source === 'claim') throw new ClaimError(`${where} ${why}`, template, argument, 'invalid');
    throw new SubjectError(`${where} ${why}`, template, argument);
  };
  let text: string;
  if (value === undefined) return fail('has no value (pass the argument, or give it a default)');
  if (value === null) return fail('is null; a subject needs a value');
  if (typeof value === 'string') text = value;
  else if (typeof value === 'number') {
    if (!Number.isFinite(value)) return fail(`is ${value}; only finite numbers can be used`);
    text = String(value);
  } else if (typeof value === 'boolean') text = String(value);
  else
    return fail(
      `is ${Array.isArray(value) ? 'a list' : typeof value === 'object' ? 'an object' : `a ${typeof value}`}; only a string, number, boolean or ID can be used`,
    );

  if (text.length === 0) return fail('is empty');
  // Before looking at the characters: a huge value is refused for its size, without scanning it.
  if (text.length > maxBytes || Buffer.byteLength(text) > maxBytes)
    fail(`is ${Buffer.byteLength(text)} bytes long; ${limit}`);
  if (kind === 'nats') {
    if (hasForbiddenNatsChar(text))
      fail(`is ${JSON.stringify(preview(text))}, which contains whitespace or a control character`);
    for (const char of ['*', '>', '.'])
      if (text.includes(char))
        fail(
          `is "${preview(text)}", which contains "${char}" and would ${char === '.' ? "change the subject's tokens" : 'widen the subscription'}`,
        );
  } else if (!KAFKA_TOPIC_CHARS.test(text)) {
    fail(`is "${preview(text)}"; a Kafka topic allows only letters, digits, ".", "_" and "-"`);
  }
  return text;
}
