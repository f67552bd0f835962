// Lint with type information: promise misuse (the router and operator are promise-heavy), import
// cycles, and the layer rules of docs/architecture.md — each folder imports only the layers below
// it. `npm test` runs this before any test, so a cycle or a layer break fails CI.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import { importX } from 'eslint-plugin-import-x';
import { createTypeScriptImportResolver } from 'eslint-import-resolver-typescript';

const TS_PROJECTS = [
  'router/tsconfig.json',
  'operator/tsconfig.json',
  'e2e/tsconfig.json',
  'bench/tsconfig.json',
  'tsconfig.test.json',
];

/** `target` may not import from `from` (paths relative to the repository root). */
const layer = (target, from, why) => ({
  target: `./${target}`,
  from: from.map((f) => `./${f}`),
  message: why,
});
const R = (...dirs) => dirs.map((d) => `router/src/${d}`);
const O = (...dirs) => dirs.map((d) => `operator/src/${d}`);
const ROUTER_TOP = ['main.ts', 'cli.ts', 'index.ts'];

const LAYERS = [
  // Router: config <- events <- engine/event-fields <- subscriptions <- protocols <- server <- main.
  layer(
    'router/src/config',
    R(
      'auth',
      'engine',
      'events',
      'event-fields',
      'execution-config',
      'subscriptions',
      'protocols',
      'server',
      'observability',
      ...ROUTER_TOP,
    ),
    'config/ parses router.yaml and depends on nothing else in the router (the operator loads it alone).',
  ),
  layer(
    'router/src/execution-config',
    R('engine', 'events', 'event-fields', 'subscriptions', 'protocols', 'server', ...ROUTER_TOP),
    'execution-config/ is data and its loader; nothing above it.',
  ),
  layer(
    'router/src/events',
    R('engine', 'event-fields', 'subscriptions', 'protocols', 'server', ...ROUTER_TOP),
    'events/ holds broker adapters only; GraphQL-level event code belongs in event-fields/.',
  ),
  layer(
    'router/src/engine',
    R('subscriptions', 'protocols', 'server', ...ROUTER_TOP),
    'engine/ plans and executes; transports and the subscription engine sit above it.',
  ),
  layer(
    'router/src/event-fields',
    R('subscriptions', 'protocols', 'server', ...ROUTER_TOP),
    'event-fields/ resolves event-driven fields; transports and the subscription engine sit above it.',
  ),
  layer(
    'router/src/subscriptions',
    R('protocols', 'server', ...ROUTER_TOP),
    'subscriptions/ knows no transport.',
  ),
  layer(
    'router/src/protocols',
    R('server', 'events', ...ROUTER_TOP),
    'protocols/ are pure wire protocols; HTTP and sockets live in server/.',
  ),
  layer('router/src/server', ROUTER_TOP, 'server/ is an edge; main.ts wires it.'),
  layer(
    'router/src/client',
    R(
      'config',
      'auth',
      'engine',
      'events',
      'event-fields',
      'execution-config',
      'subscriptions',
      'protocols',
      'server',
      'observability',
      ...ROUTER_TOP,
    ),
    'client/ runs in browsers and client processes: it imports nothing of the router.',
  ),
  layer(
    'router/src/auth',
    R('events', 'event-fields', 'execution-config', 'subscriptions', 'protocols', 'server', ...ROUTER_TOP),
    'auth/ verifies tokens from config/; it reads only the engine contract (engine/types.ts).',
  ),
  {
    ...layer('router/src/auth', R('engine'), 'auth/ reads only the engine contract (engine/types.ts).'),
    except: ['./types.ts'],
  },
  // Operator: api <- kube <- compose <- desired <- controller/reconcile <- cli; demo on the side.
  layer(
    'operator/src/api',
    O('kube', 'compose', 'desired', 'controller', 'reconcile', 'cli', 'demo'),
    'api/ is types and constants and imports nothing.',
  ),
  layer(
    'operator/src/kube',
    O('compose', 'desired', 'controller', 'reconcile', 'cli', 'demo'),
    'kube/ is a generic Kubernetes client over api/ types.',
  ),
  layer(
    'operator/src/compose',
    O('kube', 'desired', 'controller', 'reconcile', 'cli', 'demo'),
    'compose/ is pure composition, shared by the operator, the CLI and the demo.',
  ),
  layer(
    'operator/src/desired',
    O('kube', 'controller', 'reconcile', 'cli', 'demo'),
    'desired/ renders objects from specs with pure functions; no I/O.',
  ),
  layer('operator/src/controller', O('cli', 'demo'), 'the controller never loads the CLI or the demo.'),
  layer('operator/src/reconcile', O('cli', 'demo'), 'reconcilers never load the CLI or the demo.'),
];

export default tseslint.config(
  { ignores: ['**/dist/**', '**/node_modules/**', 'coverage/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      globals: {
        process: 'readonly',
        console: 'readonly',
        setTimeout: 'readonly',
        clearTimeout: 'readonly',
        Buffer: 'readonly',
        URL: 'readonly',
        setInterval: 'readonly',
        clearInterval: 'readonly',
        module: 'writable',
        require: 'readonly',
      },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-explicit-any': 'off',
    },
  },
  {
    files: ['**/*.ts'],
    languageOptions: { parserOptions: { project: TS_PROJECTS, tsconfigRootDir: import.meta.dirname } },
    plugins: { 'import-x': importX },
    settings: {
      ...importX.flatConfigs.typescript.settings,
      'import-x/resolver-next': [
        createTypeScriptImportResolver({ project: TS_PROJECTS, noWarnOnMultipleProjects: true }),
      ],
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      'import-x/no-cycle': 'error',
      'import-x/no-restricted-paths': ['error', { zones: LAYERS }],
    },
  },
  {
    // The operator's runtime reads the router's config through its narrow entry point only.
    files: ['operator/src/**/*.ts'],
    ignores: ['operator/src/demo/**', 'operator/src/cli/**'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: [
            {
              name: '@edfs/router',
              message: 'import @edfs/router/config: the operator process must not load the router runtime.',
            },
          ],
        },
      ],
    },
  },
);
