// The code of the MoemuError a call throws (tests assert codes, never message text).
import { MoemuError } from '../../src/errors.js';

export function codeOf(run: () => unknown): string | undefined {
  try {
    run();
  } catch (error) {
    return error instanceof MoemuError ? error.code : 'not a MoemuError';
  }
  return undefined;
}
