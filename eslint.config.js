// Lint (`npm run lint`, part of `npm test`): what our code rules ask that a machine can check — 120 columns, no
// unused names, type-only imports marked as such, and in src/ at most 400 lines a file and 70 a function.
// test/architecture/lint.test.ts checks that each rule is on.
import tseslint from 'typescript-eslint';

const everywhere = {
  // A parameter a signature needs but the body does not use is named _x.
  '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
  '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
  'max-len': ['error', { code: 120 }],
};

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'cluster/**'] },
  {
    files: ['**/*.ts', '**/*.js'],
    languageOptions: { parser: tseslint.parser, ecmaVersion: 2023, sourceType: 'module' },
    plugins: { '@typescript-eslint': tseslint.plugin },
    rules: everywhere,
  },
  {
    files: ['src/**/*.ts'],
    rules: {
      'max-lines': ['error', { max: 400 }],
      'max-lines-per-function': ['error', { max: 70 }],
    },
  },
);
