import type { StoredEvent } from '../event/event.js';

/**
 * One readable line per event, for `trailwarden tail`:
 *
 * `2026-03-15T08:42:17.003Z #123 acme user.password.reset failure actor=alice(usr_k1l2) resource=user:bob(usr_9x8y) reason=INSUFFICIENT_PRIVILEGES ip=203.0.113.42`
 *
 * Every value from the event goes through `token`, so a value holding spaces,
 * `=`, quotes, newlines or invisible characters is quoted and escaped: it can
 * neither forge another field nor start a line of its own.
 */
export function formatLine(event: StoredEvent): string {
  const parts = [
    token(event.timestamp),
    `#${token(String(event.seq))}`,
    token(event.tenant_id),
    token(event.action),
    token(event.outcome),
  ];
  const actor = event.actor;
  if (actor) {
    const type = actor.type && actor.type !== 'user' ? `${token(actor.type)}:` : '';
    parts.push(`actor=${type}${named(actor.name, actor.id)}`);
  }
  const resource = event.resource;
  if (resource) parts.push(`resource=${token(resource.type)}:${named(resource.name, resource.id)}`);
  if (event.reason !== undefined) parts.push(`reason=${token(event.reason)}`);
  if (event.source_ip !== undefined) parts.push(`ip=${token(event.source_ip)}`);
  return parts.join(' ');
}

function named(name: string | undefined, id: string): string {
  return name === undefined ? token(id) : `${token(name)}(${token(id)})`;
}

/** Letters, digits and a few punctuation marks that cannot split or forge a field. */
const SAFE = /^[\p{L}\p{M}\p{N}_.@:/+\-~#,]+$/u;
/** Control, format (bidi overrides, zero-width) and line/paragraph separators. */
const INVISIBLE = /[\p{Cc}\p{Cf}\p{Co}\p{Cn}\p{Cs}\p{Zl}\p{Zp}]/gu;
const SHORT_ESCAPES: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/** A value as it appears in the line: bare when safe, otherwise double-quoted with escapes. */
export function token(value: string): string {
  if (SAFE.test(value)) return value;
  const escaped = value
    .replace(/["\\]/g, '\\$&')
    .replace(INVISIBLE, (c) => SHORT_ESCAPES[c] ?? unicodeEscape(c));
  return `"${escaped}"`;
}

function unicodeEscape(c: string): string {
  const cp = c.codePointAt(0)!;
  return cp > 0xffff ? `\\u{${cp.toString(16)}}` : `\\u${cp.toString(16).padStart(4, '0')}`;
}
