/**
 * Rendered subjects and topics are bounded before any broker sees them: a client's argument can
 * never make the router send a protocol line nats-server answers by closing the shared connection,
 * nor a topic Kafka refuses. Every refusal names the argument, and quotes only a short preview.
 */
import { describe, expect, it } from '@jest/globals';
import {
  DEFAULT_SUBJECT_LIMITS,
  maxSubjectBytes,
  renderSubject,
} from '../../src/event-fields/subject-templates.js';
import { natsControlLineBytes, SubjectError } from '../../src/events/subjects.js';

function errorOf(run: () => unknown): SubjectError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(SubjectError);
    return error as SubjectError;
  }
  throw new Error('expected a SubjectError');
}

const ROOM = 'room.{{ args.roomID }}.messages';

describe('NATS subjects are bounded', () => {
  it('a 4.1 KB roomID is refused before any broker call, naming the argument and the limit', () => {
    const roomID = 'r'.repeat(4100);
    const error = errorOf(() => renderSubject(ROOM, { roomID }));
    expect(error.argument).toBe('roomID');
    expect(error.message).toContain('argument "roomID"');
    expect(error.message).toContain('4100 bytes');
    expect(error.message).toContain('at most 512 bytes (events.subjects.max_length)');
    // The error goes to the client and the log: it does not carry the 4 KB back.
    expect(error.message.length).toBeLessThan(400);
  });

  it('the default leaves most of nats-server 4,096-byte control line for the rest of the line', () => {
    expect(DEFAULT_SUBJECT_LIMITS).toEqual({ maxLength: 512, maxTokens: 32 });
    const longest = renderSubject(ROOM, { roomID: 'r'.repeat(512 - 'room..messages'.length) });
    expect(Buffer.byteLength(longest)).toBe(512);
    expect(natsControlLineBytes('SUB', longest, '9999999999')).toBeLessThan(4096);
  });

  it('values that fit alone but not together blame the longest one', () => {
    const limits = { maxLength: 40, maxTokens: 32 };
    const error = errorOf(() =>
      renderSubject('a.{{ args.x }}.{{ args.y }}', { x: 'x'.repeat(15), y: 'y'.repeat(25) }, 'nats', {
        limits,
      }),
    );
    expect(error.argument).toBe('y');
    expect(error.message).toContain('makes the subject 43 bytes');
    expect(error.message).toContain('at most 40 bytes');
  });

  it('the limit counts bytes, not characters', () => {
    const limits = { maxLength: 20, maxTokens: 32 };
    expect(renderSubject('a.{{ args.x }}', { x: 'é'.repeat(9) }, 'nats', { limits })).toBe(
      `a.${'é'.repeat(9)}`,
    );
    const error = errorOf(() => renderSubject('a.{{ args.x }}', { x: 'é'.repeat(10) }, 'nats', { limits }));
    expect(error.message).toContain('22 bytes');
  });

  it('a configured limit applies to publish and request subjects too', () => {
    const limits = { maxLength: 16, maxTokens: 32 };
    const error = errorOf(() =>
      renderSubject(ROOM, { roomID: '0123456789' }, 'nats', { allowWildcards: false, limits }),
    );
    expect(error.argument).toBe('roomID');
    expect(error.message).toContain('at most 16 bytes (events.subjects.max_length)');
  });

  it('a template with too many tokens is refused, naming the template and the setting', () => {
    const template = Array.from({ length: 33 }, (_, i) => `t${i}`).join('.');
    const error = errorOf(() => renderSubject(template, {}));
    expect(error.argument).toBeUndefined();
    expect(error.message).toContain('33 tokens');
    expect(error.message).toContain('events.subjects.max_tokens');
    expect(renderSubject(template, {}, 'nats', { limits: { maxLength: 512, maxTokens: 33 } })).toBe(template);
  });

  it('a refused value is quoted as a short preview, never whole', () => {
    const error = errorOf(() => renderSubject(ROOM, { roomID: `${'x'.repeat(300)} y` }, 'nats'));
    expect(error.message).toContain('whitespace');
    expect(error.message).toContain('(302 bytes)');
    expect(error.message.length).toBeLessThan(400);
  });
});

describe('Kafka topics are bounded by Kafka (249 characters) and by the configured limit', () => {
  it('a topic over 249 characters is refused, naming the argument', () => {
    const error = errorOf(() => renderSubject('orders-{{ args.id }}', { id: 'a'.repeat(250) }, 'kafka'));
    expect(error.argument).toBe('id');
    expect(error.message).toContain("at most 249 characters (Kafka's limit)");
  });

  it('a lower configured limit applies to topics', () => {
    const limits = { maxLength: 20, maxTokens: 32 };
    expect(maxSubjectBytes('kafka', limits)).toBe(20);
    expect(maxSubjectBytes('kafka')).toBe(249);
    const error = errorOf(() =>
      renderSubject('orders-{{ args.id }}', { id: 'a'.repeat(14) }, 'kafka', { limits }),
    );
    expect(error.message).toContain('at most 20 characters (events.subjects.max_length)');
  });
});
