/**
 * Every error Trailwarden reports to a user carries a stable code (`TW_ERR_…`),
 * an HTTP status and a message that says what to do. The HTTP layer turns them
 * into RFC 9457 problem+json; the CLI prints the message. `docs/errors.md`
 * lists every code (a test keeps the two in step).
 */
export const ERROR_CODES = {
  TW_ERR_BAD_REQUEST: { status: 400, title: 'Bad request' },
  TW_ERR_MALFORMED_JSON: { status: 400, title: 'Malformed JSON' },
  TW_ERR_DUPLICATE_KEY: { status: 400, title: 'Duplicate JSON key' },
  TW_ERR_INVALID_UTF8: { status: 400, title: 'Invalid UTF-8' },
  TW_ERR_UNKNOWN_PARAMETER: { status: 400, title: 'Unknown query parameter' },
  TW_ERR_INVALID_PARAMETER: { status: 400, title: 'Invalid query parameter' },
  TW_ERR_BAD_CURSOR: { status: 400, title: 'Bad cursor' },
  TW_ERR_UNAUTHENTICATED: { status: 401, title: 'Missing or invalid API key' },
  TW_ERR_FORBIDDEN: { status: 403, title: 'Forbidden' },
  TW_ERR_NOT_FOUND: { status: 404, title: 'Not found' },
  TW_ERR_METHOD_NOT_ALLOWED: { status: 405, title: 'Method not allowed' },
  TW_ERR_REQUEST_TIMEOUT: { status: 408, title: 'Request not received in time' },
  TW_ERR_EVENT_CONFLICT: { status: 409, title: 'Event ID already used with other content' },
  TW_ERR_AMBIGUOUS_EVENT_ID: { status: 409, title: 'Event ID exists in several tenants' },
  TW_ERR_SINK_EXISTS: { status: 409, title: 'Sink exists' },
  TW_ERR_SINK_READ_ONLY: { status: 409, title: 'Sink defined in the config file' },
  TW_ERR_SINK_DISABLED: { status: 409, title: 'Sink not enabled' },
  TW_ERR_DATA_DIR_LOCKED: { status: 409, title: 'Data folder in use' },
  TW_ERR_RUN_IN_PROGRESS: { status: 409, title: 'Prune run in progress' },
  TW_ERR_HOLD_LIFTED: { status: 409, title: 'Legal hold already lifted' },
  TW_ERR_PAYLOAD_TOO_LARGE: { status: 413, title: 'Payload too large' },
  TW_ERR_URI_TOO_LONG: { status: 414, title: 'Path segment too long' },
  TW_ERR_UNSUPPORTED_MEDIA_TYPE: { status: 415, title: 'Unsupported content type' },
  TW_ERR_INVALID_EVENTS: { status: 422, title: 'Invalid events' },
  TW_ERR_TREE_SIZE: { status: 422, title: 'Tree size out of range' },
  TW_ERR_INVALID_SINK: { status: 422, title: 'Invalid sink configuration' },
  TW_ERR_HEADERS_TOO_LARGE: { status: 431, title: 'Request headers too large' },
  TW_ERR_NOT_READY: { status: 503, title: 'Not ready' },
  TW_ERR_BUSY: { status: 503, title: 'Too many request bodies at once' },
  TW_ERR_EMIT_TIMEOUT: { status: 504, title: 'Sinks did not confirm in time' },
  TW_ERR_INTERNAL: { status: 500, title: 'Internal error' },
  TW_ERR_CONFIG: { status: 500, title: 'Invalid configuration' },
  TW_ERR_SECRETS_KEY_MISSING: { status: 500, title: 'No key to encrypt sink secrets' },
  TW_ERR_LOG_ROLLED_BACK: { status: 500, title: 'Log behind a checkpoint it published' },
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

/** One problem with one event of a batch, or one field of a request. */
export interface FieldProblem {
  /** Index of the event in the batch, when the problem is about an event. */
  index?: number;
  /** JSON path of the field, e.g. `actor.email` or `metadata.a.b`. */
  path?: string;
  message: string;
}

/** A user-facing error with a stable code. */
export class TrailwardenError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly problems: FieldProblem[] | undefined;
  readonly headers: Record<string, string> | undefined;
  /** Extra members of the problem document (RFC 9457 extensions). */
  readonly extensions: Record<string, unknown> | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    opts: {
      problems?: FieldProblem[];
      headers?: Record<string, string>;
      extensions?: Record<string, unknown>;
      cause?: unknown;
    } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'TrailwardenError';
    this.code = code;
    this.status = ERROR_CODES[code].status;
    this.problems = opts.problems;
    this.headers = opts.headers;
    this.extensions = opts.extensions;
  }
}

export function isTrailwardenError(err: unknown): err is TrailwardenError {
  return err instanceof TrailwardenError;
}
