import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Principal } from '../../auth/api-keys.js';
import { maskSecrets } from '../../delivery/sink-config.js';
import type { SinkRef } from '../../delivery/sink-ref.js';
import { TrailwardenError } from '../../errors.js';
import { intParam, type RawQuery, rejectUnknownParams, single } from '../../query/query-params.js';
import type { DeadLetter } from '../../store/store.js';
import { type AppContext, denyForeignTenant, principalFor, requestContext } from '../context.js';
import { problemResponses } from '../schemas.js';

const nameParam = {
  type: 'object',
  properties: { name: { type: 'string', pattern: '^[a-z0-9][a-z0-9_-]{0,62}$' } },
  required: ['name'],
} as const;

/**
 * The sink a request names. Names are scoped per tenant: a tenant-bound
 * admin names its own tenant's sinks; an all-tenant admin names the
 * operator's sinks, or a tenant's with `?tenant_id=`. A tenant-bound admin
 * asking for another tenant is refused and recorded, as on every route.
 */
async function sinkRef(
  ctx: AppContext,
  req: FastifyRequest,
  p: Principal,
  extraParams: readonly string[] = [],
): Promise<SinkRef> {
  const query = req.query as RawQuery;
  rejectUnknownParams(query, ['tenant_id', ...extraParams]);
  const name = (req.params as { name: string }).name;
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

function bodyObject(req: FastifyRequest): Record<string, unknown> {
  const b = req.body;
  if (b === null || typeof b !== 'object' || Array.isArray(b)) {
    throw new TrailwardenError('TW_ERR_BAD_REQUEST', 'send the sink configuration as a JSON object');
  }
  return b as Record<string, unknown>;
}

function servedLetter(d: DeadLetter) {
  return {
    id: d.id,
    seq: d.seq,
    event_id: d.eventId,
    reason: d.reason,
    attempts: d.attempts,
    parked_at: d.parkedAt,
    last_attempt_at: d.lastAttemptAt,
    redrive_requested_at: d.redriveRequestedAt,
  };
}

/**
 * Sink administration (admin role). A tenant-bound admin manages only its
 * tenant's sinks — the per-customer "SIEM export" page of seed 001 — whose
 * names are its own (scoped per tenant), which carry only its tenant's
 * events, and which never touch the server's host or private networks
 * (`sink-policy.ts`). Every change is recorded in the log with the fields
 * changed, never values.
 */
export function sinkRoutes(app: FastifyInstance, ctx: AppContext): void {
  const engine = ctx.delivery.admin;
  const admin = async (req: FastifyRequest): Promise<Principal> => {
    const p = await principalFor(ctx, req, 'admin');
    return p;
  };
  const record = (
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

  app.get(
    '/v1/sinks',
    { config: { access: 'admin' }, schema: { summary: 'List sinks (secrets masked)', tags: ['sinks'] } },
    async (req) => {
      const p = await admin(req);
      const query = req.query as RawQuery;
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
      config: { access: 'admin' },
      schema: { summary: 'Create a sink', tags: ['sinks'], response: problemResponses },
    },
    async (req, reply) => {
      const p = await admin(req);
      const query = req.query as RawQuery;
      rejectUnknownParams(query, ['tenant_id']);
      const asked = single(query, 'tenant_id');
      if (p.tenantId !== null && asked !== undefined && asked !== p.tenantId) {
        await denyForeignTenant(ctx, req, p, asked, 'admin');
      }
      // An all-tenant admin may create a sink in a tenant's scope; it then obeys that tenant's rules.
      const tenantId = p.tenantId ?? asked ?? null;
      const raw = bodyObject(req);
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
      config: { access: 'admin' },
      schema: { summary: 'One sink (secrets masked)', tags: ['sinks'], params: nameParam },
    },
    async (req) => {
      const p = await admin(req);
      return served(engine.entry(await sinkRef(ctx, req, p), p));
    },
  );

  app.patch(
    '/v1/sinks/:name',
    {
      config: { access: 'admin' },
      schema: {
        summary: 'Change a sink (JSON merge patch); cursor and dead letters stay',
        tags: ['sinks'],
        params: nameParam,
      },
    },
    async (req) => {
      const p = await admin(req);
      const ref = await sinkRef(ctx, req, p);
      const patch = bodyObject(req);
      const e = engine.entry(ref, p);
      const merged = mergePatch(e.raw, patch) as Record<string, unknown>;
      const changed = await engine.update(ref, merged, p);
      await record('sink.updated', p, req, ref.name, { fields: changed.sort() }, e.tenantId);
      return served(engine.entry(ref, p));
    },
  );

  app.delete(
    '/v1/sinks/:name',
    { config: { access: 'admin' }, schema: { summary: 'Delete a sink', tags: ['sinks'], params: nameParam } },
    async (req, reply) => {
      const p = await admin(req);
      const ref = await sinkRef(ctx, req, p);
      const e = engine.entry(ref, p);
      await engine.remove(ref, p);
      await record('sink.deleted', p, req, ref.name, { sink_type: e.config.type }, e.tenantId);
      return reply.status(204).send();
    },
  );

  app.get(
    '/v1/sinks/:name/status',
    {
      config: { access: 'admin' },
      schema: { summary: 'Health, lag and counters of a sink', tags: ['sinks'], params: nameParam },
    },
    async (req) => {
      const p = await admin(req);
      return engine.status(await sinkRef(ctx, req, p), p);
    },
  );

  app.post(
    '/v1/sinks/:name/replay',
    {
      config: { access: 'admin' },
      schema: {
        summary:
          'Move the cursor so delivery starts again at from_seq, or at the first event received at or after from_time',
        tags: ['sinks'],
        params: nameParam,
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
      const p = await admin(req);
      const ref = await sinkRef(ctx, req, p);
      const body = (req.body ?? {}) as { from_seq?: number; from_time?: string };
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
        config: { access: 'admin' },
        schema: {
          summary: `${action === 'pause' ? 'Pause' : 'Resume (also re-enables a disabled sink)'} a sink`,
          tags: ['sinks'],
          params: nameParam,
        },
      },
      async (req) => {
        const p = await admin(req);
        const ref = await sinkRef(ctx, req, p);
        await engine.setPaused(ref, action === 'pause', p);
        const e = engine.entry(ref, p);
        await record(action === 'pause' ? 'sink.paused' : 'sink.resumed', p, req, ref.name, {}, e.tenantId);
        return engine.status(ref, p);
      },
    );
  }

  app.get(
    '/v1/sinks/:name/dead-letters',
    {
      config: { access: 'admin' },
      schema: { summary: 'Events a sink gave up on', tags: ['sinks'], params: nameParam },
    },
    async (req) => {
      const p = await admin(req);
      const ref = await sinkRef(ctx, req, p, ['after_id', 'limit']);
      const q = req.query as RawQuery;
      const afterId = intParam(q, 'after_id', 0, Number.MAX_SAFE_INTEGER);
      const limit = intParam(q, 'limit', 1, 1000) ?? 100;
      const letters = await engine.deadLetters(
        ref,
        { limit, ...(afterId === undefined ? {} : { afterId }) },
        p,
      );
      return {
        dead_letters: letters.map(servedLetter),
        next_after_id: letters.length === limit ? letters.at(-1)!.id : null,
      };
    },
  );

  app.get(
    '/v1/sinks/:name/dead-letters/:id',
    {
      config: { access: 'admin' },
      schema: {
        summary: 'One dead letter with its event',
        tags: ['sinks'],
        params: {
          type: 'object',
          properties: { name: nameParam.properties.name, id: { type: 'string', pattern: '^[0-9]{1,15}$' } },
          required: ['name', 'id'],
        },
      },
    },
    async (req) => {
      const p = await admin(req);
      const ref = await sinkRef(ctx, req, p);
      const { id } = req.params as { id: string };
      const [letter] = await engine.deadLettersById(ref, [Number(id)], p);
      if (!letter) throw new TrailwardenError('TW_ERR_NOT_FOUND', `no dead letter ${id} in sink ${ref.name}`);
      const [event] = await ctx.store.readRange(letter.seq - 1, 1);
      return { ...servedLetter(letter), event: event ?? null };
    },
  );

  app.post(
    '/v1/sinks/:name/dead-letters/redrive',
    {
      config: { access: 'admin' },
      schema: {
        summary:
          'Deliver dead letters again now (all of them, or the ids given); delivered ones are removed. Through a node that does not deliver the sink they are queued (202) for the node that does, which redrives them within a third of the lease time',
        tags: ['sinks'],
        params: nameParam,
        body: {
          type: ['object', 'null'],
          additionalProperties: false,
          properties: {
            ids: {
              type: 'array',
              // The ids dead letters get (the same bound as the {id} of GET …/dead-letters/{id}).
              items: { type: 'integer', minimum: 1, maximum: 999_999_999_999_999 },
              maxItems: 1000,
            },
          },
        },
      },
    },
    async (req, reply) => {
      const p = await admin(req);
      const ref = await sinkRef(ctx, req, p);
      const body = (req.body ?? {}) as { ids?: number[] };
      const ids = body.ids ?? (await engine.deadLetters(ref, { limit: 1000 }, p)).map((d) => d.id);
      const results = await engine.redrive(ref, ids, p);
      const e = engine.entry(ref, p);
      await record(
        'sink.dead_letters.redriven',
        p,
        req,
        ref.name,
        {
          count: ids.length,
          delivered: results.filter((r) => r.status === 'delivered').length,
          queued: results.filter((r) => r.status === 'queued').length,
        },
        e.tenantId,
      );
      if (results.some((r) => r.status === 'queued')) reply.code(202);
      return { results };
    },
  );
}

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
