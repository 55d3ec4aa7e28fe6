import type { FastifyRequest } from 'fastify';
import type { RequestContext, SelfAudit } from '../audit/self-audit.js';
import { type Principal, requirePermission } from '../auth/api-keys.js';
import type { Config } from '../config/schema.js';
import type { DeliveryEngine } from '../delivery/delivery-engine.js';
import { TrailwardenError } from '../errors.js';
import type { IngestService } from '../ingest/ingest-service.js';
import type { Store } from '../store/store.js';

/** The log's public identity, served at /v1/checkpoints/key. */
export interface LogIdentity {
  origin: string;
  keyName: string;
  publicKeyRaw: Buffer;
}

/** Everything the routes need, built once by `serve` (or by a test). */
export interface AppContext {
  store: Store;
  config: Config;
  ingest: IngestService;
  audit: SelfAudit;
  log: LogIdentity;
  delivery: DeliveryEngine;
  /** Flips to false while shutting down, so /readyz turns a load balancer away first. */
  ready: () => boolean;
}

export function requestContext(req: FastifyRequest): RequestContext {
  const ctx: RequestContext = { sourceIp: req.ip, requestId: String(req.id) };
  const ua = req.headers['user-agent'];
  if (typeof ua === 'string') ctx.userAgent = ua;
  return ctx;
}

/**
 * The caller, as the route's access hook found it on the headers (before the
 * body was read), checked for `need`; 403 when its role lacks it.
 */
export async function principalFor(
  _ctx: AppContext,
  req: FastifyRequest,
  need: 'write' | 'read' | 'admin',
): Promise<Principal> {
  const principal = req.principal;
  if (principal === undefined) {
    throw new Error(
      `${req.method} ${req.routeOptions.url ?? req.url} asks for a caller but declares config.access public`,
    );
  }
  requirePermission(principal, need);
  return principal;
}

/**
 * Refuses a tenant-bound key's attempt to reach another tenant, recording it
 * as `audit.access.denied`. The answer is the same whether or not the other
 * tenant or its events exist.
 */
export async function denyForeignTenant(
  ctx: AppContext,
  req: FastifyRequest,
  principal: Principal,
  requestedTenant: string,
  attempted: string,
): Promise<never> {
  await ctx.audit.record('audit.access.denied', principal, {
    outcome: 'denied',
    reason: 'TENANT_SCOPE',
    metadata: {
      attempted,
      requested_tenant: requestedTenant,
      method: req.method,
      path: req.url.split('?')[0] ?? '',
    },
    request: requestContext(req),
  });
  throw new TrailwardenError(
    'TW_ERR_FORBIDDEN',
    `this key is bound to tenant ${JSON.stringify(principal.tenantId)} and cannot access tenant ${JSON.stringify(requestedTenant)}`,
  );
}
