/**
 * Bounds on a single event, checked by `validateEvent`. They keep one
 * producer from filling the log (or a SIEM's field index) with one giant or
 * deeply nested event. Every name carries its unit; lengths count Unicode
 * code points, not bytes.
 */
export interface EventLimits {
  /** Bytes of the normalised event serialised as UTF-8 JSON. Default 32768. */
  max_event_bytes: number;
  /**
   * Code points of identifier-like strings: `actor.type|id|name|email`,
   * `resource.type|id|name`, `session_id`, `request_id`, `changes[].field`
   * and metadata keys. Default 1024. (`event_id` and `tenant_id` are fixed at
   * 128 and `action` at 128 by their syntax, not by this limit.)
   */
  max_string_length: number;
  /**
   * Code points of free-text strings: `reason`, `user_agent`, and string
   * values inside `metadata` and `changes[].old|new`. Default 8192.
   */
  max_text_length: number;
  /**
   * Nesting of objects and arrays in `metadata` (the metadata object itself
   * is depth 1) and in each `changes[].old|new` value. Default 8.
   */
  max_metadata_depth: number;
  /** Keys counted across the whole metadata tree, nested objects included. Default 256. */
  max_metadata_keys: number;
  /** Elements of any array: `changes`, and arrays inside metadata or change values. Default 256. */
  max_array_length: number;
  /** How far in the future (server clock) a `timestamp` may be. Default 300000 (5 minutes). */
  max_clock_skew_ms: number;
  /** How far in the past a `timestamp` may be; `null` = no bound. Default null. */
  max_event_age_ms: number | null;
}

/** The limits used when the configuration sets none. */
export const DEFAULT_EVENT_LIMITS: Readonly<EventLimits> = Object.freeze({
  max_event_bytes: 32768,
  max_string_length: 1024,
  max_text_length: 8192,
  max_metadata_depth: 8,
  max_metadata_keys: 256,
  max_array_length: 256,
  max_clock_skew_ms: 300_000,
  max_event_age_ms: null,
});
