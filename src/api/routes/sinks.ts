import type { FastifyRequest } from 'fastify';
import type { Principal } from '../../auth/api-keys.js';
import { maskSecrets } from '../../delivery/sink-config.js';
import type { SinkRef } from '../../delivery/sink-ref.js';
import { TrailwardenError } from '../../errors.js';
import { type RawQuery, rejectUnknownParams, single } from '../../query/query-params.js';
import { type AppContext, denyForeignTenant, requestContext } from '../context.js';
import type { RoutePlugin } from '../route-access.js';
import { parsedParam, problemResponses } from '../schemas.js';

/** A sink's name in the path. */
export const nameParam = {
  type: 'object',
  properties: { name: { type: 'string', pattern: '^[a-z0-9][a-z0-9_-]{0,62}$' } },
  required: ['name'],
} as const;

/** `?tenant_id=` on a route naming one sink: whose sink the name means. */
export const tenantParam = parsedParam(
  "The sink's tenant, for an all-tenant admin (default: the operator's sinks); a tenant-bound admin's own is implied",
);

/** `?tenant_id=`, the only parameter of most sink routes. */
export const sinkQuery = { type: 'object', properties: { tenant_id: tenantParam } } as const;

/**
 * The sink a request names. Names are scoped per tenant: a tenant-bound
 * admin names its own tenant's sinks; an all-tenant admin names the
 * operator's sinks, or a tenant's with `?tenant_id=`. A tenant-bound admin
 * asking for another tenant is refused and recorded, as on every route.
 */
export async function sinkRef(
  ctx: AppContext,
  req: FastifyRequest,
  name: string,
  query: RawQuery,
  p: Principal,
  extraParams: readonly string[] = [],
): Promise<SinkRef> {
  rejectUnknownParams(query, ['tenant_id', ...extraParams]);
  const tenant = single(query, 'tenant_id');
  if (p.tenantId !== null) {
    if (tenant !== undefined && tenant !== p.tenantId) await denyForeignTenant(ctx, req, p, tenant, 'admin');
    return { name, tenantId: p.tenantId };
  }
  return { name, tenantId: tenant ?? null };
}

/** What the API shows of a sink: its settings with secrets masked, where it comes from, its tenant. */
function served(s: { raw: Record<string, unknown>; source: string; tenantId: string | null }) {
  return { ...maskSecrets(s.raw), source: s.source, tenant_id: s.tenantId };
}

/** The body as a sink configuration object; refuses anything else. */
function bodyObject(body: unknown): Record<string, unknown> {
  if (!isObject(body)) {
    throw new TrailwardenError('TW_ERR_BAD_REQUEST', 'send the sink configuration as a JSON object');
  }
  return body;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** Records a change to a sink in the log: the fields changed, never values. */
export function sinkAudit(ctx: AppContext) {
  return (
    action: string,
    p: Principal,
    req: FastifyRequest,
    name: string,
    metadata: Record<string, string | string[] | number>,
    tenantId: string | null,
  ) =>
    ctx.audit.record(action, p, {
      outcome: 'success',
      resource: { type: 'sink', id: name, name },
      metadata,
      request: requestContext(req),
      ...(tenantId === null ? {} : { tenantId }),
    });
}

/**
 * Sink administration (admin role). A tenant-bound admin manages only its
 * tenant's sinks — the per-customer "SIEM export" page of seed 001 — whose
 * names are its own (scoped per tenant), which carry only its tenant's
 * events, and which never touch the server's host or private networks
 * (`sink-policy.ts`). Every change is recorded in the log with the fields
 * changed, never values.
 */
export const sinkRoutes: RoutePlugin = async (app, { ctx }) => {
  const engine = ctx.delivery.admin;
  const record = sinkAudit(ctx);

  app.get(
    '/v1/sinks',
    {
      schema: {
        summary: 'List sinks (secrets masked)',
        tags: ['sinks'],
        querystring: {
          type: 'object',
          properties: {
            tenant_id: parsedParam(
              "Only this tenant's sinks (all-tenant admins; default: every sink); a tenant-bound admin sees its own",
            ),
          },
        },
      },
    },
    async (req) => {
      const p = req.principal;
      const query = req.query;
      rejectUnknownParams(query, ['tenant_id']);
      const tenant = single(query, 'tenant_id');
      if (p.tenantId !== null && tenant !== undefined && tenant !== p.tenantId) {
        await denyForeignTenant(ctx, req, p, tenant, 'admin');
      }
      return { sinks: engine.list(p, p.tenantId === null ? tenant : undefined).map(served) };
    },
  );

  app.post(
    '/v1/sinks',
    {
      schema: {
        summary: 'Create a sink',
        tags: ['sinks'],
        querystring: sinkQuery,
        response: problemResponses,
      },
    },
    async (req, reply) => {
      const p = req.principal;
      const query = req.query;
      rejectUnknownParams(query, ['tenant_id']);
      const asked = single(query, 'tenant_id');
      if (p.tenantId !== null && asked !== undefined && asked !== p.tenantId) {
        await denyForeignTenant(ctx, req, p, asked, 'admin');
      }
      // An all-tenant admin may create a sink in a tenant's scope; it then obeys that tenant's rules.
      const tenantId = p.tenantId ?? asked ?? null;
      const raw = bodyObject(req.body);
      // A tenant's sink gets filter.tenants: [tenant] (delivery/sink-policy.ts), which the record lists.
      const sink = await engine.create(raw, tenantId);
      await record(
        'sink.created',
        p,
        req,
        sink.name,
        { sink_type: sink.config.type, fields: Object.keys(sink.raw).sort() },
        tenantId,
      );
      return reply.status(201).send(served(sink));
    },
  );

  app.get(
    '/v1/sinks/:name',
    {
      schema: {
        summary: 'One sink (secrets masked)',
        tags: ['sinks'],
        params: nameParam,
        querystring: sinkQuery,
      },
    },
    async (req) => {
      const p = req.principal;
      return served(engine.entry(await sinkRef(ctx, req, req.params.name, req.query, p), p));
    },
  );

  app.patch(
    '/v1/sinks/:name',
    {
      schema: {
        summary: 'Change a sink (JSON merge patch); cursor and dead letters stay',
        tags: ['sinks'],
        params: nameParam,
        querystring: sinkQuery,
      },
    },
    async (req) => {
      const p = req.principal;
      const ref = await sinkRef(ctx, req, req.params.name, req.query, p);
      const patch = bodyObject(req.body);
      const e = engine.entry(ref, p);
      const merged = mergePatch(e.raw, patch) as Record<string, unknown>;
      const changed = await engine.update(ref, merged, p);
      await record('sink.updated', p, req, ref.name, { fields: changed.sort() }, e.tenantId);
      return served(engine.entry(ref, p));
    },
  );

  app.delete(
    '/v1/sinks/:name',
    { schema: { summary: 'Delete a sink', tags: ['sinks'], params: nameParam, querystring: sinkQuery } },
    async (req, reply) => {
      const p = req.principal;
      const ref = await sinkRef(ctx, req, req.params.name, req.query, p);
      const e = engine.entry(ref, p);
      await engine.remove(ref, p);
      await record('sink.deleted', p, req, ref.name, { sink_type: e.config.type }, e.tenantId);
      return reply.status(204).send();
    },
  );

  app.get(
    '/v1/sinks/:name/status',
    {
      schema: {
        summary: 'Health, lag and counters of a sink',
        tags: ['sinks'],
        params: nameParam,
        querystring: sinkQuery,
      },
    },
    async (req) => {
      const p = req.principal;
      return engine.status(await sinkRef(ctx, req, req.params.name, req.query, p), p);
    },
  );

  app.post(
    '/v1/sinks/:name/replay',
    {
      schema: {
        summary:
          'Move the cursor so delivery starts again at from_seq, or at the first event received at or after from_time',
        tags: ['sinks'],
        params: nameParam,
        querystring: sinkQuery,
        body: {
          type: 'object',
          additionalProperties: false,
          properties: {
            from_seq: { type: 'integer', minimum: 1 },
            from_time: { type: 'string', format: 'date-time' },
          },
        },
      },
    },
    async (req) => {
      const p = req.principal;
      const ref = await sinkRef(ctx, req, req.params.name, req.query, p);
      const body = req.body;
      if ((body.from_seq === undefined) === (body.from_time === undefined)) {
        throw new TrailwardenError('TW_ERR_BAD_REQUEST', 'give exactly one of from_seq or from_time');
      }
      const seq = await engine.replay(
        ref,
        body.from_seq !== undefined ? { seq: body.from_seq } : { time: body.from_time! },
        p,
      );
      const e = engine.entry(ref, p);
      await record('sink.replayed', p, req, ref.name, { from_seq: seq }, e.tenantId);
      return { name: ref.name, tenant_id: e.tenantId, from_seq: seq };
    },
  );

  for (const action of ['pause', 'resume'] as const) {
    app.post(
      `/v1/sinks/:name/${action}`,
      {
        schema: {
          summary: `${action === 'pause' ? 'Pause' : 'Resume (also re-enables a disabled sink)'} a sink`,
          tags: ['sinks'],
          params: nameParam,
          querystring: sinkQuery,
        },
      },
      async (req) => {
        const p = req.principal;
        const ref = await sinkRef(ctx, req, req.params.name, req.query, p);
        await engine.setPaused(ref, action === 'pause', p);
        const e = engine.entry(ref, p);
        await record(action === 'pause' ? 'sink.paused' : 'sink.resumed', p, req, ref.name, {}, e.tenantId);
        return engine.status(ref, p);
      },
    );
  }
};

/** RFC 7396 JSON merge patch. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return patch;
  const out: Record<string, unknown> =
    target !== null && typeof target === 'object' && !Array.isArray(target)
      ? { ...(target as Record<string, unknown>) }
      : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}
