// A child process for the sink conformance suite: a stdout sink writing on
// this process's own standard output, which the test reads as the sink's
// peer (the test runner's own stdout is not one). The test drives the sink
// over IPC (test/helpers/sink-peers.ts). Run with `node --import tsx`.
import type { DeliveryBatch, DeliveryOutcome, Sink, SinkSettings } from '../../src/delivery/sink.js';
import { SINKS } from '../../src/delivery/sinks/registry.js';

/** What the test asks of the child; each request gets one {@link ChildReply} with its id. */
export type ChildRequest = { id: number } & (
  | { op: 'open'; name: string; format: string; settings: SinkSettings }
  | { op: 'deliver'; batch: DeliveryBatch }
  | { op: 'healthcheck' }
  | { op: 'close' }
  | { op: 'resources' }
);

/** The answer to a request, or a line the sink logged. */
export type ChildMessage =
  | { id: number; ok: true; value: DeliveryOutcome | { ok: boolean; detail?: string } | string[] | null }
  | { id: number; ok: false; error: string }
  | { log: { level: 'info' | 'warn'; msg: string; extra?: object } };

// As `trailwarden serve` does (src/cli/serve.ts): a reader that went away
// must not crash the process; the sink learns of it through its write callback.
process.stdout.on('error', () => {});

const send = (m: ChildMessage) => process.send?.(m);
let sink: Sink | undefined;

async function handle(
  req: ChildRequest,
): Promise<DeliveryOutcome | { ok: boolean; detail?: string } | string[] | null> {
  switch (req.op) {
    case 'open': {
      const def = SINKS['stdout'];
      if (def === undefined) throw new Error('no stdout sink is registered');
      sink = await def.create(req.settings, {
        name: req.name,
        owner: { source: 'config', tenantId: null },
        format: req.format,
        dataDir: '/nonexistent-data-dir',
        allowedPrivateNetworks: [],
        fileRoot: null,
        now: Date.now,
        log: {
          info: (msg, extra) => send({ log: { level: 'info', msg, ...(extra ? { extra } : {}) } }),
          warn: (msg, extra) => send({ log: { level: 'warn', msg, ...(extra ? { extra } : {}) } }),
        },
      });
      return null;
    }
    case 'deliver':
      return opened().deliver(req.batch, new AbortController().signal);
    case 'healthcheck':
      return opened().healthcheck();
    case 'close':
      await opened().close();
      sink = undefined;
      return null;
    case 'resources':
      return process.getActiveResourcesInfo();
  }
}

function opened(): Sink {
  if (sink === undefined) throw new Error('no sink is open');
  return sink;
}

process.on('message', (req: ChildRequest) => {
  handle(req).then(
    (value) => send({ id: req.id, ok: true, value }),
    (err: unknown) => send({ id: req.id, ok: false, error: String(err) }),
  );
});
