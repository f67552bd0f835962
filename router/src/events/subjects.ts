/**
 * Renders the subject/topic templates of the EDFS directives (`"employeeUpdated.{{ args.id }}"`)
 * from a field's already-coerced arguments, and checks NATS subject syntax.
 *
 * Why the strictness: a rendered subject is a broker address chosen partly by the client. A value
 * containing `*`, `>` or `.` would widen a subscription (`employee.*` hears every employee) or
 * address a different token; whitespace or an empty token makes the subject invalid. So a value is
 * rejected, never escaped, and every error names the argument and the template to fix.
 *
 * Invariants: pure (no I/O, no clock); the output of `renderSubject` for NATS is a syntactically
 * valid subject; only scalars (string, number, boolean; an ID is a string) are ever interpolated.
 */

export type SubjectKind = 'nats' | 'kafka';

/** A template, argument value or rendered subject that cannot be used as a broker address. */
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

/** `{{ args.a.b }}`, whitespace-tolerant; group 1 is the dotted path after `args.`. */
const ARGUMENT_TEMPLATE = /\{\{\s*args\.([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)\s*\}\}/g;
const WHOLE_ARGUMENT_TEMPLATE = new RegExp(`^${ARGUMENT_TEMPLATE.source}$`);
const ANY_TEMPLATE = /\{\{(.*?)\}\}/g;
/** Characters Kafka accepts in a topic name. */
const KAFKA_TOPIC_CHARS = /^[a-zA-Z0-9._-]+$/;
const KAFKA_TOPIC_MAX_LENGTH = 249;
/** Whitespace and control characters end a NATS protocol token. */
const hasForbiddenNatsChar = (text: string): boolean =>
  /\s/.test(text) || [...text].some((char) => char.charCodeAt(0) < 0x20 || char.charCodeAt(0) === 0x7f);

export interface RenderOptions {
  /** Whether the template itself may contain `*`/`>` tokens (subscribe: yes; publish/request: no). */
  allowWildcards?: boolean;
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
  const rendered = template.replace(ARGUMENT_TEMPLATE, (_match, path: string) =>
    renderValue(lookup(args, path.split('.')), path, template, kind),
  );
  if (kind === 'nats') {
    const problem = natsSubjectProblem(rendered, { allowWildcards: options.allowWildcards ?? true });
    if (problem !== undefined)
      throw new SubjectError(
        `subject template "${template}" renders to "${rendered}", which is not a valid NATS subject: ${problem}`,
        template,
      );
  } else {
    const problem = kafkaTopicProblem(rendered);
    if (problem !== undefined)
      throw new SubjectError(
        `topic template "${template}" renders to "${rendered}", which is not a valid Kafka topic: ${problem}`,
        template,
      );
  }
  return rendered;
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

// ---------------------------------------------------------------------------------------------

/** Rejects `{{ ... }}` expressions other than `args.x`, which would otherwise pass through verbatim. */
/** Templates already found well-formed (a config has few; every subscribe renders one). */
const checkedTemplates = new Set<string>();

function checkTemplateSyntax(template: string): void {
  if (checkedTemplates.has(template)) return;
  for (const match of template.matchAll(ANY_TEMPLATE)) {
    if (!WHOLE_ARGUMENT_TEMPLATE.test(match[0]))
      throw new SubjectError(
        `subject template "${template}": "${match[0]}" is not supported; only "{{ args.NAME }}" (or "{{ args.NAME.FIELD }}") can be used`,
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

function renderValue(value: unknown, argument: string, template: string, kind: SubjectKind): string {
  const where = `argument "${argument}" of ${kind === 'nats' ? 'subject' : 'topic'} template "${template}"`;
  const fail = (why: string): never => {
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
  if (kind === 'nats') {
    if (hasForbiddenNatsChar(text))
      fail(`is ${JSON.stringify(text)}, which contains whitespace or a control character`);
    for (const char of ['*', '>', '.'])
      if (text.includes(char))
        fail(
          `is "${text}", which contains "${char}" and would ${char === '.' ? "change the subject's tokens" : 'widen the subscription'}`,
        );
  } else if (!KAFKA_TOPIC_CHARS.test(text)) {
    fail(`is "${text}"; a Kafka topic allows only letters, digits, ".", "_" and "-"`);
  }
  return text;
}
