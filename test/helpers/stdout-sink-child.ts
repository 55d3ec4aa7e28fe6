// A child process for test/delivery/sinks/stdout.test.ts: a stdout sink on this
// process's own stdout, in the situation named by argv[2]; it reports on stderr,
// one JSON line per step. Run with `node --import tsx`.
import { writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { stdoutSink } from '../../src/delivery/sinks/stdout.js';

const say = (step: string, value: unknown) => writeSync(2, `${JSON.stringify({ step, value })}\n`);

// As `trailwarden serve` does: a reader that left must not crash the process.
process.stdout.on('error', () => undefined);

const sink = await stdoutSink.create(
  { stream: 'stdout' },
  {
    name: 'out',
    owner: { source: 'config', tenantId: null },
    format: 'jsonl',
    dataDir: tmpdir(),
    allowedPrivateNetworks: [],
    fileRoot: null,
    now: Date.now,
    log: { info() {}, warn() {} },
  },
);
const batch = {
  id: 'dlv_1',
  attempt: 1,
  firstSeq: 1,
  lastSeq: 1,
  events: [
    {
      seq: 1,
      eventId: 'evt-1',
      tenantId: 't',
      receivedAt: '2026-03-15T08:00:00.000Z',
      timestamp: '2026-03-15T08:00:00.000Z',
      action: 'user.login',
      event: {},
      text: '{"seq":1}',
    },
  ],
};

if (process.argv[2] === 'open') {
  say('healthcheck', await sink.healthcheck());
  await sink.close();
} else if (process.argv[2] === 'broken-pipe') {
  // The parent closes its end of our stdout, then says "go" on stdin.
  process.stdin.setEncoding('utf8').once('data', async () => {
    say('healthcheck before writing', await sink.healthcheck());
    say('deliver', await sink.deliver(batch, new AbortController().signal));
    say('healthcheck after', await sink.healthcheck());
    await sink.close();
    process.stdin.destroy();
  });
}
