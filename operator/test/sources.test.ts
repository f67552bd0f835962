import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { composeSupergraph } from '../src/compose/compose.js';
import {
  ComposeInputError,
  loadComposeInputs,
  readComposeSources,
  type SubgraphManifest,
} from '../src/compose/sources.js';
import { fixture, readFixture } from './fixtures/files.js';

function inputErrors(load: () => unknown): ComposeInputError['errors'] {
  try {
    load();
  } catch (err) {
    if (err instanceof ComposeInputError) return err.errors;
    throw err;
  }
  throw new Error('expected a ComposeInputError');
}

function tempYaml(text: string): string {
  const file = join(mkdtempSync(join(tmpdir(), 'edfs-sources-')), 'input.yaml');
  writeFileSync(file, text);
  return file;
}

describe('loadComposeInputs from Kubernetes manifests', () => {
  it('takes the Subgraphs selected by the Supergraph: its namespace, its labels, its expressions', () => {
    const inputs = loadComposeInputs([fixture('manifests')]);

    // users-next (stage: experimental) and staging/users are in the directory but not selected.
    expect(inputs.map((s) => s.name).sort()).toEqual(['events', 'messages', 'users']);
    expect(inputs.find((s) => s.name === 'users')).toEqual({
      name: 'users',
      routingUrl: 'http://users.demo.svc:4001/graphql',
      sdl: readFixture('schemas/users.graphql'),
    });
  });

  it('reads a schema held in a ConfigMap of the same namespace', () => {
    const messages = loadComposeInputs([fixture('manifests')]).find((s) => s.name === 'messages');

    expect(messages?.sdl).toBe(readFixture('schemas/messages.graphql'));
  });

  it('accepts an event-only Subgraph without routingUrl', () => {
    const events = loadComposeInputs([fixture('manifests')]).find((s) => s.name === 'events');

    expect(events).toEqual({ name: 'events', sdl: readFixture('schemas/events.graphql') });
  });

  it('collects EventProviders and ignores other kinds such as Deployments', () => {
    const sources = readComposeSources([fixture('manifests')]);

    expect(sources.eventProviders.map((p) => p.metadata)).toEqual([
      { name: 'default', namespace: 'demo', labels: {} },
    ]);
    expect(
      sources.subgraphs.map((s: SubgraphManifest) => `${s.metadata.namespace}/${s.metadata.name}`).sort(),
    ).toEqual(['demo/events', 'demo/messages', 'demo/users', 'demo/users-next', 'staging/users']);
  });

  it('composes every Subgraph when the inputs hold no Supergraph', () => {
    const inputs = loadComposeInputs([fixture('manifests/users.yaml'), fixture('manifests/events.yaml')]);

    expect(inputs.map((s) => s.name)).toEqual(['users', 'events']);
  });

  it('reads kind: List as kubectl prints it', () => {
    const file = tempYaml(`
apiVersion: v1
kind: List
items:
  - apiVersion: edfs.io/v1alpha1
    kind: Subgraph
    metadata: { name: a }
    spec: { routingUrl: "http://a/graphql", schema: { sdl: "type Query { a: String }" } }
`);
    expect(loadComposeInputs([file]).map((s) => s.name)).toEqual(['a']);
  });

  it('asks which Supergraph to use when there are several, and uses the one named', () => {
    const file = tempYaml(`
apiVersion: edfs.io/v1alpha1
kind: Supergraph
metadata: { name: chat }
spec: { subgraphSelector: { matchLabels: { graph: chat } } }
---
apiVersion: edfs.io/v1alpha1
kind: Supergraph
metadata: { name: jobs }
spec: { subgraphSelector: { matchLabels: { graph: jobs } } }
---
apiVersion: edfs.io/v1alpha1
kind: Subgraph
metadata: { name: chat-users, labels: { graph: chat } }
spec: { routingUrl: "http://a/graphql", schema: { sdl: "type Query { a: String }" } }
---
apiVersion: edfs.io/v1alpha1
kind: Subgraph
metadata: { name: jobs-queue, labels: { graph: jobs } }
spec: { routingUrl: "http://b/graphql", schema: { sdl: "type Query { b: String }" } }
`);

    expect(inputErrors(() => loadComposeInputs([file]))).toEqual([
      {
        message:
          'the inputs define 2 Supergraphs (default/chat, default/jobs); choose one with --supergraph NAME',
      },
    ]);
    expect(loadComposeInputs([file], { supergraph: 'jobs' }).map((s) => s.name)).toEqual(['jobs-queue']);
    expect(loadComposeInputs([file], { supergraph: 'default/chat' }).map((s) => s.name)).toEqual([
      'chat-users',
    ]);
    expect(inputErrors(() => loadComposeInputs([file], { supergraph: 'billing' }))).toEqual([
      { message: 'Supergraph "billing" not found in the inputs (found: default/chat, default/jobs)' },
    ]);
  });

  it('names the Supergraph and the expression when its selector is invalid', () => {
    const file = tempYaml(`
apiVersion: edfs.io/v1alpha1
kind: Supergraph
metadata: { name: chat }
spec: { subgraphSelector: { matchExpressions: [{ key: graph, operator: In }] } }
---
apiVersion: edfs.io/v1alpha1
kind: Subgraph
metadata: { name: a }
spec: { routingUrl: "http://a/graphql", schema: { sdl: "type Query { a: String }" } }
`);

    expect(inputErrors(() => loadComposeInputs([file]))).toEqual([
      {
        message: `${file}: Supergraph "chat": spec.subgraphSelector.matchExpressions[0] (key "graph"): operator In needs at least one value`,
      },
    ]);
  });
});

describe('loadComposeInputs from a Cosmo graph.yaml', () => {
  it('reads schema files relative to the graph.yaml, routing_url optional', () => {
    const inputs = loadComposeInputs([fixture('graph-yaml/graph.yaml')]);

    expect(inputs).toEqual([
      {
        name: 'users',
        routingUrl: 'http://users.demo.svc:4001/graphql',
        sdl: readFixture('schemas/users.graphql'),
      },
      {
        name: 'messages',
        routingUrl: 'http://messages.demo.svc:4002/graphql',
        sdl: readFixture('schemas/messages.graphql'),
      },
      { name: 'events', sdl: readFixture('schemas/events.graphql') },
    ]);
  });

  it('composes to the same execution config as the equivalent manifests', () => {
    const fromGraphYaml = composeSupergraph(loadComposeInputs([fixture('graph-yaml')]));
    const fromManifests = composeSupergraph(loadComposeInputs([fixture('manifests')]));

    expect(fromGraphYaml.ok && fromManifests.ok).toBe(true);
    if (!fromGraphYaml.ok || !fromManifests.ok) return;
    expect(fromGraphYaml.configJson).toBe(fromManifests.configJson);
  });

  it('reads a schema file given by absolute path, and one relative to the graph.yaml, from any working directory', () => {
    const schemas = mkdtempSync(join(tmpdir(), 'edfs-schemas-'));
    const dir = mkdtempSync(join(tmpdir(), 'edfs-graph-'));
    writeFileSync(join(schemas, 'a.graphql'), 'type Query { a: String }');
    writeFileSync(join(dir, 'b.graphql'), 'type Query { b: String }');
    writeFileSync(
      join(dir, 'graph.yaml'),
      `version: 1\nsubgraphs:\n  - name: a\n    schema: { file: ${join(schemas, 'a.graphql')} }\n` +
        '  - name: b\n    schema: { file: ./b.graphql }\n',
    );
    const expected = [
      { name: 'a', sdl: 'type Query { a: String }' },
      { name: 'b', sdl: 'type Query { b: String }' },
    ];

    expect(loadComposeInputs([join(dir, 'graph.yaml')])).toEqual(expected);
    const cwd = process.cwd();
    try {
      process.chdir(dir);
      expect(loadComposeInputs(['graph.yaml'])).toEqual(expected);
    } finally {
      process.chdir(cwd);
    }
  });

  it('passes the subscription settings through', () => {
    const dir = mkdtempSync(join(tmpdir(), 'edfs-graph-'));
    writeFileSync(join(dir, 'a.graphql'), 'type Query { a: String }');
    writeFileSync(
      join(dir, 'graph.yaml'),
      'version: 1\nsubgraphs:\n  - name: a\n    routing_url: http://a/graphql\n    schema: { file: a.graphql }\n' +
        '    subscription: { url: "ws://a/ws", protocol: ws, websocketSubprotocol: graphql-ws }\n',
    );

    expect(loadComposeInputs([dir])).toEqual([
      {
        name: 'a',
        routingUrl: 'http://a/graphql',
        sdl: 'type Query { a: String }',
        subscriptionUrl: 'ws://a/ws',
        subscriptionProtocol: 'ws',
        websocketSubprotocol: 'graphql-ws',
      },
    ]);
  });
});

describe('bad inputs', () => {
  it('names the file and line of invalid YAML', () => {
    // Written at test time: an invalid YAML fixture would break the repository's formatter check.
    const file = tempYaml(
      'apiVersion: edfs.io/v1alpha1\nkind: Subgraph\nspec:\n  schema: { sdl: "type Query { a: String }"\n',
    );

    expect(inputErrors(() => loadComposeInputs([file]))).toEqual([
      {
        message: `${file}: invalid YAML: Flow map in block collection must be sufficiently indented and end with a } at line 5, column 1`,
      },
    ]);
  });

  it('names a missing schema file given by absolute path as it is written', () => {
    const dir = mkdtempSync(join(tmpdir(), 'edfs-graph-'));
    const missing = join(tmpdir(), 'edfs-no-such-dir', 'users.graphql');
    writeFileSync(
      join(dir, 'graph.yaml'),
      `version: 1\nsubgraphs:\n  - name: users\n    schema: { file: ${missing} }\n`,
    );

    expect(inputErrors(() => loadComposeInputs([dir]))).toEqual([
      { subgraph: 'users', message: `${join(dir, 'graph.yaml')}: schema file ${missing} not found` },
    ]);
  });

  it('names the subgraph and the schema file that is missing', () => {
    const dir = fixture('bad/missing-schema-file');

    expect(inputErrors(() => loadComposeInputs([dir]))).toEqual([
      {
        subgraph: 'users',
        message: `${join(dir, 'graph.yaml')}: schema file ${join(dir, 'users.graphql')} not found`,
      },
    ]);
  });

  it('names each Subgraph with no, two, or an unresolvable schema source, all at once', () => {
    const file = fixture('bad/schema-sources.yaml');

    expect(inputErrors(() => loadComposeInputs([file]))).toEqual([
      { subgraph: 'no-schema', message: `${file}: spec.schema needs exactly one of sdl or configMapRef` },
      { subgraph: 'two-schemas', message: `${file}: spec.schema needs exactly one of sdl or configMapRef` },
      {
        subgraph: 'missing-configmap',
        message: `${file}: ConfigMap "c-schema" (namespace "default") referenced by spec.schema.configMapRef not found`,
      },
      {
        subgraph: 'missing-key',
        message: `${file}: ConfigMap "schemas" (namespace "default") has no key "d.graphql"`,
      },
    ]);
  });

  it('does not take a ConfigMap from another namespace', () => {
    const file = tempYaml(`
apiVersion: v1
kind: ConfigMap
metadata: { name: schema, namespace: other }
data: { schema.graphql: "type Query { a: String }" }
---
apiVersion: edfs.io/v1alpha1
kind: Subgraph
metadata: { name: a, namespace: demo }
spec: { routingUrl: "http://a/graphql", schema: { configMapRef: { name: schema, key: schema.graphql } } }
`);

    expect(inputErrors(() => loadComposeInputs([file]))).toEqual([
      {
        subgraph: 'a',
        message: `${file}: ConfigMap "schema" (namespace "demo") referenced by spec.schema.configMapRef not found`,
      },
    ]);
  });

  it('rejects unknown edfs.io kinds and versions instead of ignoring a typo', () => {
    const file = tempYaml(`
apiVersion: edfs.io/v1alpha1
kind: SubGraph
metadata: { name: a }
---
apiVersion: edfs.io/v1
kind: Subgraph
metadata: { name: b }
`);

    expect(inputErrors(() => readComposeSources([file]))).toEqual([
      {
        message: `${file}: SubGraph "a": unknown kind "SubGraph" in edfs.io/v1alpha1 (expected Subgraph, Supergraph or EventProvider)`,
      },
      { message: `${file}: Subgraph "b": unsupported apiVersion "edfs.io/v1" (expected edfs.io/v1alpha1)` },
    ]);
  });

  it('names a path that does not exist and says when no Subgraph was found', () => {
    expect(inputErrors(() => loadComposeInputs(['/nonexistent/edfs']))).toEqual([
      { message: '/nonexistent/edfs: no such file or directory' },
    ]);
    const empty = tempYaml('apiVersion: apps/v1\nkind: Deployment\nmetadata: { name: x }\n');
    expect(inputErrors(() => loadComposeInputs([empty]))).toEqual([
      { message: `no Subgraph found in ${empty}` },
    ]);
  });
});
