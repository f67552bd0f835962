/**
 * Operation limits: what a client document may cost the router before it is planned.
 *
 * Order of the checks, cheapest first, each before the work it protects:
 * 1. `scanDocument`: the text's size, then one pass of graphql-js' lexer (iterative, no tree)
 *    counting tokens and bracket nesting, stopping at the first limit crossed. A document that
 *    passes can be parsed without a deep recursion and without building an unbounded tree.
 * 2. `parse` with the same token limit, without locations (a third of the memory of a located
 *    tree; locations are recovered by parsing again only when there are errors to report).
 * 3. `measureDocument`: per operation, with fragments expanded (memoized per fragment, so a
 *    fragment spread many times is walked once): cumulative depth, fields, root fields and root
 *    field aliases. Depth is checked while walking, so the walk never recurses past the limit.
 * 4. After validation, per operation: the complexity limits and the static cost estimate
 *    (`operationCost`, Cosmo's `security.cost_analysis`).
 *
 * Every refusal is a `Refusal`: a metric reason (`router_operations_rejected_total{reason}`) and
 * a GraphQL error with a stable `extensions.code`. Nothing here throws at a client document.
 */
import {
  GraphQLError,
  Kind,
  Lexer,
  Source,
  SchemaMetaFieldDef,
  TokenKind,
  TypeMetaFieldDef,
  getNamedType,
  isCompositeType,
  isInterfaceType,
  isListType,
  isNonNullType,
  isObjectType,
  parse,
  type DocumentNode,
  type FragmentDefinitionNode,
  type GraphQLCompositeType,
  type GraphQLField,
  type GraphQLFormattedError,
  type GraphQLOutputType,
  type GraphQLSchema,
  type OperationTypeNode,
  type SelectionSetNode,
} from 'graphql';
import type { OperationLimits } from '../config/types.js';

/** The `reason` label of `router_operations_rejected_total`, one per limit. */
export type RejectReason =
  | 'document_size'
  | 'tokens'
  | 'depth'
  | 'total_fields'
  | 'root_fields'
  | 'root_field_aliases'
  | 'cost'
  | 'operation_name_length'
  | 'introspection'
  | 'mutation_blocked'
  | 'subscription_blocked';

/** `extensions.code` of each refusal (documented in docs/limits-and-protection.md). */
export const ErrorCodes = {
  OPERATION_TOO_LARGE: 'OPERATION_TOO_LARGE',
  MAX_TOKENS_EXCEEDED: 'MAX_TOKENS_EXCEEDED',
  MAX_DEPTH_EXCEEDED: 'MAX_DEPTH_EXCEEDED',
  MAX_FIELDS_EXCEEDED: 'MAX_FIELDS_EXCEEDED',
  MAX_ROOT_FIELDS_EXCEEDED: 'MAX_ROOT_FIELDS_EXCEEDED',
  MAX_ROOT_FIELD_ALIASES_EXCEEDED: 'MAX_ROOT_FIELD_ALIASES_EXCEEDED',
  COST_LIMIT_EXCEEDED: 'COST_LIMIT_EXCEEDED',
  OPERATION_NAME_TOO_LONG: 'OPERATION_NAME_TOO_LONG',
  INTROSPECTION_DISABLED: 'INTROSPECTION_DISABLED',
  OPERATION_BLOCKED: 'OPERATION_BLOCKED',
  INTERNAL_SERVER_ERROR: 'INTERNAL_SERVER_ERROR',
} as const;

export interface Refusal {
  reason: RejectReason;
  error: GraphQLFormattedError;
}

export function refusal(reason: RejectReason, code: string, message: string): Refusal {
  return { reason, error: { message, extensions: { code } } };
}

/** What a client sees for any failure inside the router; the detail goes to the log only. */
export const INTERNAL_ERROR: GraphQLFormattedError = {
  message: 'Internal server error.',
  extensions: { code: ErrorCodes.INTERNAL_SERVER_ERROR },
};

// ---------------------------------------------------------------------------------------------
// 1. Size, tokens and nesting, from the text

export interface ScannedDocument {
  /** Lexical tokens (comments excluded, as graphql-js counts them). */
  tokens: number;
  /** The operations at the top level, in order: their type and name. */
  operations: { type: OperationTypeNode; name?: string }[];
}

export interface ScanLimits {
  maxDocumentSizeBytes?: number;
  maxTokens?: number;
  maxDepth?: number;
}

const OPERATION_KEYWORDS = new Set(['query', 'mutation', 'subscription']);

/**
 * One pass of the lexer over `text`: tokens, bracket nesting and the operations it defines.
 * Stops at the first limit crossed. A lexical error is not reported here (the parser reports
 * it with its location); what was counted up to it is returned.
 */
export function scanDocument(text: string, limits: ScanLimits = {}): ScannedDocument | Refusal {
  const maxSize = limits.maxDocumentSizeBytes ?? 0;
  // Characters <= UTF-8 bytes <= 3 x characters (UTF-16): the exact count only when it matters.
  if (maxSize > 0 && (text.length > maxSize || (text.length * 3 > maxSize && byteLength(text) > maxSize)))
    return refusal(
      'document_size',
      ErrorCodes.OPERATION_TOO_LARGE,
      `The operation document is ${formatBytes(byteLength(text))}, more than the ${formatBytes(maxSize)} allowed (security.parser_limits.max_document_size).`,
    );
  const maxTokens = limits.maxTokens ?? 0;
  const maxDepth = limits.maxDepth ?? 0;
  const lexer = new Lexer(new Source(text));
  const operations: ScannedDocument['operations'] = [];
  let tokens = 0;
  let depth = 0;
  // At the top level: the next name is a definition's keyword, or the operation's name after it.
  let expect: 'keyword' | 'name' | 'other' = 'keyword';
  try {
    for (let token = lexer.advance(); token.kind !== TokenKind.EOF; token = lexer.advance()) {
      tokens++;
      if (maxTokens > 0 && tokens > maxTokens)
        return refusal(
          'tokens',
          ErrorCodes.MAX_TOKENS_EXCEEDED,
          `The operation document has more than ${maxTokens} tokens (security.parser_limits.max_tokens).`,
        );
      switch (token.kind) {
        case TokenKind.BRACE_L:
        case TokenKind.BRACKET_L:
        case TokenKind.PAREN_L:
          if (depth === 0 && token.kind === TokenKind.BRACE_L && expect === 'keyword')
            operations.push({ type: 'query' as OperationTypeNode }); // `{ ... }`: an anonymous query
          depth++;
          if (maxDepth > 0 && depth > maxDepth) return tooDeep(maxDepth);
          if (depth === 1) expect = 'other';
          break;
        case TokenKind.BRACE_R:
        case TokenKind.BRACKET_R:
        case TokenKind.PAREN_R:
          depth = Math.max(0, depth - 1);
          // The end of a top-level selection set ends the definition.
          if (depth === 0 && token.kind === TokenKind.BRACE_R) expect = 'keyword';
          break;
        case TokenKind.NAME:
          if (depth !== 0) break;
          if (expect === 'keyword') {
            if (OPERATION_KEYWORDS.has(token.value)) {
              operations.push({ type: token.value as OperationTypeNode });
              expect = 'name';
            } else expect = 'other';
          } else if (expect === 'name') {
            operations[operations.length - 1]!.name = token.value;
            expect = 'other';
          }
          break;
        default:
          if (depth === 0 && expect === 'name') expect = 'other';
      }
    }
  } catch (err) {
    if (!(err instanceof GraphQLError)) throw err;
  }
  return { tokens, operations };
}

/**
 * The type of the operation a request would run (by `operationName`, or the only one), read by
 * the lexer alone; undefined when there is no such single operation. For transports that must
 * know it before the operation is prepared (a GET may not run a mutation; multipart frames
 * subscriptions differently). Linear in the text, whatever its nesting.
 */
export function operationTypeOf(
  text: string,
  operationName: string | null | undefined,
): OperationTypeNode | undefined {
  const scanned = scanDocument(text);
  if ('reason' in scanned) return undefined;
  const { operations } = scanned;
  if (operationName) return operations.find((o) => o.name === operationName)?.type;
  return operations.length === 1 ? operations[0]!.type : undefined;
}

function tooDeep(limit: number): Refusal {
  return refusal(
    'depth',
    ErrorCodes.MAX_DEPTH_EXCEEDED,
    `The operation is nested more than ${limit} levels deep (security.parser_limits.approximate_depth_limit).`,
  );
}

function byteLength(text: string): number {
  return Buffer.byteLength(text, 'utf8');
}

function formatBytes(n: number): string {
  return `${n.toLocaleString('en-US')} bytes`;
}

// ---------------------------------------------------------------------------------------------
// 2. Parsing

/**
 * Parses a document that passed `scanDocument`: without locations (see the module comment) and
 * with the token limit. A nesting beyond the stack (possible only with the depth limit off)
 * is a depth refusal, never a "Maximum call stack size exceeded" for the client.
 */
export function parseDocument(
  text: string,
  limits: OperationLimits,
  locations = false,
): DocumentNode | Refusal | GraphQLError {
  const maxTokens = limits.parserLimits.maxTokens;
  try {
    return parse(text, { noLocation: !locations, ...(maxTokens > 0 ? { maxTokens } : {}) });
  } catch (err) {
    if (err instanceof GraphQLError) return err;
    if (err instanceof RangeError) return stackRefusal();
    throw err;
  }
}

function stackRefusal(): Refusal {
  return refusal(
    'depth',
    ErrorCodes.MAX_DEPTH_EXCEEDED,
    'The operation is nested too deeply to process (security.parser_limits.approximate_depth_limit).',
  );
}

// ---------------------------------------------------------------------------------------------
// 3. Depth and fields, fragments expanded

/** An operation's shape, fragments expanded (each spread counts its fragment's fields again). */
export interface OperationMeasure {
  /** Deepest field nesting (a root field is depth 1). */
  depth: number;
  fields: number;
  rootFields: number;
  rootFieldAliases: number;
}

interface SetMeasure {
  /** Field levels below and including this selection set's own fields. */
  depth: number;
  fields: number;
  /** Fields of this level (through fragments at this level). */
  top: number;
  topAliases: number;
}

class TooDeep extends Error {}

/**
 * Measures every operation of a parsed document (by name, '' for the anonymous one), refusing
 * at the parser limits: cumulative depth beyond `approximate_depth_limit` (found while walking,
 * so the walk itself stays shallow) and more than `total_fields_limit` fields in the document.
 * Fragment cycles and unknown fragments count as nothing here: validation reports them.
 */
export function measureDocument(
  document: DocumentNode,
  limits: OperationLimits,
): Map<string, OperationMeasure> | Refusal {
  const { approximateDepthLimit, totalFieldsLimit } = limits.parserLimits;
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const def of document.definitions)
    if (def.kind === Kind.FRAGMENT_DEFINITION) fragments.set(def.name.value, def);
  const memo = new Map<string, SetMeasure>();
  const inProgress = new Set<string>();
  const empty: SetMeasure = { depth: 0, fields: 0, top: 0, topAliases: 0 };

  /** `level`: the depth of this selection set's fields. */
  const measure = (set: SelectionSetNode, level: number): SetMeasure => {
    if (approximateDepthLimit > 0 && level > approximateDepthLimit) throw new TooDeep();
    const out: SetMeasure = { depth: 0, fields: 0, top: 0, topAliases: 0 };
    const merge = (m: SetMeasure) => {
      if (approximateDepthLimit > 0 && level - 1 + m.depth > approximateDepthLimit) throw new TooDeep();
      out.depth = Math.max(out.depth, m.depth);
      out.fields += m.fields;
      out.top += m.top;
      out.topAliases += m.topAliases;
    };
    for (const selection of set.selections) {
      if (selection.kind === Kind.FIELD) {
        out.fields++;
        out.top++;
        if (selection.alias) out.topAliases++;
        if (selection.selectionSet) {
          const sub = measure(selection.selectionSet, level + 1);
          out.fields += sub.fields;
          out.depth = Math.max(out.depth, sub.depth + 1);
        } else out.depth = Math.max(out.depth, 1);
      } else if (selection.kind === Kind.INLINE_FRAGMENT) {
        merge(measure(selection.selectionSet, level));
      } else {
        const name = selection.name.value;
        let m = memo.get(name);
        if (!m) {
          const fragment = fragments.get(name);
          if (!fragment || inProgress.has(name)) m = empty;
          else {
            inProgress.add(name);
            m = measure(fragment.selectionSet, level);
            inProgress.delete(name);
            memo.set(name, m);
          }
        }
        merge(m);
      }
    }
    return out;
  };

  const operations = new Map<string, OperationMeasure>();
  let total = 0;
  try {
    for (const def of document.definitions) {
      if (def.kind !== Kind.OPERATION_DEFINITION) continue;
      const m = measure(def.selectionSet, 1);
      total += m.fields;
      operations.set(def.name?.value ?? '', {
        depth: m.depth,
        fields: m.fields,
        rootFields: m.top,
        rootFieldAliases: m.topAliases,
      });
    }
  } catch (err) {
    if (err instanceof TooDeep) return tooDeep(approximateDepthLimit);
    if (err instanceof RangeError) return stackRefusal();
    throw err;
  }
  if (totalFieldsLimit > 0 && total > totalFieldsLimit)
    return refusal(
      'total_fields',
      ErrorCodes.MAX_FIELDS_EXCEEDED,
      `The operation document selects ${formatCount(total)} fields (fragments counted where they are spread), more than the ${totalFieldsLimit} allowed (security.parser_limits.total_fields_limit).`,
    );
  return operations;
}

function formatCount(n: number): string {
  return Number.isFinite(n) && n < 1e15 ? String(n) : 'too many';
}

// ---------------------------------------------------------------------------------------------
// 4. Per operation, after validation

/** The first complexity limit `measure` crosses, if any. */
export function checkComplexity(measure: OperationMeasure, limits: OperationLimits): Refusal | undefined {
  const { depth, totalFields, rootFields, rootFieldAliases } = limits.complexityLimits;
  const over = (limit: number, value: number) => limit > 0 && value > limit;
  if (over(depth, measure.depth))
    return refusal(
      'depth',
      ErrorCodes.MAX_DEPTH_EXCEEDED,
      `The operation has a depth of ${measure.depth}, more than the ${depth} allowed (security.complexity_limits.depth).`,
    );
  if (over(totalFields, measure.fields))
    return refusal(
      'total_fields',
      ErrorCodes.MAX_FIELDS_EXCEEDED,
      `The operation selects ${formatCount(measure.fields)} fields, more than the ${totalFields} allowed (security.complexity_limits.total_fields).`,
    );
  if (over(rootFields, measure.rootFields))
    return refusal(
      'root_fields',
      ErrorCodes.MAX_ROOT_FIELDS_EXCEEDED,
      `The operation selects ${formatCount(measure.rootFields)} root fields, more than the ${rootFields} allowed (security.complexity_limits.root_fields).`,
    );
  if (over(rootFieldAliases, measure.rootFieldAliases))
    return refusal(
      'root_field_aliases',
      ErrorCodes.MAX_ROOT_FIELD_ALIASES_EXCEEDED,
      `The operation aliases ${formatCount(measure.rootFieldAliases)} root fields, more than the ${rootFieldAliases} allowed (security.complexity_limits.root_field_aliases).`,
    );
  return undefined;
}

/**
 * The static cost of a validated operation, as Cosmo estimates it (the IBM cost specification
 * without directives): a field of an object, interface or union type costs 1, a scalar or enum
 * field 0; a list multiplies its field's cost and everything below it by `listSize` (per list
 * level). Every type fragment counts, as if all could match. Memoized per fragment.
 */
export function operationCost(
  schema: GraphQLSchema,
  rootType: GraphQLCompositeType,
  selectionSet: SelectionSetNode,
  fragments: Record<string, FragmentDefinitionNode>,
  listSize: number,
): number {
  const memo = new Map<string, number>();
  const inProgress = new Set<string>();
  const cost = (set: SelectionSetNode, parent: GraphQLCompositeType): number => {
    let total = 0;
    for (const selection of set.selections) {
      if (selection.kind === Kind.FIELD) {
        const field = fieldDef(schema, parent, selection.name.value);
        if (!field) continue;
        const named = getNamedType(field.type);
        if (!isCompositeType(named)) continue;
        const below = selection.selectionSet ? cost(selection.selectionSet, named) : 0;
        total += (1 + below) * listSize ** listLevels(field.type);
      } else if (selection.kind === Kind.INLINE_FRAGMENT) {
        const type = selection.typeCondition ? schema.getType(selection.typeCondition.name.value) : parent;
        if (type && isCompositeType(type)) total += cost(selection.selectionSet, type);
      } else {
        const name = selection.name.value;
        let c = memo.get(name);
        if (c === undefined) {
          const fragment = fragments[name];
          const type = fragment && schema.getType(fragment.typeCondition.name.value);
          if (!fragment || !type || !isCompositeType(type) || inProgress.has(name)) c = 0;
          else {
            inProgress.add(name);
            c = cost(fragment.selectionSet, type);
            inProgress.delete(name);
            memo.set(name, c);
          }
        }
        total += c;
      }
    }
    return total;
  };
  return cost(selectionSet, rootType);
}

export function costRefusal(cost: number, limit: number): Refusal {
  return refusal(
    'cost',
    ErrorCodes.COST_LIMIT_EXCEEDED,
    `The estimated query cost ${formatCount(cost)} exceeds the maximum allowed static cost ${limit} (security.cost_analysis.static_limit).`,
  );
}

function fieldDef(
  schema: GraphQLSchema,
  parent: GraphQLCompositeType,
  name: string,
): GraphQLField<unknown, unknown> | undefined {
  if (name === SchemaMetaFieldDef.name && parent === schema.getQueryType()) return SchemaMetaFieldDef;
  if (name === TypeMetaFieldDef.name && parent === schema.getQueryType()) return TypeMetaFieldDef;
  if (isObjectType(parent) || isInterfaceType(parent)) return parent.getFields()[name];
  return undefined;
}

function listLevels(type: GraphQLOutputType): number {
  let levels = 0;
  let t: GraphQLOutputType = type;
  for (;;) {
    if (isNonNullType(t)) t = t.ofType;
    else if (isListType(t)) {
      levels++;
      t = t.ofType as GraphQLOutputType;
    } else return levels;
  }
}

// ---------------------------------------------------------------------------------------------
// Error messages

/** graphql-js' suggestions (" Did you mean ...?"), which reveal names of the schema. */
const SUGGESTION = /\s*Did you mean .*\?\s*$/s;

/** The error without "Did you mean ...?". */
export function withoutSuggestions(error: GraphQLFormattedError): GraphQLFormattedError {
  return SUGGESTION.test(error.message)
    ? { ...error, message: error.message.replace(SUGGESTION, '') }
    : error;
}
