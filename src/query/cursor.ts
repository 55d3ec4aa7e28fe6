import { createHash } from 'node:crypto';
import { TrailwardenError } from '../errors.js';
import { canonicalJson } from '../event/canonical.js';
import type { EventFilter } from '../store/store.js';

interface CursorBody {
  v: 1;
  /** Last `seq` served. */
  s: number;
  o: 'asc' | 'desc';
  /** Fingerprint of the filter (tenant scope included) the cursor belongs to. */
  f: string;
}

function fingerprint(filter: EventFilter, order: 'asc' | 'desc'): string {
  return createHash('sha256').update(canonicalJson({ filter, order })).digest('base64url').slice(0, 16);
}

/** An opaque cursor: the last served `seq`, bound to the query that produced it. */
export function encodeCursor(filter: EventFilter, order: 'asc' | 'desc', lastSeq: number): string {
  const body: CursorBody = { v: 1, s: lastSeq, o: order, f: fingerprint(filter, order) };
  return Buffer.from(JSON.stringify(body)).toString('base64url');
}

/**
 * Reads a cursor back, refusing one that is malformed or was made for another
 * query (other filters, order or tenant scope): reusing it would silently skip
 * or repeat events.
 */
export function decodeCursor(cursor: string, filter: EventFilter, order: 'asc' | 'desc'): number {
  let body: CursorBody;
  try {
    if (!/^[A-Za-z0-9_-]{1,512}$/.test(cursor)) throw new Error('bad characters');
    body = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as CursorBody;
  } catch {
    throw new TrailwardenError(
      'TW_ERR_BAD_CURSOR',
      'cursor is not one this server issued; pass next_cursor unchanged',
    );
  }
  if (
    body?.v !== 1 ||
    !Number.isSafeInteger(body.s) ||
    body.s < 0 ||
    (body.o !== 'asc' && body.o !== 'desc')
  ) {
    throw new TrailwardenError(
      'TW_ERR_BAD_CURSOR',
      'cursor is not one this server issued; pass next_cursor unchanged',
    );
  }
  if (body.o !== order || body.f !== fingerprint(filter, order)) {
    throw new TrailwardenError(
      'TW_ERR_BAD_CURSOR',
      'cursor belongs to a query with other filters, order or key; repeat the original query parameters with it, or start without a cursor',
    );
  }
  return body.s;
}
