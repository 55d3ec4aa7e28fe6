import type { SinkDefinition } from '../sink.js';
import { azureBlobSink } from './archive/azure-blob/azure-blob.js';
import { gcsSink } from './archive/gcs/gcs.js';
import { s3Sink } from './archive/s3/s3.js';
import { fileSink } from './file/file.js';
import { splunkHecSink } from './splunk-hec.js';
import { stdoutSink } from './stdout.js';
import { syslogSink } from './syslog/syslog.js';
import { webhookSink } from './webhook/webhook.js';

/**
 * Every kind of sink, by `type`; each is made with `defineSink` (sink.ts).
 * Adding a sink: its file or folder here, one line below, its docs page
 * (docs/sinks/<kind>.md, kebab-case) with its line in the lists of
 * docs/delivery.md (test/delivery/sinks/registry.test.ts names what is
 * missing), and its entry in the sink conformance suite.
 */
export const SINKS: Readonly<Record<string, SinkDefinition>> = Object.freeze({
  azure_blob: azureBlobSink,
  file: fileSink,
  gcs: gcsSink,
  splunk_hec: splunkHecSink,
  s3: s3Sink,
  stdout: stdoutSink,
  syslog: syslogSink,
  webhook: webhookSink,
});

export const SINK_KINDS = Object.keys(SINKS);
