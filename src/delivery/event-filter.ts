import type { StoredEvent } from '../event/event.js';
import { ERASURE_ACTION } from '../retention/exempt.js';
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

/**
 * A sink's whole filter: {@link compileFilter}, and with `erasure_notices`
 * every `log.erasure.completed` of the sink's tenants too (its `tenants`
 * still apply; its actions and outcomes do not), so a downstream copy
 * learns what to erase on its side.
 */
export function compileSinkFilter(
  config: Pick<SinkConfig, 'filter' | 'erasure_notices'>,
): (e: FilterFields) => boolean {
  const base = compileFilter(config.filter);
  if (!config.erasure_notices) return base;
  const tenants = config.filter.tenants === null ? null : new Set(config.filter.tenants);
  return (e) => base(e) || (e.action === ERASURE_ACTION && (tenants === null || tenants.has(e.tenant_id)));
}
