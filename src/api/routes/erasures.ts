import type { Principal } from '../../auth/api-keys.js';
import { TrailwardenError } from '../../errors.js';
import { rejectUnknownParams, single } from '../../query/query-params.js';
import { retentionIdPattern } from '../../retention/ids.js';
import { keptRows } from '../../retention/kept-rows.js';
import { bodyFields, parseErasureSubject, parseReason, parseTenant } from '../../retention/request-input.js';
import type { ErasureRecord } from '../../store/retention-store.js';
import { type AppContext, denyForeignTenant } from '../context.js';
import type { RoutePlugin } from '../route-access.js';
import { noQuery, parsedParam, problemResponses } from '../schemas.js';

/** Erasures a list shows at most. */
const ERASURES_LISTED = 1000;

/** Events of an erasure one page lists. */
const ERASURE_EVENTS_PAGE = 1000;

const idPath = { type: 'object', properties: { id: { type: 'string' } }, required: ['id'] } as const;

/** An erasure as the API shows it: never its subject, which is the personal data. */
function servedErasure(e: ErasureRecord) {
  return {
    id: e.id,
    tenant_id: e.tenantId,
    subject_kind: e.subjectKind,
    reason: e.reason,
    state: e.state,
    matched: e.seqs.length + e.held,
    redacted: e.redacted,
    held: e.held,
    requested_at: e.requestedAt,
    requested_by: e.requestedBy,
    finished_at: e.finishedAt,
    completed_seq: e.completedSeq,
  };
}

/** The erasure `id` if this key may see it (its tenant's, or any for an all-tenant key); else 404. */
async function visibleErasure(ctx: AppContext, p: Principal, id: string): Promise<ErasureRecord> {
  const e = retentionIdPattern('erasure').test(id) ? await ctx.retention.store.getErasure(id) : undefined;
  if (e === undefined || (p.tenantId !== null && e.tenantId !== p.tenantId)) {
    throw new TrailwardenError('TW_ERR_NOT_FOUND', `no erasure ${JSON.stringify(id)} visible to this key`);
  }
  return e;
}

/** Reading erasures (auditors and admins; a tenant-bound key sees its tenant's). */
export const erasureReadRoutes: RoutePlugin = async (app, { ctx }) => {
  app.get(
    '/v1/erasures',
    {
      schema: {
        summary: 'Erasures, newest first',
        tags: ['erasures'],
        querystring: {
          type: 'object',
          properties: {
            tenant_id: parsedParam("Only this tenant's erasures (a tenant-bound key sees its own)"),
          },
        },
      },
    },
    async (req) => {
      const p = req.principal;
      rejectUnknownParams(req.query, ['tenant_id']);
      const asked = single(req.query, 'tenant_id');
      if (p.tenantId !== null && asked !== undefined && asked !== p.tenantId) {
        await denyForeignTenant(ctx, req, p, asked, 'read');
      }
      const tenantId = p.tenantId ?? asked;
      const list = await ctx.retention.store.listErasures({
        ...(tenantId === undefined ? {} : { tenantId }),
        limit: ERASURES_LISTED,
      });
      return { erasures: list.map(servedErasure) };
    },
  );

  app.get(
    '/v1/erasures/:id',
    { schema: { summary: 'One erasure', tags: ['erasures'], params: idPath, querystring: noQuery } },
    async (req) => {
      const p = req.principal;
      rejectUnknownParams(req.query, []);
      return servedErasure(await visibleErasure(ctx, p, req.params.id));
    },
  );

  app.get(
    '/v1/erasures/:id/events',
    {
      schema: {
        summary: 'The events an erasure redacted, by seq and event_id (so a SIEM can mask its copies)',
        tags: ['erasures'],
        params: idPath,
        querystring: {
          type: 'object',
          properties: {
            after_seq: parsedParam("Only events after this seq (the previous page's next_after_seq)"),
          },
        },
      },
    },
    async (req) => {
      const p = req.principal;
      rejectUnknownParams(req.query, ['after_seq']);
      const afterRaw = single(req.query, 'after_seq') ?? '0';
      if (!/^\d{1,15}$/.test(afterRaw)) {
        throw new TrailwardenError(
          'TW_ERR_BAD_REQUEST',
          `after_seq must be a whole number, got ${JSON.stringify(afterRaw)}`,
        );
      }
      const after = Number(afterRaw);
      const e = await visibleErasure(ctx, p, req.params.id);
      const page = e.seqs.filter((s) => s > after).slice(0, ERASURE_EVENTS_PAGE);
      // A seq retention pruned since is listed with no event_id.
      const kept = new Map((await keptRows(ctx.store, page)).map((r) => [r.seq, r.event_id]));
      const events = page.map((seq) => ({ seq, event_id: kept.get(seq) ?? null }));
      const more = page.length > 0 && e.seqs.at(-1)! > page.at(-1)!;
      return { erasure_id: e.id, events, next_after_seq: more ? page.at(-1)! : null };
    },
  );
};

/**
 * Requesting an erasure (admins). A tenant-bound admin may erase in its own
 * tenant only: for its customers' data it is the data controller.
 */
export const erasureAdminRoutes: RoutePlugin = async (app, { ctx }) => {
  app.post(
    '/v1/erasures',
    {
      schema: {
        summary: "Erase a person's personal fields from a tenant's events (answers once done)",
        tags: ['erasures'],
        querystring: noQuery,
        body: {
          description:
            '{"tenant_id", "subject": {actor_id | resource_id (+resource_type) | email}, "reason"}',
        },
        response: problemResponses,
      },
    },
    async (req) => {
      const p = req.principal;
      rejectUnknownParams(req.query, []);
      const body = bodyFields(req.body, ['tenant_id', 'subject', 'reason']);
      const given = body['tenant_id'];
      if (given === undefined && p.tenantId === null) {
        throw new TrailwardenError(
          'TW_ERR_BAD_REQUEST',
          'tenant_id is required: name the tenant whose events to erase in',
        );
      }
      const tenantId = given === undefined ? (p.tenantId ?? '') : parseTenant(given);
      if (p.tenantId !== null && tenantId !== p.tenantId)
        await denyForeignTenant(ctx, req, p, tenantId, 'admin');
      const subject = parseErasureSubject(body['subject']);
      const reason = parseReason(body['reason'], 'erasure');
      const result = await ctx.retention.erasures.erase({ tenantId, subject, reason }, p);
      const r = result.record;
      req.log.info(
        {
          erasure_id: r.id,
          tenant_id: tenantId,
          matched: result.matched,
          redacted: r.redacted,
          held: r.held,
        },
        `erasure ${r.id}: ${result.matched} events matched, ${r.redacted} redacted, ${r.held} held`,
      );
      return {
        id: r.id,
        tenant_id: r.tenantId,
        matched: result.matched,
        redacted: r.redacted,
        held: r.held,
        fields: result.fields,
        completed_seq: r.completedSeq,
      };
    },
  );
};
