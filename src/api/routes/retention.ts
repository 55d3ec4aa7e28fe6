import type { FastifyRequest } from 'fastify';
import type { Principal } from '../../auth/api-keys.js';
import { TrailwardenError } from '../../errors.js';
import { rejectUnknownParams } from '../../query/query-params.js';
import { retentionIdPattern } from '../../retention/ids.js';
import { DEFAULT_TENANT_ENTRY } from '../../retention/prune-plan.js';
import { bodyFields, parseDays, parseTenant } from '../../retention/request-input.js';
import type { PruneRun, RetentionPolicy } from '../../store/retention-store.js';
import { type AppContext, requestContext, requireGlobalAdmin } from '../context.js';
import type { RoutePlugin } from '../route-access.js';
import { noQuery, problemResponses } from '../schemas.js';

/** Runs `GET /v1/retention` shows. */
const RUNS_SHOWN = 10;

const tenantPath = {
  type: 'object',
  properties: { tenant: { type: 'string' } },
  required: ['tenant'],
} as const;
const runPath = { type: 'object', properties: { id: { type: 'string' } }, required: ['id'] } as const;

function servedPolicy(p: RetentionPolicy) {
  return { tenant_id: p.tenantId, days: p.days, updated_at: p.updatedAt, updated_by: p.updatedBy };
}

/**
 * A run as `principal` may see it: an all-tenant key sees the whole plan
 * (tenant `*` is the default period) and every count; a tenant-bound key
 * sees only the cut that applied to its tenant and how many of its events
 * the run pruned.
 */
async function servedRun(ctx: AppContext, run: PruneRun, principal: Principal) {
  const own = principal.tenantId;
  const plan =
    own === null
      ? run.plan
      : run.plan
          .filter((e) => e.tenantId === own)
          .concat(
            run.plan.some((e) => e.tenantId === own)
              ? []
              : run.plan.filter((e) => e.tenantId === DEFAULT_TENANT_ENTRY),
          );
  const pruned =
    own === null
      ? run.pruned
      : ((await ctx.retention.store.prunedByRun(run.id)).find((g) => g.tenantId === own)?.count ?? 0);
  return {
    id: run.id,
    state: run.state,
    started_at: run.startedAt,
    finished_at: run.finishedAt,
    ...(own === null ? { scanned_through: run.scannedThrough } : {}),
    pruned,
    plan: plan.map((e) => ({
      tenant_id: e.tenantId,
      days: e.days,
      received_before: e.receivedBefore,
      through_seq: e.throughSeq,
    })),
  };
}

/** Records a change of a tenant's period in the log, under that tenant. */
function recordChange(
  ctx: AppContext,
  req: FastifyRequest,
  tenantId: string,
  days: number | null,
  previous: number | null,
) {
  return ctx.audit.record('log.retention.changed', req.principal, {
    outcome: 'success',
    tenantId,
    resource: { type: 'retention_policy', id: tenantId },
    metadata: { days, previous },
    request: requestContext(req),
  });
}

/** Reading retention (auditors and admins; a tenant-bound key sees its own tenant only). */
export const retentionReadRoutes: RoutePlugin = async (app, { ctx }) => {
  app.get(
    '/v1/retention',
    {
      schema: {
        summary: 'Retention periods and the last prune runs',
        tags: ['retention'],
        querystring: noQuery,
      },
    },
    async (req) => {
      const p = req.principal;
      rejectUnknownParams(req.query, []);
      const r = ctx.config.retention;
      const policies = await ctx.retention.store.listPolicies();
      const runs = await ctx.retention.store.listPruneRuns(RUNS_SHOWN);
      return {
        default_days: r.default_days,
        minimum_days: r.minimum_days,
        prune_interval_ms: r.prune_interval_ms,
        ...(p.tenantId === null ? { prune_after_delivered: r.prune_after_delivered } : {}),
        tenants: policies.filter((x) => p.tenantId === null || x.tenantId === p.tenantId).map(servedPolicy),
        runs: await Promise.all(runs.map((run) => servedRun(ctx, run, p))),
      };
    },
  );

  app.get(
    '/v1/retention/runs/:id',
    { schema: { summary: 'One prune run', tags: ['retention'], params: runPath, querystring: noQuery } },
    async (req) => {
      rejectUnknownParams(req.query, []);
      const id = req.params.id;
      const run = retentionIdPattern('run').test(id) ? await ctx.retention.store.getPruneRun(id) : undefined;
      if (run === undefined)
        throw new TrailwardenError('TW_ERR_NOT_FOUND', `no prune run ${JSON.stringify(id)}`);
      return servedRun(ctx, run, req.principal);
    },
  );
};

/**
 * Setting retention (admins for all tenants only: a retention period is a
 * property of the tenant's plan, not something the tenant shortens for
 * itself; a run is the operator's).
 */
export const retentionAdminRoutes: RoutePlugin = async (app, { ctx }) => {
  app.put(
    '/v1/retention/tenants/:tenant',
    {
      schema: {
        summary: "Set a tenant's retention period in days",
        tags: ['retention'],
        params: tenantPath,
        querystring: noQuery,
        body: { description: '{"days": N}' },
        response: problemResponses,
      },
    },
    async (req) => {
      const p = req.principal;
      requireGlobalAdmin(p, "setting a tenant's retention period");
      rejectUnknownParams(req.query, []);
      const tenantId = parseTenant(req.params.tenant, 'the tenant in the path');
      const days = parseDays(bodyFields(req.body, ['days'])['days'], ctx.config.retention.minimum_days);
      const previous = await ctx.retention.store.getPolicy(tenantId);
      const policy: RetentionPolicy = {
        tenantId,
        days,
        updatedAt: new Date().toISOString(),
        updatedBy: p.keyId,
      };
      await ctx.retention.store.putPolicy(policy);
      await recordChange(ctx, req, tenantId, days, previous?.days ?? null);
      return servedPolicy(policy);
    },
  );

  app.delete(
    '/v1/retention/tenants/:tenant',
    {
      schema: {
        summary: "Remove a tenant's own period (the default applies again)",
        tags: ['retention'],
        params: tenantPath,
        querystring: noQuery,
      },
    },
    async (req, reply) => {
      const p = req.principal;
      requireGlobalAdmin(p, "removing a tenant's retention period");
      rejectUnknownParams(req.query, []);
      const tenantId = parseTenant(req.params.tenant, 'the tenant in the path');
      const previous = await ctx.retention.store.getPolicy(tenantId);
      if (previous === undefined || !(await ctx.retention.store.deletePolicy(tenantId))) {
        throw new TrailwardenError(
          'TW_ERR_NOT_FOUND',
          `tenant ${JSON.stringify(tenantId)} has no retention period of its own; the default applies`,
        );
      }
      await recordChange(ctx, req, tenantId, null, previous.days);
      return reply.status(204).send();
    },
  );

  app.post(
    '/v1/retention/runs',
    { schema: { summary: 'Start a prune run now', tags: ['retention'], querystring: noQuery } },
    async (req, reply) => {
      const p = req.principal;
      requireGlobalAdmin(p, 'starting a prune run');
      rejectUnknownParams(req.query, []);
      const run = await ctx.retention.pruner.runNow();
      return reply
        .status(202)
        .header('location', `/v1/retention/runs/${run.id}`)
        .send(await servedRun(ctx, run, p));
    },
  );
};
