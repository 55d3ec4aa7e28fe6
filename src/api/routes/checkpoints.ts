import type { FastifyInstance } from 'fastify';
import { TrailwardenError } from '../../errors.js';
import { keyId, verifierKeyString } from '../../log/checkpoint.js';
import { intParam, type RawQuery, rejectUnknownParams } from '../../query/query-params.js';
import type { CheckpointRecord } from '../../store/store.js';
import { type AppContext, principalFor } from '../context.js';
import { checkpointSchema, problemResponses } from '../schemas.js';

function served(cp: CheckpointRecord) {
  return { tree_size: cp.treeSize, root_hash: cp.rootHash, issued_at: cp.issuedAt, note: cp.note };
}

/**
 * Signed checkpoints, consistency proofs and the verifier key. Checkpoints
 * cover the whole log (all tenants): a tenant's auditor needs them to check
 * its own events' inclusion proofs.
 */
export function checkpointRoutes(app: FastifyInstance, ctx: AppContext): void {
  app.get(
    '/v1/checkpoints/latest',
    {
      config: { access: 'read' },
      schema: {
        summary: 'The latest signed checkpoint',
        tags: ['proofs'],
        response: { 200: checkpointSchema, ...problemResponses },
      },
    },
    async (req) => {
      await principalFor(ctx, req, 'read');
      rejectUnknownParams(req.query as RawQuery, []);
      const cp = await ctx.store.latestCheckpoint();
      if (!cp) throw new TrailwardenError('TW_ERR_NOT_FOUND', 'no checkpoint yet: the log is empty');
      return served(cp);
    },
  );

  app.get(
    '/v1/checkpoints',
    {
      config: { access: 'read' },
      schema: {
        summary: 'Signed checkpoints by tree size, ascending',
        tags: ['proofs'],
        querystring: {
          type: 'object',
          properties: {
            from_size: { type: 'string' },
            to_size: { type: 'string' },
            limit: { type: 'string' },
          },
        },
        response: {
          200: { type: 'object', properties: { checkpoints: { type: 'array', items: checkpointSchema } } },
          ...problemResponses,
        },
      },
    },
    async (req) => {
      await principalFor(ctx, req, 'read');
      const q = req.query as RawQuery;
      rejectUnknownParams(q, ['from_size', 'to_size', 'limit']);
      const fromSize = intParam(q, 'from_size', 0, Number.MAX_SAFE_INTEGER);
      const toSize = intParam(q, 'to_size', 0, Number.MAX_SAFE_INTEGER);
      if (fromSize !== undefined && toSize !== undefined && fromSize > toSize) {
        throw new TrailwardenError('TW_ERR_INVALID_PARAMETER', 'from_size is larger than to_size; swap them');
      }
      const limit = intParam(q, 'limit', 1, 1000) ?? 100;
      const list = await ctx.store.listCheckpoints({
        limit,
        ...(fromSize === undefined ? {} : { fromSize }),
        ...(toSize === undefined ? {} : { toSize }),
      });
      return { checkpoints: list.map(served) };
    },
  );

  app.get(
    '/v1/checkpoints/consistency',
    {
      config: { access: 'read' },
      schema: {
        summary: 'Consistency proof between tree sizes from and to (RFC 9162 §2.1.4)',
        tags: ['proofs'],
        querystring: {
          type: 'object',
          properties: { from: { type: 'string' }, to: { type: 'string' } },
          required: ['from', 'to'],
        },
        response: {
          200: {
            type: 'object',
            properties: {
              from: { type: 'integer' },
              to: { type: 'integer' },
              from_root: { type: 'string' },
              to_root: { type: 'string' },
              hashes: { type: 'array', items: { type: 'string' } },
            },
          },
          ...problemResponses,
        },
      },
    },
    async (req) => {
      await principalFor(ctx, req, 'read');
      const q = req.query as RawQuery;
      rejectUnknownParams(q, ['from', 'to']);
      const size = await ctx.store.tree.size();
      const from = intParam(q, 'from', 1, Number.MAX_SAFE_INTEGER);
      const to = intParam(q, 'to', 1, Number.MAX_SAFE_INTEGER);
      if (from === undefined || to === undefined) {
        throw new TrailwardenError(
          'TW_ERR_INVALID_PARAMETER',
          'give both from and to (tree sizes, 1 ≤ from ≤ to)',
        );
      }
      if (from > to)
        throw new TrailwardenError('TW_ERR_INVALID_PARAMETER', 'from is larger than to; swap them');
      if (to > size) {
        throw new TrailwardenError('TW_ERR_TREE_SIZE', `to (${to}) is larger than the log (${size} events)`);
      }
      const [hashes, fromRoot, toRoot] = await Promise.all([
        from === to ? Promise.resolve([]) : ctx.store.tree.consistencyProof(from, to),
        ctx.store.tree.rootAt(from),
        ctx.store.tree.rootAt(to),
      ]);
      return {
        from,
        to,
        from_root: fromRoot.toString('base64'),
        to_root: toRoot.toString('base64'),
        hashes: hashes.map((h) => h.toString('base64')),
      };
    },
  );

  app.get(
    '/v1/checkpoints/key',
    {
      config: { access: 'read' },
      schema: {
        summary: 'The Ed25519 public key that signs checkpoints',
        tags: ['proofs'],
        response: {
          200: {
            type: 'object',
            properties: {
              origin: { type: 'string' },
              key_name: { type: 'string' },
              key_id: { type: 'string' },
              algorithm: { type: 'string' },
              public_key: { type: 'string' },
              verifier_key: { type: 'string' },
            },
          },
          ...problemResponses,
        },
      },
    },
    async (req) => {
      await principalFor(ctx, req, 'read');
      rejectUnknownParams(req.query as RawQuery, []);
      const { origin, keyName, publicKeyRaw } = ctx.log;
      return {
        origin,
        key_name: keyName,
        key_id: keyId(keyName, publicKeyRaw),
        algorithm: 'ed25519',
        public_key: publicKeyRaw.toString('base64'),
        verifier_key: verifierKeyString(keyName, publicKeyRaw),
      };
    },
  );
}
