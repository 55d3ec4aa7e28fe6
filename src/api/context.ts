import type { FastifyRequest } from 'fastify';
import type { RequestContext, SelfAudit } from '../audit/self-audit.js';
import type { Principal } from '../auth/api-keys.js';
import type { Config } from '../config/schema.js';
import type { DeliveryEngine } from '../delivery/delivery-engine.js';
import { TrailwardenError } from '../errors.js';
import type { IngestService } from '../ingest/ingest-service.js';
import type { ErasureService } from '../retention/erasure-service.js';
import type { Pruner } from '../retention/pruner.js';
import type { RetentionStore } from '../store/retention-store.js';
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
  /** Retention periods, legal holds, the pruner and erasures (src/retention/). */
  retention: { store: RetentionStore; pruner: Pruner; erasures: ErasureService };
  /** Flips to false while shutting down, so /readyz turns a load balancer away first. */
  ready: () => boolean;
}

/** Where a request came from, as the service's own audit events record it. */
export function requestContext(req: FastifyRequest): RequestContext {
  const ctx: RequestContext = { sourceIp: req.ip, requestId: String(req.id) };
  const ua = req.headers['user-agent'];
  if (typeof ua === 'string') ctx.userAgent = ua;
  return ctx;
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

/**
 * Refuses a tenant-bound key on a route only an all-tenant admin may use
 * (retention periods, prune runs, legal holds): these bind or protect a
 * tenant's data against the tenant itself.
 */
export function requireGlobalAdmin(principal: Principal, what: string): void {
  if (principal.tenantId === null) return;
  throw new TrailwardenError(
    'TW_ERR_FORBIDDEN',
    `this key is bound to tenant ${JSON.stringify(principal.tenantId)}; ${what} needs an admin key for all tenants — a global admin must do it`,
  );
}
