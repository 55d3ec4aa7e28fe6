import type { EventFilter, PageRequest } from '../store.js';

/** A WHERE clause and its parameters, for SQLite's `?` placeholders. */
export interface SqlFragment {
  where: string;
  params: unknown[];
}

/** Matches every tenant that has events, through the `tenants` table. */
export const ALL_TENANTS = 'tenant_id IN (SELECT tenant_id FROM tenants)';

/** Escapes LIKE wildcards so user text matches literally (ESCAPE '\'). */
export function escapeLike(text: string): string {
  return text.replace(/[\\%_]/g, (c) => `\\${c}`);
}

/** Translates a filter and a page bound into SQL over the `events` table. */
export function filterToSql(
  filter: EventFilter,
  page?: Pick<PageRequest, 'order' | 'afterSeq'>,
): SqlFragment {
  const clauses: string[] = [];
  const params: unknown[] = [];
  if (filter.tenantIds !== null) {
    if (filter.tenantIds.length === 0) return { where: '0', params: [] };
    clauses.push(`tenant_id IN (${filter.tenantIds.map(() => '?').join(',')})`);
    params.push(...filter.tenantIds);
  } else if (filter.action !== undefined) {
    // No index starts with action (it would cost every insert); naming every
    // tenant lets the (tenant_id, action, seq) index serve all-tenant queries.
    clauses.push(ALL_TENANTS);
  }
  if (filter.from !== undefined) {
    clauses.push('ts >= ?');
    params.push(filter.from);
  }
  if (filter.to !== undefined) {
    clauses.push('ts < ?');
    params.push(filter.to);
  }
  if (filter.action !== undefined) {
    if (filter.action.prefix) {
      // A range on the indexed column instead of LIKE, so the index is used:
      // every action starting with `p` sorts in [p, p + U+FFFF).
      clauses.push('action >= ? AND action < ?');
      params.push(filter.action.value, `${filter.action.value}\uffff`);
    } else {
      clauses.push('action = ?');
      params.push(filter.action.value);
    }
  }
  if (filter.actorId !== undefined) {
    clauses.push('actor_id = ?');
    params.push(filter.actorId);
  }
  if (filter.resourceType !== undefined) {
    clauses.push('resource_type = ?');
    params.push(filter.resourceType);
  }
  if (filter.resourceId !== undefined) {
    clauses.push('resource_id = ?');
    params.push(filter.resourceId);
  }
  if (filter.outcome !== undefined) {
    clauses.push('outcome = ?');
    params.push(filter.outcome);
  }
  if (filter.q !== undefined) {
    clauses.push("search LIKE ? ESCAPE '\\'");
    params.push(`%${escapeLike(filter.q.toLowerCase())}%`);
  }
  if (page?.afterSeq !== undefined) {
    clauses.push(page.order === 'asc' ? 'seq > ?' : 'seq < ?');
    params.push(page.afterSeq);
  }
  return { where: clauses.length === 0 ? '1' : clauses.join(' AND '), params };
}
