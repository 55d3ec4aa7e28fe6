/**
 * Actions never pruned nor erased: they are the record of what the log
 * forgot (periods, holds, prune runs, erasures), and `verify` needs them to
 * tell pruning and erasure from deletion and tampering.
 */
export const EXEMPT_ACTION_PREFIXES = ['log.retention.', 'log.legal_hold.', 'log.erasure.'] as const;

/** True when events of `action` are kept whatever their age or subject. */
export function isExemptAction(action: string): boolean {
  return EXEMPT_ACTION_PREFIXES.some((p) => action.startsWith(p));
}
