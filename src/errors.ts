// The one error type of moemu. Every failure carries a stable code, the class that fixes the process exit
// code, and the context DESIGN.md asks for (rank, node, link, op, step, YAML path). Codes are explained in
// docs/errors.md; tests assert `code`, never message text.

export const EXIT_CODES = {
  ok: 0,
  internal: 1,
  badInput: 2,
  expectationFailed: 3,
  faultNotRecovered: 4,
} as const;

export type ErrorClass = Exclude<keyof typeof EXIT_CODES, 'ok'>;

export const ERROR_CODES = {
  MOEMU_ERR_SHAPE: 'badInput',
  MOEMU_ERR_DTYPE: 'badInput',
  MOEMU_ERR_CONFIG: 'badInput',
  MOEMU_ERR_SCENARIO: 'badInput',
  MOEMU_ERR_YAML: 'badInput',
  MOEMU_ERR_FILE: 'badInput',
  MOEMU_ERR_SAFETENSORS: 'badInput',
  MOEMU_ERR_CHECKPOINT: 'badInput',
  MOEMU_ERR_OOM: 'badInput',
  MOEMU_ERR_AUTH: 'badInput',
  MOEMU_ERR_FRAME: 'badInput',
  MOEMU_ERR_WATCHDOG: 'faultNotRecovered',
  MOEMU_ERR_PEER_LOST: 'faultNotRecovered',
  MOEMU_ERR_LINK: 'faultNotRecovered',
  MOEMU_ERR_GPU: 'faultNotRecovered',
  MOEMU_ERR_SDC: 'faultNotRecovered',
  MOEMU_ERR_EXPECTATION: 'expectationFailed',
  MOEMU_ERR_CHECK: 'expectationFailed',
  MOEMU_ERR_NONFINITE: 'expectationFailed',
  MOEMU_ERR_INTERNAL: 'internal',
} as const satisfies Record<string, ErrorClass>;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface ErrorContext {
  rank?: number;
  node?: number;
  link?: string;
  op?: string;
  step?: number;
  path?: string;
  file?: string;
}

export class MoemuError extends Error {
  readonly code: ErrorCode;
  readonly errorClass: ErrorClass;
  readonly context: ErrorContext;
  /** The message without the context appended: for rebuilding the error with another context. */
  readonly detail: string;

  /** `formatted`: the message already names its context (an error rebuilt from data sent by another thread). */
  constructor(code: ErrorCode, message: string, context: ErrorContext = {}, formatted = false) {
    super(formatted ? message : withContext(message, context));
    this.name = 'MoemuError';
    this.code = code;
    this.errorClass = ERROR_CODES[code];
    this.context = context;
    this.detail = message;
  }

  get exitCode(): number {
    return EXIT_CODES[this.errorClass];
  }
}

function withContext(message: string, context: ErrorContext): string {
  const parts = Object.entries(context)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k} ${v}`);
  return parts.length === 0 ? message : `${message} (${parts.join(', ')})`;
}

export function moemuError(code: ErrorCode, message: string, context?: ErrorContext): MoemuError {
  return new MoemuError(code, message, context);
}

/** Rebuilds an error that crossed a thread or process boundary as data (unknown codes become internal). */
export function errorFromData(data: { code: string; message: string; context?: ErrorContext }): MoemuError {
  const code = (data.code in ERROR_CODES ? data.code : 'MOEMU_ERR_INTERNAL') as ErrorCode;
  return new MoemuError(code, data.message, data.context ?? {}, true);
}

/** Programmer errors: an invariant that must hold. Never used for bad input from the world. */
export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new MoemuError('MOEMU_ERR_INTERNAL', `assertion failed: ${message}`);
}

/** What a thrown value says: an Error's message, anything else as text. */
export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export function exitCodeOf(error: unknown): number {
  return error instanceof MoemuError ? error.exitCode : EXIT_CODES.internal;
}
