/**
 * crds/ is the one schema of the edfs.io API: the TypeScript types in operator/src/api/v1alpha1.ts
 * must describe the same fields (read here with the TypeScript compiler, so neither side can drift
 * silently), and the Helm chart must ship byte-identical copies. Behaviour on a real API server
 * (CEL rules, defaults, printer columns) is in crds-apiserver.test.ts.
 */
import { describe, expect, it } from '@jest/globals';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { parseAllDocuments } from 'yaml';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CRD_FILES = ['edfs.io_eventproviders.yaml', 'edfs.io_subgraphs.yaml', 'edfs.io_supergraphs.yaml'];

function readCrd(file: string): any {
  const docs = parseAllDocuments(readFileSync(`${ROOT}crds/${file}`, 'utf8'));
  expect(docs).toHaveLength(1);
  return docs[0]!.toJS();
}

// ---------------------------------------------------------------------------------------------
// Field trees of both sides: path -> shape

interface Field {
  /** object: known properties; map: any keys (Record / additionalProperties / preserve-unknown). */
  shape: 'object' | 'map' | 'array' | 'leaf';
  required: boolean;
  enum?: string[];
}
type Fields = Map<string, Field>;

function schemaFields(schema: any, prefix: string, required: boolean, out: Fields): Fields {
  let shape: Field['shape'] = 'leaf';
  if (schema.type === 'array') shape = 'array';
  else if (schema.type === 'object') shape = schema.properties ? 'object' : 'map';
  const field: Field = { shape, required };
  if (schema.enum) field.enum = [...schema.enum].map(String).sort();
  out.set(prefix, field);
  if (shape === 'object') {
    for (const [key, child] of Object.entries<any>(schema.properties)) {
      const isRequired = (schema.required ?? []).includes(key);
      schemaFields(child, `${prefix}.${key}`, isRequired, out);
    }
  } else if (shape === 'array') {
    schemaFields(schema.items, `${prefix}[]`, true, out);
  }
  return out;
}

const program = ts.createProgram([`${ROOT}operator/src/api/v1alpha1.ts`], {
  strict: true,
  module: ts.ModuleKind.NodeNext,
  moduleResolution: ts.ModuleResolutionKind.NodeNext,
  target: ts.ScriptTarget.ES2022,
  noEmit: true,
  skipLibCheck: true,
});
const checker = program.getTypeChecker();
const apiFile = program.getSourceFile(`${ROOT}operator/src/api/v1alpha1.ts`)!;

function interfaceType(name: string): ts.Type {
  const symbol = checker
    .getExportsOfModule(checker.getSymbolAtLocation(apiFile)!)
    .find((s) => s.name === name);
  if (!symbol) throw new Error(`v1alpha1.ts has no interface ${name}`);
  return checker.getDeclaredTypeOfSymbol(symbol);
}

function typeFields(type: ts.Type, prefix: string, required: boolean, out: Fields): Fields {
  const t = checker.getNonNullableType(type);
  const parts = t.isUnion() ? t.types : [t];
  if (parts.every((p) => p.isStringLiteral())) {
    out.set(prefix, {
      shape: 'leaf',
      required,
      enum: parts.map((p) => (p as ts.StringLiteralType).value).sort(),
    });
    return out;
  }
  if (parts.length > 1 || !(t.flags & ts.TypeFlags.Object)) {
    out.set(prefix, { shape: 'leaf', required });
    return out;
  }
  if (checker.isArrayType(t)) {
    out.set(prefix, { shape: 'array', required });
    return typeFields(checker.getTypeArguments(t as ts.TypeReference)[0]!, `${prefix}[]`, true, out);
  }
  const properties = checker.getPropertiesOfType(t);
  if (properties.length === 0 && checker.getIndexInfoOfType(t, ts.IndexKind.String)) {
    out.set(prefix, { shape: 'map', required });
    return out;
  }
  out.set(prefix, { shape: 'object', required });
  for (const property of properties) {
    const optional = (property.flags & ts.SymbolFlags.Optional) !== 0;
    typeFields(
      checker.getTypeOfSymbolAtLocation(property, apiFile),
      `${prefix}.${property.name}`,
      !optional,
      out,
    );
  }
  return out;
}

/**
 * Compares the two trees. A TypeScript map (Record<string, unknown>) may be a more precise object
 * in the schema (resources: limits/requests); below it only the schema speaks.
 */
function differences(tsFields: Fields, crdFields: Fields, defaulted: Set<string>): string[] {
  const problems: string[] = [];
  const maps = [...tsFields].filter(([, f]) => f.shape === 'map').map(([p]) => p);
  const underMap = (path: string) => maps.some((m) => path.startsWith(`${m}.`) || path.startsWith(`${m}[]`));
  for (const [path, t] of tsFields) {
    const c = crdFields.get(path);
    if (!c) {
      problems.push(`${path}: in v1alpha1.ts, not in the CRD`);
      continue;
    }
    if (t.shape === 'map' ? c.shape === 'leaf' || c.shape === 'array' : t.shape !== c.shape)
      problems.push(`${path}: ${t.shape} in v1alpha1.ts, ${c.shape} in the CRD`);
    if (t.enum && JSON.stringify(t.enum) !== JSON.stringify(c.enum))
      problems.push(`${path}: values ${t.enum.join('|')} in v1alpha1.ts, ${c.enum?.join('|')} in the CRD`);
    // Required in TypeScript: the API server must guarantee it (required, or defaulted).
    if (t.required && !c.required && !defaulted.has(path))
      problems.push(`${path}: required in v1alpha1.ts, optional in the CRD`);
    if (!t.required && c.required && !defaulted.has(path))
      problems.push(`${path}: optional in v1alpha1.ts, required in the CRD`);
  }
  for (const path of crdFields.keys()) {
    if (!tsFields.has(path) && !underMap(path)) problems.push(`${path}: in the CRD, not in v1alpha1.ts`);
  }
  return problems;
}

function defaultedPaths(schema: any, prefix: string, out = new Set<string>()): Set<string> {
  if (schema.default !== undefined) out.add(prefix);
  for (const [key, child] of Object.entries<any>(schema.properties ?? {}))
    defaultedPaths(child, `${prefix}.${key}`, out);
  if (schema.items) defaultedPaths(schema.items, `${prefix}[]`, out);
  return out;
}

describe('crds/', () => {
  it('holds one CustomResourceDefinition per kind, namespaced, group edfs.io, served and stored as v1alpha1', () => {
    expect(readdirSync(`${ROOT}crds`).sort()).toEqual(CRD_FILES);
    const kinds = CRD_FILES.map((file) => {
      const crd = readCrd(file);
      expect(crd.apiVersion).toBe('apiextensions.k8s.io/v1');
      expect(crd.kind).toBe('CustomResourceDefinition');
      expect(crd.spec.group).toBe('edfs.io');
      expect(crd.spec.scope).toBe('Namespaced');
      expect(crd.metadata.name).toBe(`${crd.spec.names.plural}.edfs.io`);
      expect(file).toBe(`edfs.io_${crd.spec.names.plural}.yaml`);
      expect(crd.spec.versions.map((v: any) => [v.name, v.served, v.storage])).toEqual([
        ['v1alpha1', true, true],
      ]);
      expect(crd.spec.names.categories).toEqual(['edfs']);
      expect(crd.spec.versions[0].subresources.status).toEqual({});
      // Kept when the Helm release that installed it goes.
      expect(crd.metadata.annotations['helm.sh/resource-policy']).toBe('keep');
      return [crd.spec.names.kind, crd.spec.names.shortNames];
    });
    expect(kinds).toEqual([
      ['EventProvider', ['ep']],
      ['Subgraph', ['sg']],
      ['Supergraph', ['sup']],
    ]);
  });

  it('gives Supergraph the scale subresource on spec.router.replicas', () => {
    const crd = readCrd('edfs.io_supergraphs.yaml');
    expect(crd.spec.versions[0].subresources.scale).toEqual({
      specReplicasPath: '.spec.router.replicas',
      statusReplicasPath: '.status.replicas',
      labelSelectorPath: '.status.selector',
    });
  });

  it.each([
    ['edfs.io_eventproviders.yaml', 'EventProviderSpec', 'EventProviderStatus'],
    ['edfs.io_subgraphs.yaml', 'SubgraphSpec', 'SubgraphStatus'],
    ['edfs.io_supergraphs.yaml', 'SupergraphSpec', 'SupergraphStatus'],
  ])('%s describes exactly the fields of %s and %s in v1alpha1.ts', (file, spec, status) => {
    const schema = readCrd(file).spec.versions[0].schema.openAPIV3Schema;
    for (const [part, type] of [
      ['spec', spec],
      ['status', status],
    ] as const) {
      const crdSide = schemaFields(schema.properties[part], part, true, new Map());
      const tsSide = typeFields(interfaceType(type), part, true, new Map());
      expect(differences(tsSide, crdSide, defaultedPaths(schema.properties[part], part))).toEqual([]);
    }
  });

  it('validates every Secret reference as a required name plus key (or defaulted key names)', () => {
    const refs: string[] = [];
    const walk = (schema: any, path: string) => {
      for (const [key, child] of Object.entries<any>(schema.properties ?? {})) {
        if (/SecretRef$|^secretRef$/.test(key)) {
          refs.push(`${path}.${key}`);
          const keys = Object.keys(child.properties).filter((k) => k !== 'name');
          expect({ path: `${path}.${key}`, required: [...child.required].sort() }).toEqual({
            path: `${path}.${key}`,
            required: ['name', ...keys].sort(),
          });
          for (const k of keys) {
            if (k !== 'key') expect(child.properties[k].default).toBeDefined();
          }
        }
        walk(child, `${path}.${key}`);
      }
    };
    walk(
      readCrd('edfs.io_eventproviders.yaml').spec.versions[0].schema.openAPIV3Schema.properties.spec,
      'spec',
    );
    expect(refs.sort()).toEqual([
      'spec.kafka.sasl.secretRef',
      'spec.nats.auth.credsSecretRef',
      'spec.nats.auth.tokenSecretRef',
      'spec.nats.auth.userPasswordSecretRef',
      'spec.nats.tls.caSecretRef',
    ]);
  });
});

describe('the Helm chart', () => {
  it('ships byte-identical copies of crds/ (after editing crds/, run: cp crds/*.yaml charts/edfs-operator/files/crds/)', () => {
    const chartDir = `${ROOT}charts/edfs-operator/files/crds`;
    expect(readdirSync(chartDir).sort()).toEqual(CRD_FILES);
    for (const file of CRD_FILES) {
      const source = readFileSync(`${ROOT}crds/${file}`);
      const copy = readFileSync(`${chartDir}/${file}`);
      expect({ file, equal: Buffer.compare(source, copy) === 0 }).toEqual({ file, equal: true });
    }
  });
});
