import type { StoredEvent } from '../event/event.js';
import type { SinkConfig } from './sink-config.js';

/** Compiles action patterns (`user.login`, `user.*`, `*`) into one predicate. */
export function actionMatcher(patterns: readonly string[]): (action: string) => boolean {
  if (patterns.includes('*')) return () => true;
  const exact = new Set(patterns.filter((p) => !p.endsWith('.*')));
  const prefixes = patterns.filter((p) => p.endsWith('.*')).map((p) => p.slice(0, -1));
  return (action) => exact.has(action) || prefixes.some((p) => action.startsWith(p));
}

/** The fields a sink filter looks at: columns of the log, so it runs without parsing the event. */
export type FilterFields = Pick<StoredEvent, 'tenant_id' | 'action' | 'outcome'>;

/**
 * A sink's filter as a predicate: include list first (none = everything), then
 * the exclude list, then tenants and outcomes — seed 003's include/exclude
 * semantics.
 */
export function compileFilter(filter: SinkConfig['filter']): (e: FilterFields) => boolean {
  const include = filter.include_actions === null ? null : actionMatcher(filter.include_actions);
  const exclude = filter.exclude_actions.length === 0 ? null : actionMatcher(filter.exclude_actions);
  const tenants = filter.tenants === null ? null : new Set(filter.tenants);
  const outcomes = filter.outcomes === null ? null : new Set<string>(filter.outcomes);
  return (e) =>
    (include === null || include(e.action)) &&
    (exclude === null || !exclude(e.action)) &&
    (tenants === null || tenants.has(e.tenant_id)) &&
    (outcomes === null || outcomes.has(e.outcome));
}
