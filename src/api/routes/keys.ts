import { createApiKey } from '../../auth/api-keys.js';
import { TrailwardenError } from '../../errors.js';
import { rejectUnknownParams } from '../../query/query-params.js';
import { type ApiKeyRecord, ROLES } from '../../store/store.js';
import { requestContext } from '../context.js';
import type { RoutePlugin } from '../route-access.js';
import { noQuery, problemResponses } from '../schemas.js';

function served(k: ApiKeyRecord) {
  return {
    key_id: k.keyId,
    name: k.name,
    role: k.role,
    tenant_id: k.tenantId,
    created_at: k.createdAt,
    revoked_at: k.revokedAt,
  };
}

const TENANT_RE = /^[A-Za-z0-9._-]{1,128}$/;

/**
 * API key management (admin). A tenant-bound admin manages only keys of its
 * own tenant. Every change is recorded in the log; the token is returned once
 * and never logged.
 */
export const keyRoutes: RoutePlugin = async (app, { ctx }) => {
  app.get(
    '/v1/keys',
    { schema: { summary: 'List API keys (no secrets)', tags: ['keys'], querystring: noQuery } },
    async (req) => {
      const principal = req.principal;
      rejectUnknownParams(req.query, []);
      const keys = await ctx.store.listKeys();
      return {
        keys: keys
          .filter((k) => principal.tenantId === null || k.tenantId === principal.tenantId)
          .map(served),
      };
    },
  );

  app.post(
    '/v1/keys',
    {
      schema: {
        summary: 'Create an API key; the token is shown once',
        tags: ['keys'],
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['role', 'name'],
          properties: {
            role: { type: 'string', enum: ROLES },
            name: { type: 'string', minLength: 1, maxLength: 128 },
            tenant_id: { type: ['string', 'null'] },
          },
        },
        response: problemResponses,
      },
    },
    async (req, reply) => {
      const principal = req.principal;
      const body = req.body;
      const tenantId = body.tenant_id ?? null;
      if (tenantId !== null && !TENANT_RE.test(tenantId)) {
        throw new TrailwardenError(
          'TW_ERR_BAD_REQUEST',
          'tenant_id must be 1-128 characters of A-Z a-z 0-9 . _ -',
        );
      }
      if (principal.tenantId !== null && tenantId !== principal.tenantId) {
        throw new TrailwardenError(
          'TW_ERR_FORBIDDEN',
          `this admin key is bound to tenant ${JSON.stringify(principal.tenantId)}; it can only create keys for that tenant`,
        );
      }
      const { token, record } = await createApiKey(ctx.store, { role: body.role, tenantId, name: body.name });
      await ctx.audit.record('key.created', principal, {
        outcome: 'success',
        resource: { type: 'api_key', id: record.keyId, name: record.name },
        metadata: { role: record.role, tenant_id: record.tenantId },
        request: requestContext(req),
        ...(tenantId === null ? {} : { tenantId }),
      });
      return reply.status(201).send({ ...served(record), token });
    },
  );

  app.delete(
    '/v1/keys/:key_id',
    {
      schema: {
        summary: 'Revoke an API key',
        tags: ['keys'],
        params: { type: 'object', properties: { key_id: { type: 'string' } }, required: ['key_id'] },
      },
    },
    async (req, reply) => {
      const principal = req.principal;
      const keyId = req.params.key_id;
      const key = await ctx.store.getKey(keyId);
      if (!key || (principal.tenantId !== null && key.tenantId !== principal.tenantId)) {
        throw new TrailwardenError('TW_ERR_NOT_FOUND', `no key ${JSON.stringify(keyId)} visible to this key`);
      }
      const revoked = await ctx.store.revokeKey(keyId, new Date().toISOString());
      if (revoked) {
        await ctx.audit.record('key.revoked', principal, {
          outcome: 'success',
          resource: { type: 'api_key', id: key.keyId, name: key.name },
          request: requestContext(req),
          ...(key.tenantId === null ? {} : { tenantId: key.tenantId }),
        });
      }
      return reply.status(204).send();
    },
  );
};
