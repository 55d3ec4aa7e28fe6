import type { FastifyRequest } from 'fastify';
import type { Principal } from '../../auth/api-keys.js';
import { TrailwardenError } from '../../errors.js';
import { rejectUnknownParams, single } from '../../query/query-params.js';
import { parseHoldMatch, servedHoldMatch } from '../../retention/hold-match.js';
import { newRetentionId, retentionIdPattern } from '../../retention/ids.js';
import { bodyFields, parseReason, parseTenant } from '../../retention/request-input.js';
import type { LegalHold } from '../../store/retention-store.js';
import { type AppContext, denyForeignTenant, requestContext, requireGlobalAdmin } from '../context.js';
import type { RoutePlugin } from '../route-access.js';
import { noQuery, parsedParam, problemResponses } from '../schemas.js';

/** Holds a list shows at most. */
const HOLDS_LISTED = 1000;

const idPath = { type: 'object', properties: { id: { type: 'string' } }, required: ['id'] } as const;

function servedHold(h: LegalHold) {
  return {
    id: h.id,
    tenant_id: h.tenantId,
    match: servedHoldMatch(h.match),
    reason: h.reason,
    active: h.liftedAt === null,
    created_at: h.createdAt,
    created_by: h.createdBy,
    lifted_at: h.liftedAt,
    lifted_by: h.liftedBy,
    lift_reason: h.liftReason,
  };
}

/** The hold `id` names, if `principal` may see it (another tenant's is answered as absent). */
async function visibleHold(ctx: AppContext, id: string, principal: Principal): Promise<LegalHold> {
  const hold = retentionIdPattern('hold').test(id) ? await ctx.retention.store.getHold(id) : undefined;
  if (hold === undefined || (principal.tenantId !== null && hold.tenantId !== principal.tenantId)) {
    throw new TrailwardenError('TW_ERR_NOT_FOUND', `no legal hold ${JSON.stringify(id)} visible to this key`);
  }
  return hold;
}

/** Records a hold placed or lifted, under the hold's tenant. */
function recordHold(ctx: AppContext, req: FastifyRequest, action: string, hold: LegalHold, reason: string) {
  return ctx.audit.record(action, req.principal, {
    outcome: 'success',
    tenantId: hold.tenantId,
    resource: { type: 'legal_hold', id: hold.id },
    metadata: { hold_id: hold.id, match: { ...servedHoldMatch(hold.match) }, reason },
    request: requestContext(req),
  });
}

/** Reading legal holds (auditors and admins; a tenant-bound key sees its tenant's). */
export const legalHoldReadRoutes: RoutePlugin = async (app, { ctx }) => {
  app.get(
    '/v1/legal-holds',
    {
      schema: {
        summary: 'Legal holds, newest first',
        tags: ['legal holds'],
        querystring: {
          type: 'object',
          properties: {
            tenant_id: parsedParam("Only this tenant's holds (a tenant-bound key sees its own)"),
            active: parsedParam('true: only holds not lifted'),
          },
        },
      },
    },
    async (req) => {
      const p = req.principal;
      rejectUnknownParams(req.query, ['tenant_id', 'active']);
      const asked = single(req.query, 'tenant_id');
      if (p.tenantId !== null && asked !== undefined && asked !== p.tenantId) {
        await denyForeignTenant(ctx, req, p, asked, 'read');
      }
      const active = single(req.query, 'active');
      if (active !== undefined && active !== 'true' && active !== 'false') {
        throw new TrailwardenError('TW_ERR_INVALID_PARAMETER', 'active must be true or false');
      }
      const tenantId = p.tenantId ?? asked;
      const holds = await ctx.retention.store.listHolds({
        ...(tenantId === undefined ? {} : { tenantId }),
        activeOnly: active === 'true',
        limit: HOLDS_LISTED,
      });
      return { legal_holds: holds.map(servedHold) };
    },
  );

  app.get(
    '/v1/legal-holds/:id',
    { schema: { summary: 'One legal hold', tags: ['legal holds'], params: idPath, querystring: noQuery } },
    async (req) => {
      rejectUnknownParams(req.query, []);
      return servedHold(await visibleHold(ctx, req.params.id, req.principal));
    },
  );
};

/**
 * Placing and lifting legal holds: admins for all tenants only. A hold
 * exists to stop a tenant destroying evidence, so the tenant's own admin
 * can neither place nor lift one.
 */
export const legalHoldAdminRoutes: RoutePlugin = async (app, { ctx }) => {
  app.post(
    '/v1/legal-holds',
    {
      schema: {
        summary: "Place a legal hold on a tenant's events (all of them, or those `match` selects)",
        tags: ['legal holds'],
        querystring: noQuery,
        body: { description: '{"tenant_id", "match"?, "reason"}' },
        response: problemResponses,
      },
    },
    async (req, reply) => {
      const p = req.principal;
      requireGlobalAdmin(p, 'placing a legal hold');
      rejectUnknownParams(req.query, []);
      const body = bodyFields(req.body, ['tenant_id', 'match', 'reason']);
      const tenantId = parseTenant(body['tenant_id']);
      const match = parseHoldMatch(body['match']);
      const reason = parseReason(body['reason'], 'legal hold');
      const hold: LegalHold = {
        id: newRetentionId('hold'),
        tenantId,
        match,
        reason,
        createdAt: new Date().toISOString(),
        createdBy: p.keyId,
        liftedAt: null,
        liftedBy: null,
        liftReason: null,
      };
      await ctx.retention.store.createHold(hold);
      await recordHold(ctx, req, 'log.legal_hold.placed', hold, reason);
      req.log.info(
        { hold_id: hold.id, tenant_id: tenantId },
        `legal hold ${hold.id} placed on tenant ${tenantId}`,
      );
      return reply.status(201).header('location', `/v1/legal-holds/${hold.id}`).send(servedHold(hold));
    },
  );

  app.post(
    '/v1/legal-holds/:id/lift',
    {
      schema: {
        summary: 'Lift a legal hold: the next prune run may prune what it held',
        tags: ['legal holds'],
        params: idPath,
        querystring: noQuery,
        body: { description: '{"reason"}' },
        response: problemResponses,
      },
    },
    async (req) => {
      const p = req.principal;
      requireGlobalAdmin(p, 'lifting a legal hold');
      rejectUnknownParams(req.query, []);
      const reason = parseReason(bodyFields(req.body, ['reason'])['reason'], 'lifting a legal hold');
      const hold = await visibleHold(ctx, req.params.id, p);
      const lifted = await ctx.retention.store.liftHold(hold.id, {
        liftedAt: new Date().toISOString(),
        liftedBy: p.keyId,
        liftReason: reason,
      });
      if (lifted === undefined) {
        throw new TrailwardenError(
          'TW_ERR_HOLD_LIFTED',
          `legal hold ${hold.id} was lifted already (at ${hold.liftedAt})`,
        );
      }
      await recordHold(ctx, req, 'log.legal_hold.lifted', lifted, reason);
      req.log.info({ hold_id: hold.id, tenant_id: hold.tenantId }, `legal hold ${hold.id} lifted`);
      return servedHold(lifted);
    },
  );
};
