import { TrailwardenError } from '../../errors.js';
import { intParam } from '../../query/query-params.js';
import type { DeadLetter } from '../../store/store.js';
import type { RoutePlugin } from '../route-access.js';
import { parsedParam } from '../schemas.js';
import { nameParam, sinkAudit, sinkQuery, sinkRef, tenantParam } from './sinks.js';

/** What the API shows of a dead letter. */
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
 * A sink's dead letters (admin): the events it gave up on, and their
 * redrive. The sink is named as in the sink routes (sinks.ts `sinkRef`).
 */
export const deadLetterRoutes: RoutePlugin = async (app, { ctx }) => {
  const engine = ctx.delivery.admin;
  const record = sinkAudit(ctx);

  app.get(
    '/v1/sinks/:name/dead-letters',
    {
      schema: {
        summary: 'Events a sink gave up on',
        tags: ['sinks'],
        params: nameParam,
        querystring: {
          type: 'object',
          properties: {
            tenant_id: tenantParam,
            after_id: parsedParam('Start after this dead letter id (next_after_id of the previous page)'),
            limit: parsedParam('Dead letters per page, 1 to 1000 (default 100)'),
          },
        },
      },
    },
    async (req) => {
      const p = req.principal;
      const ref = await sinkRef(ctx, req, req.params.name, req.query, p, ['after_id', 'limit']);
      const q = req.query;
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
      schema: {
        summary: 'One dead letter with its event',
        tags: ['sinks'],
        params: {
          type: 'object',
          properties: { name: nameParam.properties.name, id: { type: 'string', pattern: '^[0-9]{1,15}$' } },
          required: ['name', 'id'],
        },
        querystring: sinkQuery,
      },
    },
    async (req) => {
      const p = req.principal;
      const ref = await sinkRef(ctx, req, req.params.name, req.query, p);
      const { id } = req.params;
      const [letter] = await engine.deadLettersById(ref, [Number(id)], p);
      if (!letter) throw new TrailwardenError('TW_ERR_NOT_FOUND', `no dead letter ${id} in sink ${ref.name}`);
      // The next kept event: not the letter's when retention pruned it (a gap in seq).
      const [next] = await ctx.store.readRange(letter.seq - 1, 1);
      const event = next?.seq === letter.seq ? next : null;
      return { ...servedLetter(letter), event, ...(event === null ? { event_pruned: true } : {}) };
    },
  );

  app.post(
    '/v1/sinks/:name/dead-letters/redrive',
    {
      schema: {
        summary:
          'Deliver dead letters again now (all of them, or the ids given); delivered ones are removed. Through a node that does not deliver the sink they are queued (202) for the node that does, which redrives them within a third of the lease time',
        tags: ['sinks'],
        params: nameParam,
        querystring: sinkQuery,
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
      const p = req.principal;
      const ref = await sinkRef(ctx, req, req.params.name, req.query, p);
      const body = req.body ?? {};
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
};
