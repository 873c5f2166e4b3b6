// Errors cross thread and process boundaries as data (STYLE habit 9): a MoemuError keeps its code and context,
// anything else becomes MOEMU_ERR_INTERNAL naming the rank it happened on.
import { messageOf, MoemuError } from '../errors.js';
import type { SerializedError } from '../fabric/protocol.js';

export function serializeError(error: unknown, rank: number | null): SerializedError {
  if (error instanceof MoemuError) return { code: error.code, message: error.message, context: { ...error.context } };
  const message = messageOf(error);
  return { code: 'MOEMU_ERR_INTERNAL', message: rank === null ? message : `rank ${rank}: ${message}` };
}
