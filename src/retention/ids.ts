import { newEventId } from '../event/event-id.js';

/** What each kind of retention record's id starts with. */
export const ID_PREFIXES = { run: 'prn_', hold: 'hold_', erasure: 'era_' } as const;

/**
 * A new id for a prune run (`prn_…`), a legal hold (`hold_…`) or an erasure
 * (`era_…`): the prefix and a ULID, as event ids are made, so ids sort by
 * creation time.
 */
export function newRetentionId(kind: keyof typeof ID_PREFIXES, timeMs: number = Date.now()): string {
  return `${ID_PREFIXES[kind]}${newEventId(timeMs).slice('evt_'.length)}`;
}

/** The shape every id of `kind` has (path parameters are checked against it before any lookup). */
export function retentionIdPattern(kind: keyof typeof ID_PREFIXES): RegExp {
  return new RegExp(`^${ID_PREFIXES[kind]}[0-9A-HJKMNP-TV-Z]{26}$`);
}
