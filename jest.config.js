// Two projects: `unit` (pure code and in-process servers, the fast inner loop) and `e2e`
// (real brokers, real API servers, browsers). TypeScript runs straight from source through swc.
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
    '^@edfs/operator$': '<rootDir>/operator/src/index.ts',
    '^(\\.{1,2}/.*)\\.js$': '$1',
  },
  testEnvironment: 'node',
  rootDir: '.',
};

export default {
  testTimeout: 30000,
  reporters: ['default', '<rootDir>/.ci/summary-reporter.cjs'],
  projects: [
    {
      ...common,
      displayName: 'unit',
      testMatch: ['<rootDir>/router/test/**/*.test.ts', '<rootDir>/operator/test/**/*.test.ts'],
    },
    { ...common, displayName: 'e2e', testMatch: ['<rootDir>/e2e/test/**/*.test.ts'] },
  ],
};
