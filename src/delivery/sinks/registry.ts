import type { SinkDefinition } from '../sink.js';
import { fileSink } from './file/file.js';
import { splunkHecSink } from './splunk-hec.js';
import { stdoutSink } from './stdout.js';
import { syslogSink } from './syslog/syslog.js';
import { webhookSink } from './webhook/webhook.js';

/**
 * Every kind of sink, by `type`. Adding a sink: its file(s), one line here,
 * its docs page (docs/sinks/<kind>.md) and its tests.
 */
export const SINKS: Readonly<Record<string, SinkDefinition>> = Object.freeze({
  file: fileSink as unknown as SinkDefinition,
  splunk_hec: splunkHecSink as unknown as SinkDefinition,
  stdout: stdoutSink as SinkDefinition,
  syslog: syslogSink as unknown as SinkDefinition,
  webhook: webhookSink as unknown as SinkDefinition,
});

export const SINK_KINDS = Object.keys(SINKS);
