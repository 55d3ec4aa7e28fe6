import type { z } from 'zod';

/** What every format may put in its output about the product that produced it. */
export interface FormatContext {
  vendor: string;
  product: string;
  /** Trailwarden's version. */
  version: string;
  /** This host's name (syslog HOSTNAME, Splunk `host`). */
  hostname: string;
}

/** Turns one shaped event into text: a single line for line-oriented sinks (no raw newline inside). */
export type Encoder = (event: Record<string, unknown>) => string;

/**
 * An output format. Every sink that carries text (webhook, file, stdout,
 * syslog) encodes through the one table in `formats/registry.ts`, so a format
 * added there works everywhere. A format may take options (`format_options`
 * of the sink), validated with its own schema.
 */
export interface OutputFormat {
  name: string;
  description: string;
  /** MIME type of one encoded event. */
  contentType: string;
  /** Zod shape of the format's `format_options`; none when it takes no options. */
  options?: z.ZodRawShape;
  /** Builds the encoder once per sink. */
  create(options: Record<string, unknown>, ctx: FormatContext): Encoder;
}
