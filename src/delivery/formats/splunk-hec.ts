import { z } from 'zod';
import { oneLineJson } from '../../event/line-safe-json.js';
import type { OutputFormat } from './format.js';

/** Splunk's own limit on sourcetype, source, index and host values is generous; ours keeps them sane. */
const name = (what: string) =>
  z
    .string({ error: `expected a ${what} name` })
    .min(1)
    .max(256)
    // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
    .regex(/^[^\u0000-\u001f\u007f]*$/, { error: `a ${what} name cannot contain control characters` });

const splunkHecOptionsShape = {
  sourcetype: name('sourcetype').default('trailwarden:audit'),
  source: name('source').default('trailwarden'),
  /** Left out by default: the HEC token's default index applies. */
  index: name('index').optional(),
  /** Defaults to this host's name. */
  host: name('host').optional(),
};

/** The splunk_hec format's options after validation. */
export type SplunkHecFormatOptions = z.output<z.ZodObject<typeof splunkHecOptionsShape>>;

/** Seconds since the epoch with milliseconds as the fraction, as HEC's `time` expects. */
function epochSeconds(v: unknown): number | undefined {
  if (typeof v !== 'string') return undefined;
  const ms = Date.parse(v);
  return Number.isNaN(ms) ? undefined : ms / 1000;
}

/**
 * Splunk HTTP Event Collector's event envelope: `time`, `host`, `source`,
 * `sourcetype`, optionally `index`, and the shaped event as `event`. One JSON
 * object per event; HEC takes a batch as these objects one after another,
 * which is what the `splunk_hec` sink sends (other sinks write one per line).
 */
export const splunkHec: OutputFormat = {
  name: 'splunk_hec',
  description:
    'Splunk HTTP Event Collector envelope ({time, host, source, sourcetype, index?, event}) per event.',
  contentType: 'application/json',
  options: splunkHecOptionsShape,
  create: (raw, ctx) => {
    const options = raw as SplunkHecFormatOptions;
    const host = options.host ?? ctx.hostname;
    return (event) => {
      // Without the event's own time HEC would stamp the arrival time; received_at is the next best.
      const time = epochSeconds(event['timestamp']) ?? epochSeconds(event['received_at']);
      return oneLineJson({
        ...(time === undefined ? {} : { time }),
        host,
        source: options.source,
        sourcetype: options.sourcetype,
        ...(options.index === undefined ? {} : { index: options.index }),
        event,
      });
    };
  },
};
