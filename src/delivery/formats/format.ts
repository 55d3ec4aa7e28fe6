/**
 * An output format turns one shaped event into text. Every sink that carries
 * text (webhook, file, stdout, and syslog next) encodes through the one table
 * in `formats/registry.ts`, so a format added there works everywhere.
 */
export interface OutputFormat {
  name: string;
  description: string;
  /** MIME type of one encoded event. */
  contentType: string;
  /** One event as text: a single line for line-oriented sinks (no newline inside). */
  encode(event: Record<string, unknown>): string;
}
