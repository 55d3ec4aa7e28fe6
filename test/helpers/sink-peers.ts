/**
 * The real peer of each kind of sink, as the sink conformance suite
 * (test/delivery/sinks/sink-conformance.int.test.ts) drives it: a webhook
 * receiver that verifies with the official `standardwebhooks`, the HEC
 * emulator, rsyslog, a folder on this file system, and the standard output
 * of a child process. Each can fail and (but stdout) come back, and tells
 * what it holds.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { DeliveryBatch, DeliveryOutcome, SinkContext, SinkSettings } from '../../src/delivery/sink.js';
import { SINKS } from '../../src/delivery/sinks/registry.js';
import { startHec } from './hec-receiver.js';
import { parseStructuredData, type Rsyslog, startRsyslog } from './rsyslog.js';
import type { ChildMessage, ChildRequest } from './stdout-peer-child.js';
import { startTcpGate, type TcpGate } from './tcp-gate.js';
import type { TestPki } from './test-pki.js';
import { newSecret, startReceiver } from './webhook-receiver.js';

/** A sink as the suite drives it; `healthcheck` resolves `undefined` when the kind has none. */
export interface SinkHandle {
  deliver(batch: DeliveryBatch): Promise<DeliveryOutcome>;
  healthcheck(): Promise<{ ok: boolean; detail?: string } | undefined>;
  close(): Promise<void>;
}

/** Where a sink under test runs: this process, or a child process whose stdout is the peer. */
export interface SinkHost {
  /** `false`: the sink runs in a child process, out of reach of an in-process delivery worker. */
  inProcess: boolean;
  open(settings: SinkSettings, ctx: SinkContext): Promise<SinkHandle>;
  /** `process.getActiveResourcesInfo()` of the process the sink runs in. */
  resources(): Promise<string[]>;
}

/** One running peer of a kind of sink. */
export interface SinkPeer {
  host: SinkHost;
  /** The options (beside name and type) of a sink named `name` that delivers to this peer. */
  options(name: string): Record<string, unknown>;
  /** The value of every secret option `options` sets, by its path (`headers.authorization`). */
  secrets: Record<string, string>;
  /** The folder file sinks may write under (`file_sink_root`), for a peer that is a folder. */
  fileRoot?: string;
  /** The seq of every event the peer holds, in the order it took them (repeats included). */
  held(): Promise<number[]>;
  /** Requests, messages or lines that carried events to the peer, taken or refused. */
  deliveries(): Promise<number>;
  /** Kinds that carry the delivery id to the peer: the id and range of every request that reached it. */
  deliveryIds?(): Array<{ id: string; firstSeq: number; lastSeq: number }>;
  /** What the peer found wrong in what it received (a bad signature, an unparseable message, a 4xx). */
  problems(): string[];
  /** Nothing takes events any more: connections refused, the folder unusable, the pipe's reader gone. */
  goDown(): Promise<void>;
  /** Takes events again at the same address (a no-op when up); absent when this peer cannot come back (stdout). */
  comeBack?(): Promise<void>;
  /** Answers, but refuses every event (HTTP 503), so it sees the attempts; absent for peers that cannot. */
  refuse?(on: boolean): void;
  /** What the sink holds open at the peer (connections, files); `undefined` when the peer cannot tell. */
  heldOpen(): string[] | undefined;
  stop(): Promise<void>;
}

/** A sink of `kind` run in this process. */
export function inProcessHost(kind: string): SinkHost {
  return {
    inProcess: true,
    async open(settings, ctx) {
      const def = SINKS[kind];
      if (def === undefined) throw new Error(`no ${kind} sink is registered`);
      const sink = await def.create(settings, ctx);
      return {
        deliver: (batch) => sink.deliver(batch, new AbortController().signal),
        healthcheck: async () => sink.healthcheck(),
        close: () => sink.close(),
      };
    },
    resources: async () => process.getActiveResourcesInfo(),
  };
}

/** The connections a gate still has from the sink, as {@link SinkPeer.heldOpen} reports them. */
export function gateConnections(gate: TcpGate): string[] {
  const n = gate.openConnections();
  return n === 0 ? [] : [`${n} connection(s) open at the peer`];
}

/** A webhook receiver behind HTTPS with mutual TLS, a Standard Webhooks secret and an authorization header. */
export async function startWebhookPeer(pki: TestPki): Promise<SinkPeer> {
  const secret = newSecret();
  const authorization = `Bearer tw-header-${randomBytes(18).toString('base64url')}`;
  let refusing = false;
  const held: number[] = [];
  const problems: string[] = [];
  const receiver = await startReceiver({
    secret,
    tls: { key: pki.serverKey, cert: pki.serverCert, ca: pki.ca, requestCert: true },
    respond: (req) => {
      if (!req.verified) problems.push(`standardwebhooks refused a request: ${req.verifyError}`);
      if (refusing) return { status: 503, body: 'busy' };
      if (!Array.isArray(req.parsed)) {
        problems.push(`the body is not a JSON array: ${req.body.slice(0, 80)}`);
        return { status: 400 };
      }
      for (const e of req.parsed as Array<{ seq: number }>) held.push(e.seq);
      return { status: 204 };
    },
  });
  const gate = await startTcpGate(receiver.port);
  return {
    host: inProcessHost('webhook'),
    options: () => ({
      url: `https://127.0.0.1:${gate.port}/hook`,
      secret,
      headers: { authorization },
      tls: { ca: pki.ca, cert: pki.clientCert, key: pki.clientKey },
      allow_private_networks: true,
      connect_timeout_ms: 2000,
      request_timeout_ms: 5000,
    }),
    secrets: { secret, 'headers.authorization': authorization, 'tls.key': pki.clientKey },
    held: async () => [...held],
    deliveries: async () => receiver.requests.length,
    deliveryIds: () =>
      receiver.requests.map((r) => ({
        id: String(r.headers['webhook-id']),
        firstSeq: Number(r.headers['x-trailwarden-seq-first']),
        lastSeq: Number(r.headers['x-trailwarden-seq-last']),
      })),
    problems: () => [...problems],
    goDown: () => gate.down(),
    comeBack: () => gate.up(),
    refuse: (on) => {
      refusing = on;
    },
    heldOpen: () => gateConnections(gate),
    async stop() {
      await gate.close();
      await receiver.close();
    },
  };
}

/** The HEC emulator behind HTTPS with mutual TLS and a token of its own; acknowledgement on. */
export async function startHecPeer(pki: TestPki): Promise<SinkPeer> {
  const token = randomUUID();
  const hec = await startHec('ok', { token, tls: { key: pki.serverKey, cert: pki.serverCert, ca: pki.ca } });
  const gate = await startTcpGate(hec.port);
  return {
    host: inProcessHost('splunk_hec'),
    options: () => ({
      url: `https://127.0.0.1:${gate.port}`,
      token,
      tls: { ca: pki.ca, cert: pki.clientCert, key: pki.clientKey },
      ack: { enabled: true, poll_interval_ms: 20, timeout_ms: 5000 },
      allow_private_networks: true,
      connect_timeout_ms: 2000,
      request_timeout_ms: 5000,
    }),
    secrets: { token, 'tls.key': pki.clientKey },
    held: async () => hec.events.map((e) => Number((e as { event?: { seq?: unknown } }).event?.seq)),
    deliveries: async () => hec.requests.filter((r) => r.path === '/services/collector/event').length,
    problems: () => [...hec.rejections],
    goDown: () => gate.down(),
    comeBack: () => gate.up(),
    refuse: (on) => hec.setMode(on ? 'busy' : 'ok'),
    heldOpen: () => gateConnections(gate),
    async stop() {
      await gate.close();
      await hec.close();
    },
  };
}

/** The `seq` in a message's structured data (`[trailwarden@32473 … seq="N" …]`). */
function seqOfSyslog(sd: string): number {
  return Number(parseStructuredData(sd)[0]?.params.find(([k]) => k === 'seq')?.[1]);
}

/**
 * rsyslog (Debian's rsyslogd) taking syslog over `protocol`; TCP and TLS
 * through a gate, so the collector can be made unreachable at once; TLS with
 * a client certificate and key given inline.
 */
export async function startSyslogPeer(protocol: 'tcp' | 'tls' | 'udp', pki: TestPki): Promise<SinkPeer> {
  const dir = mkdtempSync(join(tmpdir(), 'tw-conformance-rsyslog-'));
  const cert = { dir: pki.dir, certFile: pki.files.serverCert, keyFile: pki.files.serverKey };
  let rsyslog: Rsyslog = await startRsyslog({ dir, ...(protocol === 'tls' ? { cert } : {}) });
  const target = protocol === 'tls' ? rsyslog.tlsPort : rsyslog.port;
  const gate = protocol === 'udp' ? undefined : await startTcpGate(target);
  const messages = () => rsyslog.messages();
  let stopped = false;
  return {
    host: inProcessHost('syslog'),
    options: () => ({
      host: '127.0.0.1',
      port: gate?.port ?? target,
      protocol,
      connect_timeout_ms: 2000,
      ...(protocol === 'tls' ? { tls: { ca: pki.ca, cert: pki.clientCert, key: pki.clientKey } } : {}),
    }),
    secrets: protocol === 'tls' ? { 'tls.key': pki.clientKey } : {},
    held: async () => messages().map((m) => seqOfSyslog(m.sd)),
    deliveries: async () => messages().length,
    problems: () =>
      messages()
        .filter((m) => !Number.isInteger(seqOfSyslog(m.sd)))
        .map((m) => `a message without seq: ${m.raw.slice(0, 120)}`),
    // Over UDP nothing is in between: the collector itself stops (and starts again on the same port).
    async goDown() {
      if (gate) return gate.down();
      stopped = true;
      await rsyslog.stop();
    },
    async comeBack() {
      if (gate) return gate.up();
      if (!stopped) return;
      stopped = false;
      rsyslog = await startRsyslog(rsyslog.options);
    },
    heldOpen: () => (gate ? gateConnections(gate) : undefined),
    async stop() {
      await gate?.close();
      await rsyslog.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** What a process has open under `dir`, from /proc/self/fd. */
function openFilesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const target = readlinkSync(join('/proc/self/fd', fd));
      if (target.startsWith(`${dir}/`)) out.push(`fd ${fd}: ${target}`);
    } catch {
      // Closed between the listing and the read: not open.
    }
  }
  return out;
}

/**
 * A folder the file sinks write into (`logs/<sink name>.log`). It fails the
 * way docs/sinks/file.md says a sink retries on: a file stands where the
 * folder was (the folder is kept aside, and put back when it comes back).
 */
export async function startFilePeer(): Promise<SinkPeer> {
  const dir = mkdtempSync(join(tmpdir(), 'tw-conformance-file-'));
  const logs = join(dir, 'logs');
  const aside = join(dir, 'logs.aside');
  mkdirSync(logs);
  const lines = (): string[] => {
    const folder = existsSync(aside) ? aside : logs;
    return readdirSync(folder)
      .filter((f) => f.endsWith('.log'))
      .sort()
      .flatMap((f) => readFileSync(join(folder, f), 'utf8').split('\n').slice(0, -1));
  };
  return {
    host: inProcessHost('file'),
    options: (name) => ({ path: join(logs, `${name}.log`) }),
    secrets: {},
    fileRoot: dir,
    held: async () => lines().map((l) => Number((JSON.parse(l) as { seq?: unknown }).seq)),
    deliveries: async () => lines().length,
    problems: () => [],
    async goDown() {
      renameSync(logs, aside);
      writeFileSync(logs, 'a file where the sink expects its folder\n');
    },
    async comeBack() {
      if (!existsSync(aside)) return;
      unlinkSync(logs);
      renameSync(aside, logs);
    },
    heldOpen: () => openFilesUnder(dir),
    async stop() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const STDOUT_CHILD = fileURLToPath(new URL('./stdout-peer-child.ts', import.meta.url));

/**
 * The standard output of a child process that runs a stdout sink
 * (test/helpers/stdout-peer-child.ts): the test reads the pipe, and goes
 * down by closing its end of it.
 */
export async function startStdoutPeer(): Promise<SinkPeer> {
  const child: ChildProcess = fork(STDOUT_CHILD, [], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let out = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => {
    out += d;
  });
  const pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  let log: SinkContext['log'] | undefined;
  child.on('message', (m: ChildMessage) => {
    if ('log' in m) {
      log?.[m.log.level](m.log.msg, m.log.extra);
      return;
    }
    const p = pending.get(m.id);
    pending.delete(m.id);
    if (m.ok) p?.resolve(m.value);
    else p?.reject(new Error(m.error));
  });
  let next = 0;
  const ask = <T>(req: DistributiveOmit<ChildRequest, 'id'>): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const id = ++next;
      pending.set(id, { resolve: (v) => resolve(v as T), reject });
      child.send({ ...req, id });
    });
  const lines = () => out.split('\n').slice(0, -1);
  return {
    host: {
      inProcess: false,
      async open(settings, ctx) {
        log = ctx.log;
        await ask({ op: 'open', name: ctx.name, format: ctx.format, settings });
        return {
          deliver: (batch) => ask<DeliveryOutcome>({ op: 'deliver', batch }),
          healthcheck: async () =>
            (await ask<{ ok: boolean; detail?: string } | null>({ op: 'healthcheck' })) ?? undefined,
          close: () => ask<null>({ op: 'close' }).then(() => undefined),
        };
      },
      resources: () => ask<string[]>({ op: 'resources' }),
    },
    options: () => ({ stream: 'stdout' }),
    secrets: {},
    held: async () => lines().map((l) => Number((JSON.parse(l) as { seq?: unknown }).seq)),
    deliveries: async () => lines().length,
    problems: () => [],
    async goDown() {
      child.stdout?.destroy();
    },
    heldOpen: () => undefined,
    async stop() {
      child.kill();
      await exited;
    },
  };
}

/** `Omit` applied to each member of a union. */
type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
