/**
 * The Subgraph reconciler against the in-memory API server (test/fixtures/api-server.ts): Valid
 * and the schema hash for a good SDL, the place of syntax and federation errors for a bad one.
 */
import { describe, expect, it } from '@jest/globals';
import type { Subgraph } from '../../src/api/v1alpha1.js';
import { RESOURCES } from '../../src/kube/resources.js';
import { condition, setup, withChat } from '../fixtures/api-server.js';

describe('Subgraph reconciler', () => {
  it('reports Valid=True and the schema hash for a valid subgraph, once', async () => {
    const { api, subgraphs } = setup();
    withChat(api);
    await subgraphs.reconcile('demo/edfs');
    const sg = api.find<Subgraph>(RESOURCES.Subgraph, 'demo', 'edfs')!;
    expect(sg.status).toMatchObject({
      observedGeneration: 1,
      schemaHash: expect.stringMatching(/^[0-9a-f]{64}$/),
    });
    expect(condition(sg, 'Valid')).toMatchObject({ status: 'True' });
    api.takeWrites();
    await subgraphs.reconcile('demo/edfs');
    expect(api.takeWrites()).toEqual([]);
  });

  it('reports syntax and federation errors with where they are', async () => {
    const { api, subgraphs } = setup();
    api.put({
      apiVersion: 'edfs.io/v1alpha1',
      kind: 'Subgraph',
      metadata: { name: 'broken', namespace: 'demo' },
      spec: { schema: { sdl: 'type Query {\n  a: String\n  b: \n}' } },
    });
    api.put({
      apiVersion: 'edfs.io/v1alpha1',
      kind: 'Subgraph',
      metadata: { name: 'badkey', namespace: 'demo' },
      spec: { schema: { sdl: 'type Query { a: String } type X @key(fields: "nope") { id: ID! }' } },
    });
    await subgraphs.reconcile('demo/broken');
    await subgraphs.reconcile('demo/badkey');
    expect(condition(api.find(RESOURCES.Subgraph, 'demo', 'broken')!, 'Valid')).toMatchObject({
      status: 'False',
      reason: 'InvalidSchema',
      message: 'syntax error at line 4, column 1: Expected Name, found "}".',
    });
    expect(condition(api.find(RESOURCES.Subgraph, 'demo', 'badkey')!, 'Valid')).toMatchObject({
      status: 'False',
      message: expect.stringContaining('The type "X" does not define a field named "nope"'),
    });
    expect(api.events.map((e) => e.reason)).toEqual(['InvalidSchema', 'InvalidSchema']);
  });
});
