import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import prettier from 'eslint-config-prettier';

const sources = ['packages/*/src/**/*.ts'];

export default tseslint.config(
  { ignores: ['**/dist/**', '**/node_modules/**', 'test-output/**', 'bench/results/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      globals: {
        process: 'readonly',
        console: 'readonly',
        setTimeout: 'readonly',
        clearTimeout: 'readonly',
        setInterval: 'readonly',
        clearInterval: 'readonly',
        setImmediate: 'readonly',
        queueMicrotask: 'readonly',
        Buffer: 'readonly',
        URL: 'readonly',
        fetch: 'readonly',
      },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-control-regex': 'off',
    },
  },
  {
    // Sources: type-aware checks (a promise is awaited, returned, or visibly let go with `void`)
    // and the size cap of STYLE.md. Import cycles, type-only ones included, are checked by
    // scripts/check-cycles.mjs (import-x/no-cycle skips type-only imports).
    files: sources,
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: { arguments: false, attributes: false } }],
      'max-lines': ['error', { max: 500, skipBlankLines: false, skipComments: false }],
    },
  },
  {
    // The gateway is its own program: it shares the option table, auth, HTTP helpers, the registry
    // and the Redis plumbing with the node, never the node's internals.
    files: ['packages/server/src/gateway/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: [
                '../node.js',
                '../node-context.js',
                '../engine.js',
                '../hub.js',
                '../channel-service.js',
                '../session/*',
                '../broker/*',
                '../history/*',
                '../presence/*',
                '../publish/*',
                '../cluster/*',
              ],
              message:
                'The gateway must not depend on node internals: move what it needs to a shared module (http/, auth/, redis/, registry/).',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['packages/server/public/**/*.js'],
    languageOptions: {
      globals: {
        window: 'readonly',
        document: 'readonly',
        WebSocket: 'readonly',
        localStorage: 'readonly',
        sessionStorage: 'readonly',
        location: 'readonly',
        btoa: 'readonly',
        atob: 'readonly',
        navigator: 'readonly',
        TextEncoder: 'readonly',
        history: 'readonly',
        URLSearchParams: 'readonly',
      },
    },
  },
  prettier,
);
