// Lint: the limits of ../shared/STYLE.md that a machine can check. `npm run lint` (part of `npm test`).
import tseslint from 'typescript-eslint';

const everywhere = {
  '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
  '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
  'max-len': ['error', { code: 120, ignoreUrls: true }],
};

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'cluster/**'] },
  {
    files: ['**/*.ts'],
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
