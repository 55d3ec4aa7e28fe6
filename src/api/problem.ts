import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ERROR_CODES, type ErrorCode, isTrailwardenError, TrailwardenError } from '../errors.js';
import type { WriteBlock } from '../store/store.js';
import { payloadTooLarge } from './body-budget.js';
import { discardUnreadBody } from './unread-body.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** What a 415 asks the caller to send instead (default: the body as application/json). */
    unsupportedMediaType?: string;
  }
}

/** RFC 9457 problem details, with our stable `code` and per-item `problems`. */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: ErrorCode;
  instance?: string;
  problems?: Array<{ index?: number; path?: string; message: string }>;
}

export const PROBLEM_TYPE_BASE = 'https://trailwarden.dev/errors/';

export function toProblem(err: TrailwardenError, instance?: string): Problem {
  const p: Problem = {
    type: `${PROBLEM_TYPE_BASE}${err.code}`,
    title: ERROR_CODES[err.code].title,
    status: err.status,
    detail: err.message,
    code: err.code,
  };
  if (instance) p.instance = instance;
  if (err.problems) p.problems = err.problems;
  return err.extensions ? { ...err.extensions, ...p } : p;
}

/** Fastify's own 4xx errors, mapped to our codes with messages that say what to do. */
function fromFastifyError(
  err: FastifyError,
  req: FastifyRequest,
  limits: ErrorLimits,
): TrailwardenError | undefined {
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return payloadTooLarge(limits.maxBodyBytes);
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new TrailwardenError(
        'TW_ERR_UNSUPPORTED_MEDIA_TYPE',
        req.routeOptions.config.unsupportedMediaType ?? 'send the body as application/json',
      );
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new TrailwardenError(
        'TW_ERR_MALFORMED_JSON',
        'the request body is empty; send at least one event',
      );
    case 'FST_ERR_VALIDATION':
      return new TrailwardenError(
        err.validationContext === 'body' ? 'TW_ERR_BAD_REQUEST' : 'TW_ERR_INVALID_PARAMETER',
        err.message,
      );
    case 'FST_ERR_BAD_URL':
      return new TrailwardenError(
        'TW_ERR_BAD_REQUEST',
        `the path ${pathOf(req)} has a malformed percent-encoding; encode each reserved byte as %XX`,
      );
    case 'FST_ERR_MAX_PARAM_LENGTH':
      return new TrailwardenError(
        'TW_ERR_URI_TOO_LONG',
        `a segment of the path ${pathOf(req).slice(0, 200)} is longer than ${limits.maxParamLength} characters, longer than any id a route takes; check the id`,
      );
    default:
      if (err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500) {
        return new TrailwardenError('TW_ERR_BAD_REQUEST', err.message);
      }
      return undefined;
  }
}

/** What the error handler needs to know of the server it answers for. */
export interface ErrorLimits {
  maxBodyBytes: number;
  /** The longest path parameter the router takes. */
  maxParamLength: number;
  /** Bytes of a body answered early (e.g. 401, 413) read and discarded before the connection closes. */
  maxDiscardBytes: number;
  /** The store's episode of failing writes, if one is on: it is logged once, not once per request. */
  storeWriteBlock: () => WriteBlock | undefined;
}

/** The one error handler: typed errors become problem+json; 5xx internals are logged, never shown. */
export function makeErrorHandler(limits: ErrorLimits) {
  return (err: FastifyError, req: FastifyRequest, reply: FastifyReply) => {
    let tw: TrailwardenError | undefined = isTrailwardenError(err) ? err : fromFastifyError(err, req, limits);
    if (!tw) {
      req.log.error({ err }, 'internal error');
      tw = new TrailwardenError(
        'TW_ERR_INTERNAL',
        `the server failed to handle this request; retry later and report request id ${req.id} if it persists`,
      );
    } else if (tw.code === 'TW_ERR_BUSY') {
      req.log.warn(tw.message);
    } else if (tw.status >= 500 && !(tw.code === 'TW_ERR_NOT_READY' && limits.storeWriteBlock())) {
      req.log.error({ err }, tw.message);
    }
    discardUnreadBody(req, reply, limits.maxDiscardBytes);
    if (tw.headers) void reply.headers(tw.headers);
    void reply
      .status(tw.status)
      .type('application/problem+json')
      .send(toProblem(tw, pathOf(req)));
  };
}

/** The path of a request, without its query. */
function pathOf(req: FastifyRequest): string {
  return req.url.split('?')[0] ?? '';
}

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;

/**
 * The answer for a request no route takes: 405 with `Allow` when the path
 * exists with other methods, else 404.
 */
export function noRouteProblem(app: FastifyInstance, req: FastifyRequest): TrailwardenError {
  const path = pathOf(req);
  const allowed = METHODS.filter((method) => app.findRoute({ method, url: path }) !== null);
  if (allowed.length > 0) {
    return new TrailwardenError(
      'TW_ERR_METHOD_NOT_ALLOWED',
      `${path} does not take ${req.method}; it takes ${allowed.join(', ')}`,
      { headers: { allow: allowed.join(', ') } },
    );
  }
  return new TrailwardenError('TW_ERR_NOT_FOUND', `no route ${req.method} ${path}; see /openapi.json`);
}
