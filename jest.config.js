// Two projects: `unit` (pure code and in-process servers, the fast inner loop) and `e2e`
// (real brokers, real API servers, browsers, Docker). TypeScript runs straight from source through swc.
const common = {
  extensionsToTreatAsEsm: ['.ts'],
  transform: {
    '^.+\\.ts$': [
      '@swc/jest',
      { jsc: { parser: { syntax: 'typescript' }, target: 'es2022' }, module: { type: 'es6' } },
    ],
  },
  moduleNameMapper: {
    '^@edfs/router$': '<rootDir>/router/src/index.ts',
    '^@edfs/router/config$': '<rootDir>/router/src/config/index.ts',
    '^@edfs/router/client$': '<rootDir>/router/src/client/resume.ts',
    '^@edfs/operator$': '<rootDir>/operator/src/index.ts',
    '^(\\.{1,2}/.*)\\.js$': '$1',
  },
  testEnvironment: 'node',
  rootDir: '.',
};

/**
 * e2e suites (file-name globs) that start no external server (no nats-server, Kafka, kube-apiserver, Chromium or
 * Docker), so they belong to the fast loop. They stay in e2e/test because their fixtures
 * (e2e/src/fixtures/federation, .../events) are shared with suites that do need brokers.
 */
const SERVER_FREE_E2E = ['federation*', 'drain', 'kafka-infra'];
/** The same names as a regular expression, for testPathIgnorePatterns. */
const SERVER_FREE_E2E_RE = SERVER_FREE_E2E.map((name) => name.replace('*', '[^/]*')).join('|');

export default {
  testTimeout: 30000,
  reporters: ['default', '<rootDir>/.ci/summary-reporter.cjs'],
  projects: [
    {
      ...common,
      displayName: 'unit',
      testMatch: [
        '<rootDir>/router/test/**/*.test.ts',
        '<rootDir>/operator/test/**/*.test.ts',
        ...SERVER_FREE_E2E.map((name) => `<rootDir>/e2e/test/${name}.test.ts`),
      ],
    },
    {
      ...common,
      displayName: 'e2e',
      testMatch: ['<rootDir>/e2e/test/**/*.test.ts'],
      testPathIgnorePatterns: ['/node_modules/', `^<rootDir>/e2e/test/(${SERVER_FREE_E2E_RE})\\.test\\.ts$`],
    },
  ],
};
