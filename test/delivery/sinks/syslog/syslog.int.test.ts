/**
 * The syslog sink against a real rsyslogd (8.2302) over TCP, UDP and TLS
 * (GnuTLS and OpenSSL drivers). rsyslog parses every message with its own
 * RFC 5424 parser and writes its properties as one JSON line each.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { type AddressInfo, createServer, type Socket } from 'node:net';
import { afterEach, describe, test } from 'node:test';
import { z } from 'zod';
import type { DeliveryBatch, OutgoingEvent, Sink, SinkContext } from '../../../../src/delivery/sink.js';
import { syslogSink } from '../../../../src/delivery/sinks/syslog/syslog.js';
import {
  BOM,
  buildMessage,
  datagram,
  messageBytes,
  type SyslogMessageOptions,
  syslogSeverity,
  TRUNCATION_MARKER,
} from '../../../../src/delivery/sinks/syslog/syslog-message.js';
import { rawEvent, testApp } from '../../../helpers/app.js';
import { HOSTILE_STRINGS, hostileEvent } from '../../../helpers/hostile.js';
import {
  makeCert,
  parseStructuredData,
  type ReceivedSyslog,
  type Rsyslog,
  startRsyslog,
  type TestCert,
} from '../../../helpers/rsyslog.js';
import { until } from '../../../helpers/until.js';

const cleanup: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanup.length > 0) await cleanup.pop()!();
});

const HOST = 'tw-test-host';

const ctx: SinkContext = {
  name: 'siem',
  owner: { source: 'config', tenantId: null },
  format: 'json',
  dataDir: '/nonexistent',
  allowedPrivateNetworks: [],
  fileRoot: null,
  now: () => Date.now(),
  log: { info() {}, warn() {} },
};

async function receiver(cert?: TestCert, driver?: 'gtls' | 'ossl'): Promise<Rsyslog> {
  const r = await startRsyslog({ ...(cert ? { cert } : {}), ...(driver ? { driver } : {}) });
  cleanup.push(() => r.close());
  return r;
}

function certificate(): TestCert {
  const cert = makeCert();
  cleanup.push(() => rmSync(cert.dir, { recursive: true, force: true }));
  return cert;
}

async function sink(options: Record<string, unknown>): Promise<Sink> {
  const parsed = z.strictObject(syslogSink.options).parse({ host: '127.0.0.1', hostname: HOST, ...options });
  const s = await syslogSink.create(parsed, ctx);
  cleanup.push(() => s.close());
  return s;
}

function outgoing(event: Record<string, unknown>): OutgoingEvent {
  return {
    seq: Number(event['seq']),
    eventId: String(event['event_id']),
    tenantId: String(event['tenant_id']),
    receivedAt: '2026-01-02T03:04:05.000Z',
    timestamp: '2026-01-02T03:04:05.000Z',
    action: String(event['action']),
    event,
    text: JSON.stringify(event),
  };
}

/** One event per hostile value, in actor.name, reason, metadata and the SD fields actor.id and resource.id. */
function hostileEvents(): OutgoingEvent[] {
  return HOSTILE_STRINGS.map((value, i) => {
    const event = hostileEvent(value, i + 1);
    (event['actor'] as Record<string, unknown>)['id'] = value;
    (event['resource'] as Record<string, unknown>)['id'] = value;
    return outgoing(event);
  });
}

let batchNo = 0;
function batch(events: OutgoingEvent[], attempt = 1): DeliveryBatch {
  return {
    id: `msg_${++batchNo}`,
    attempt,
    firstSeq: events[0]!.seq,
    lastSeq: events.at(-1)!.seq,
    events,
  };
}

/**
 * What rsyslog makes of a value: it always writes NUL as `#000`, whatever
 * `parser.escapeControlCharactersOnReceive` says (receiver behaviour, not ours).
 */
function asReceived(value: string): string {
  return value.replaceAll('\u0000', '#000');
}

function seqOf(r: ReceivedSyslog): number {
  const sd = parseStructuredData(r.sd);
  return Number(sd[0]?.params.find(([k]) => k === 'seq')?.[1]);
}

/** Asserts that a received message is `e` exactly as the sink built it. */
function assertReceived(r: ReceivedSyslog, e: OutgoingEvent, o: { singleLine?: boolean; udp?: number } = {}) {
  const at = `event ${e.seq}`;
  assert.equal(r.pri, 13 * 8 + syslogSeverity(e.action, e.event['outcome']), at);
  assert.equal(r.timestamp, e.event['timestamp'], at);
  assert.equal(r.hostname, HOST, at);
  assert.equal(r.appName, 'trailwarden', at);
  assert.equal(r.msgid, e.action, at);
  const single = (v: string) => (o.singleLine ? v.replace(/[\r\n]/g, ' ') : v);
  const opts: SyslogMessageOptions = {
    rfc: '5424',
    facility: 13,
    hostname: HOST,
    appName: 'trailwarden',
    enterpriseId: 32473,
    singleLine: o.singleLine ?? false,
    now: Date.now,
  };
  const whole = messageBytes(buildMessage(e, opts));
  const truncated = o.udp !== undefined && whole.length > o.udp;
  const actor = e.event['actor'] as { id: string };
  const expectedSd = truncated
    ? parseStructuredData(
        datagram(e, opts, o.udp!).toString().split(' ').slice(6).join(' ').split('] ')[0]! + ']',
      )
    : [
        {
          id: 'trailwarden@32473',
          params: [
            ['event_id', e.eventId],
            ['seq', String(e.seq)],
            ['tenant', 'acme'],
            ['actor', asReceived(single(actor.id))],
            ['resource', asReceived(single(actor.id))],
            ['outcome', 'failure'],
          ],
        },
      ];
  assert.deepEqual(parseStructuredData(r.sd), expectedSd, at);
  const bom = r.msg.startsWith(BOM);
  const msg = bom ? r.msg.slice(1) : r.msg;
  if (truncated) {
    assert.ok(bom && msg.endsWith(TRUNCATION_MARKER), at);
    assert.ok(e.text.startsWith(msg.slice(0, -TRUNCATION_MARKER.length)), at);
    assert.ok(Buffer.byteLength(r.raw) <= o.udp!, at);
  } else {
    assert.equal(
      bom,
      Buffer.byteLength(e.text) !== e.text.length,
      `${at}: BOM exactly when MSG is not ASCII`,
    );
    assert.equal(msg, e.text, at);
  }
}

describe('syslog sink with rsyslog', () => {
  test('TCP with octet counting delivers every hostile event intact', async () => {
    const r = await receiver();
    const s = await sink({ port: r.port, protocol: 'tcp' });
    const events = hostileEvents();
    assert.deepEqual(await s.deliver(batch(events), new AbortController().signal), { kind: 'ok' });
    const got = await r.waitFor(events.length);
    assert.equal(got.length, events.length);
    for (const [i, e] of events.entries()) {
      assert.equal(got[i]!.input, 'tcp');
      assertReceived(got[i]!, e);
    }
  });

  test('TCP with newline framing keeps one message per line (CR and LF become spaces)', async () => {
    const r = await receiver();
    const s = await sink({ port: r.port, protocol: 'tcp', framing: 'newline' });
    const events = hostileEvents();
    assert.equal((await s.deliver(batch(events), new AbortController().signal)).kind, 'ok');
    const got = await r.waitFor(events.length);
    assert.equal(got.length, events.length);
    for (const [i, e] of events.entries()) assertReceived(got[i]!, e, { singleLine: true });
  });

  test('UDP sends one datagram per event and cuts the long one with the marker', async () => {
    const r = await receiver();
    const s = await sink({ port: r.port, protocol: 'udp' });
    const events = hostileEvents();
    assert.equal((await s.deliver(batch(events), new AbortController().signal)).kind, 'ok');
    const got = await r.waitFor(events.length);
    assert.equal(got.length, events.length);
    const bySeq = new Map(got.map((g) => [seqOf(g), g]));
    let cut = 0;
    for (const e of events) {
      const g = bySeq.get(e.seq);
      assert.ok(g, `event ${e.seq} arrived`);
      assert.equal(g.input, 'udp');
      assertReceived(g, e, { udp: 1472 });
      if (g.msg.endsWith(TRUNCATION_MARKER)) cut++;
    }
    assert.ok(cut >= 1, 'the 9000-character value was truncated');
  });

  for (const driver of ['gtls', 'ossl'] as const) {
    test(`TLS (${driver}) with the collector CA in tls.ca_file delivers every hostile event`, async () => {
      const cert = certificate();
      const r = await receiver(cert, driver);
      const s = await sink({ port: r.tlsPort, protocol: 'tls', tls: { ca_file: cert.certFile } });
      const events = hostileEvents();
      assert.equal((await s.deliver(batch(events), new AbortController().signal)).kind, 'ok');
      const got = await r.waitFor(events.length);
      for (const [i, e] of events.entries()) {
        assert.equal(got[i]!.input, 'tls');
        assertReceived(got[i]!, e);
      }
      assert.equal((await s.healthcheck()).ok, true);
    });
  }

  test('TLS without the CA refuses the self-signed collector: retry, and the reason says what to set', async () => {
    const cert = certificate();
    const r = await receiver(cert);
    const s = await sink({ port: r.tlsPort, protocol: 'tls' });
    const out = await s.deliver(batch(hostileEvents().slice(0, 1)), new AbortController().signal);
    assert.equal(out.kind, 'retry');
    assert.match((out as { reason: string }).reason, /self-signed certificate.*tls\.ca_file/);
    assert.equal(r.messages().length, 0);
    const health = await s.healthcheck();
    assert.equal(health.ok, false);
    assert.match(health.detail ?? '', /tls\.ca_file/);
  });

  test('a collector that is not listening is a retry that names the address', async () => {
    const r = await receiver();
    const port = r.port;
    await r.stop();
    const s = await sink({ port, protocol: 'tcp', connect_timeout_ms: 1000 });
    const out = await s.deliver(batch(hostileEvents().slice(0, 1)), new AbortController().signal);
    assert.equal(out.kind, 'retry');
    assert.match(
      (out as { reason: string }).reason,
      new RegExp(`tcp://127\\.0\\.0\\.1:${port}.*ECONNREFUSED`),
    );
  });

  test('close() ends a healthcheck still in its TLS handshake, hanging up the connection', {
    timeout: 10_000,
  }, async () => {
    // A peer that accepts the connection and never answers the TLS hello: the handshake hangs.
    const sockets: Socket[] = [];
    const server = createServer((socket) => {
      sockets.push(socket);
      socket.on('error', () => undefined);
      socket.resume(); // reads (and drops) the hello, so the hang-up is seen
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanup.push(
      () =>
        new Promise<void>((resolve) => {
          for (const socket of sockets) socket.destroy();
          server.close(() => resolve());
        }),
    );
    const { port } = server.address() as AddressInfo;
    const s = await sink({ port, protocol: 'tls', connect_timeout_ms: 600_000 });
    const probing = s.healthcheck();
    await until(() => sockets.length > 0, 'the healthcheck connection');
    const hungUp = new Promise((resolve) => sockets[0]!.once('close', resolve));
    await s.close();
    const health = await probing;
    assert.equal(health.ok, false);
    assert.match(health.detail, /aborted: the sink is stopping/);
    await hungUp;
  });

  for (const protocol of ['tcp', 'tls'] as const) {
    test(`${protocol}: the collector going down and coming back loses no event`, async () => {
      const cert = protocol === 'tls' ? certificate() : undefined;
      let r = await receiver(cert);
      const dir = r.dir;
      const options =
        protocol === 'tls'
          ? { port: r.tlsPort, protocol, tls: { ca_file: cert!.certFile } }
          : { port: r.port, protocol };
      const s = await sink({ ...options, connect_timeout_ms: 500 });
      const total = 400;
      const all = Array.from({ length: total }, (_, i) => outgoing(hostileEvent(`value ${i}`, i + 1)));
      let retries = 0;
      // Drive the sink as the worker does: a batch at a time, the same batch again after a retry.
      const stream = (async () => {
        for (let i = 0; i < total; i += 10) {
          const b = batch(all.slice(i, i + 10));
          for (;;) {
            const out = await s.deliver(b, new AbortController().signal);
            if (out.kind === 'ok') break;
            retries++;
            await new Promise((res) => setTimeout(res, 50));
          }
          await new Promise((res) => setTimeout(res, 5));
        }
      })();
      await new Promise((res) => setTimeout(res, 150));
      // SIGTERM, not SIGKILL: rsyslog then writes what it had already read. TCP has no
      // application-level ack, so what a killed collector held in memory would be lost.
      await r.stop('SIGTERM');
      const during = r.messages().length;
      await new Promise((res) => setTimeout(res, 300));
      r = await startRsyslog({ ...r.options, dir });
      cleanup.push(() => r.close());
      await stream;
      const got = await r.waitFor(total, 15_000).catch(() => r.messages());
      const seen = new Set(got.map(seqOf));
      const missing = all.filter((e) => !seen.has(e.seq)).map((e) => e.seq);
      assert.deepEqual(missing, [], `lost ${missing.length} events (killed after ${during} arrived)`);
      assert.ok(during > 0 && during < total, `the collector was stopped mid-stream (after ${during})`);
      assert.ok(retries > 0, 'the sink had to retry while the collector was down');
      rmSync(dir, { recursive: true, force: true });
    });
  }

  test('the delivery engine sends ingested events through a configured syslog sink', async () => {
    const r = await receiver();
    const t = await testApp({
      audit_reads: false,
      sinks: [
        {
          name: 'siem',
          type: 'syslog',
          host: '127.0.0.1',
          port: r.port,
          protocol: 'tcp',
          hostname: HOST,
          start_from: 'beginning',
          retry: { delays_ms: [20, 20, 20], jitter: 0 },
        },
      ],
    });
    cleanup.push(() => t.close());
    const res = await t.app.inject({
      method: 'POST',
      url: '/v1/events',
      headers: { authorization: t.admin },
      payload: [
        rawEvent({ reason: 'quote" bracket] back\\slash' }),
        rawEvent({ action: 'user.login', outcome: 'failure' }),
      ],
    });
    assert.ok(res.statusCode < 300, res.body);
    const got = (await r.waitFor(2)).filter((g) => g.msgid === 'user.login');
    assert.equal(got.length, 2);
    const [first, second] = got.map((g) => ({ g, event: JSON.parse(g.msg) as Record<string, unknown> }));
    assert.equal(first!.event['reason'], 'quote" bracket] back\\slash');
    assert.equal(first!.g.pri, 13 * 8 + 6);
    assert.equal(second!.g.pri, 13 * 8 + 5);
    const sd = parseStructuredData(first!.g.sd)[0]!;
    assert.equal(sd.id, 'trailwarden@32473');
    assert.deepEqual(
      sd.params.map(([k]) => k),
      ['event_id', 'seq', 'tenant', 'actor', 'resource', 'outcome'],
    );
    assert.equal(sd.params[0]![1], first!.event['event_id']);
    assert.equal(first!.g.hostname, HOST);
  });
});
