import { TrailwardenError } from '../../errors.js';
import { keyId, verifierKeyString } from '../../log/checkpoint.js';
import { intParam, rejectUnknownParams } from '../../query/query-params.js';
import type { CheckpointRecord } from '../../store/store.js';
import type { RoutePlugin } from '../route-access.js';
import { checkpointSchema, noQuery, param, problemResponses } from '../schemas.js';

function served(cp: CheckpointRecord) {
  return { tree_size: cp.treeSize, root_hash: cp.rootHash, issued_at: cp.issuedAt, note: cp.note };
}

/**
 * Signed checkpoints, consistency proofs and the verifier key (read).
 * Checkpoints cover the whole log (all tenants): a tenant's auditor needs
 * them to check its own events' inclusion proofs.
 */
export const checkpointRoutes: RoutePlugin = async (app, { ctx }) => {
  app.get(
    '/v1/checkpoints/latest',
    {
      schema: {
        summary: 'The latest signed checkpoint',
        tags: ['proofs'],
        querystring: noQuery,
        response: { 200: checkpointSchema, ...problemResponses },
      },
    },
    async (req) => {
      rejectUnknownParams(req.query, []);
      const cp = await ctx.store.latestCheckpoint();
      if (!cp) throw new TrailwardenError('TW_ERR_NOT_FOUND', 'no checkpoint yet: the log is empty');
      return served(cp);
    },
  );

  app.get(
    '/v1/checkpoints',
    {
      schema: {
        summary: 'Signed checkpoints by tree size, ascending',
        tags: ['proofs'],
        querystring: {
          type: 'object',
          properties: {
            from_size: param('Smallest tree size listed'),
            to_size: param('Largest tree size listed'),
            limit: param('Checkpoints per page, 1 to 1000 (default 100)'),
          },
        },
        response: {
          200: { type: 'object', properties: { checkpoints: { type: 'array', items: checkpointSchema } } },
          ...problemResponses,
        },
      },
    },
    async (req) => {
      const q = req.query;
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
      schema: {
        summary: 'Consistency proof between tree sizes from and to (RFC 9162 §2.1.4)',
        tags: ['proofs'],
        querystring: {
          type: 'object',
          properties: {
            from: param('The older tree size (1 ≤ from ≤ to)'),
            to: param('The newer tree size, at most the log size'),
          },
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
      const q = req.query;
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
      schema: {
        summary: 'The Ed25519 public key that signs checkpoints',
        tags: ['proofs'],
        querystring: noQuery,
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
      rejectUnknownParams(req.query, []);
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
};
