/**
 * What the brokers accept as an address, checked by every adapter before a subject reaches a
 * broker: NATS subject syntax, stream/filter overlap, Kafka topic names, NATS protocol line sizes.
 */
import { describe, expect, it } from '@jest/globals';
import {
  assertValidNatsSubject,
  isValidNatsSubject,
  kafkaTopicProblem,
  natsControlLineBytes,
  natsSubjectProblem,
  preview,
  subjectsOverlap,
} from '../../src/events/subjects.js';

describe('NATS subject syntax', () => {
  it.each(['a', 'a.b.c', 'a.*.c', 'a.>', '*', '>', '_INBOX.abc', 'a-b.c_d.1'])('%j is valid', (subject) => {
    expect(isValidNatsSubject(subject)).toBe(true);
  });

  it.each([
    ['', 'empty'],
    ['a..b', 'token 2 is empty'],
    ['.a', 'token 1 is empty'],
    ['a.', 'token 2 is empty'],
    ['a b', 'whitespace'],
    ['a.b*', 'mixes a wildcard'],
    ['a.>.b', 'must be the last token'],
  ])('%j is invalid: %s', (subject, problem) => {
    expect(natsSubjectProblem(subject)).toContain(problem);
  });

  it('wildcards can be forbidden for concrete subjects', () => {
    expect(isValidNatsSubject('a.*', { allowWildcards: false })).toBe(false);
    expect(() => assertValidNatsSubject('a.>', { allowWildcards: false })).toThrow(
      /invalid NATS subject "a.>"/,
    );
  });
});

describe('subject overlap (is a consumer filter inside a stream?)', () => {
  it.each([
    ['orders.created', 'orders.>', true],
    ['orders.*', 'orders.>', true],
    ['orders.>', 'orders.created', true],
    ['orders.*.paid', '*.eu.*', true],
    ['orders', 'orders.>', false],
    ['invoices.new', 'orders.>', false],
    ['a.b', 'a.b.c', false],
  ])('%j and %j overlap: %s', (a, b, expected) => {
    expect(subjectsOverlap(a, b)).toBe(expected);
  });
});

describe('Kafka topic names', () => {
  it('are validated whole: reserved names, length and characters', () => {
    expect(kafkaTopicProblem('..')).toContain('reserved');
    expect(kafkaTopicProblem('x'.repeat(250))).toContain('249');
    expect(kafkaTopicProblem('ok.topic_1-2')).toBeUndefined();
  });
});

describe('NATS protocol lines', () => {
  it('counts the verb, every argument and CRLF', () => {
    expect(natsControlLineBytes('SUB', 'a.b', 42)).toBe('SUB a.b 42\r\n'.length);
    expect(natsControlLineBytes('PUB', 'a.b', '_INBOX.x', 5)).toBe('PUB a.b _INBOX.x 5\r\n'.length);
  });
});

describe("a client's value in a message", () => {
  it('a short value is quoted whole, a long one cut with its size', () => {
    expect(preview('room.1')).toBe('room.1');
    expect(preview('x'.repeat(300))).toBe(`${'x'.repeat(64)}... (300 bytes)`);
  });
});
