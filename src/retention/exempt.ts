/**
 * Actions never pruned nor erased: they are the record of what the log
 * forgot (periods, holds, prune runs, erasures), and `verify` needs them to
 * tell pruning and erasure from deletion and tampering.
 */
/** One per (prune run, tenant): what the run pruned of that tenant (docs/retention.md). */
export const PRUNED_ACTION = 'log.retention.pruned';
/** One per erasure: what it redacted. */
export const ERASURE_ACTION = 'log.erasure.completed';

/**
 * Written only by the server: ingest refuses them (a publisher's forged
 * record could otherwise pass a deletion off as a prune run to `verify`).
 */
export const EXEMPT_ACTION_PREFIXES = ['log.retention.', 'log.legal_hold.', 'log.erasure.'] as const;

/** True when events of `action` are kept whatever their age or subject. */
export function isExemptAction(action: string): boolean {
  return EXEMPT_ACTION_PREFIXES.some((p) => action.startsWith(p));
}
