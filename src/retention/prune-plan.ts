import type { LegalHold, PrunePlanEntry, PruneRun, RetentionPolicy } from '../store/retention-store.js';

/**
 * The plan entry that stands for every tenant without a period of its own
 * (`retention.default_days`). No tenant id can be `*` (tenant ids are
 * A-Z a-z 0-9 . _ -), so it never collides with a tenant's entry.
 */
export const DEFAULT_TENANT_ENTRY = '*';

const DAY_MS = 86_400_000;

/** The instant before which events are past a period of `days`, as the store compares it (UTC ISO 8601). */
export function receivedBeforeFor(nowMs: number, days: number): string {
  return new Date(nowMs - days * DAY_MS).toISOString();
}

/** Each tenant's period: its own (set through the API) and the default for every other tenant. */
export function periodsOf(
  policies: readonly RetentionPolicy[],
  defaultDays: number | null,
): Array<{ tenantId: string; days: number }> {
  const periods = policies.map((p) => ({ tenantId: p.tenantId, days: p.days }));
  if (defaultDays !== null) periods.push({ tenantId: DEFAULT_TENANT_ENTRY, days: defaultDays });
  return periods;
}

/** The plan entry that applies to `tenantId`: its own, else the default one, else none (kept forever). */
export function entryFor(plan: readonly PrunePlanEntry[], tenantId: string): PrunePlanEntry | undefined {
  return plan.find((e) => e.tenantId === tenantId) ?? plan.find((e) => e.tenantId === DEFAULT_TENANT_ENTRY);
}

/**
 * Where a new run starts scanning. Below the lowest `throughSeq` of the last
 * finished run, every event that run could prune is gone; what is left
 * there is exempt, held, or of a tenant without a period, so a new run need
 * not read it again — unless that changed since: a hold was lifted, or a
 * tenant's period is new or shorter than that run's (a tenant coming under
 * the default counts as new). Then the scan starts again at 0.
 */
export function scanStart(
  lastDone: PruneRun | undefined,
  plan: readonly PrunePlanEntry[],
  holds: readonly LegalHold[],
): number {
  if (lastDone === undefined || lastDone.plan.length === 0) return 0;
  const liftedSince = holds.some((h) => h.liftedAt !== null && h.liftedAt >= lastDone.startedAt);
  if (liftedSince) return 0;
  for (const e of plan) {
    const before = lastDone.plan.find((p) => p.tenantId === e.tenantId);
    if (before === undefined || e.days < before.days) return 0;
  }
  return Math.min(...lastDone.plan.map((p) => p.throughSeq));
}
