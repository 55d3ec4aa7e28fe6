import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** One message as rsyslog parsed it (properties from its own RFC 5424 / 3164 parser). */
export interface ReceivedSyslog {
  /** Input that took it: `tcp`, `udp` or `tls`. */
  input: string;
  pri: number;
  /** rsyslog's TIMESTAMP in RFC 3339. */
  timestamp: string;
  hostname: string;
  appName: string;
  procid: string;
  msgid: string;
  /** STRUCTURED-DATA exactly as received (escapes included), `-` when none. */
  sd: string;
  /** MSG as rsyslog stored it (a leading UTF-8 BOM is kept). */
  msg: string;
  /** The whole message as received (after framing). */
  raw: string;
}

export interface StartRsyslogOptions {
  /** TLS driver for the TLS input; the TLS input is left out without `cert`. */
  driver?: 'gtls' | 'ossl';
  cert?: TestCert;
  /** Reuse ports (to restart a receiver on the same address). */
  ports?: { plain: number; tls: number };
  /** Reuse a work folder (the output file is appended to). */
  dir?: string;
}

/** A running rsyslogd in the foreground with its own config, work folder and output file. */
export interface Rsyslog {
  /** TCP and UDP port of the plain inputs. */
  port: number;
  tlsPort: number;
  dir: string;
  outFile: string;
  options: StartRsyslogOptions;
  /** Messages written so far, in file order. */
  messages(): ReceivedSyslog[];
  /** Waits until at least `n` messages were written. */
  waitFor(n: number, timeoutMs?: number): Promise<ReceivedSyslog[]>;
  /** Stops rsyslogd (SIGTERM lets it write what it read) and waits for it to exit. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** Stops the process and removes the work folder. */
  close(): Promise<void>;
}

/** A self-signed certificate for 127.0.0.1 and localhost. */
export interface TestCert {
  dir: string;
  certFile: string;
  keyFile: string;
}

/** Generates a self-signed certificate with openssl (SAN IP:127.0.0.1, DNS:localhost). */
export function makeCert(): TestCert {
  const dir = mkdtempSync(join(tmpdir(), 'tw-syslog-cert-'));
  const certFile = join(dir, 'cert.pem');
  const keyFile = join(dir, 'key.pem');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '2',
      '-subj',
      '/CN=localhost',
      '-addext',
      'subjectAltName=DNS:localhost,IP:127.0.0.1',
      '-keyout',
      keyFile,
      '-out',
      certFile,
    ],
    { stdio: 'ignore' },
  );
  return { dir, certFile, keyFile };
}

/** A port free for both TCP and UDP on 127.0.0.1 (probed, then released). */
export async function freePort(): Promise<number> {
  const { createSocket } = await import('node:dgram');
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const s = createServer();
      s.once('error', reject);
      s.listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    const udpFree = await new Promise<boolean>((resolve) => {
      const u = createSocket('udp4');
      u.once('error', () => resolve(false));
      u.bind(port, '127.0.0.1', () => u.close(() => resolve(true)));
    });
    if (udpFree) return port;
  }
}

// One JSON object per message: rsyslog's `json` property option escapes
// quotes, backslashes and control characters, so hostile values parse back.
const TEMPLATE = [
  '{"input":"%inputname:::json%"',
  '"pri":"%PRI%"',
  '"timestamp":"%TIMESTAMP:::date-rfc3339,json%"',
  '"hostname":"%HOSTNAME:::json%"',
  '"appName":"%APP-NAME:::json%"',
  '"procid":"%PROCID:::json%"',
  '"msgid":"%MSGID:::json%"',
  '"sd":"%STRUCTURED-DATA:::json%"',
  '"msg":"%msg:::json%"',
  '"raw":"%rawmsg:::json%"}',
].join(',');

function config(dir: string, outFile: string, ports: { plain: number; tls: number }, o: StartRsyslogOptions) {
  const tls = o.cert
    ? `input(type="imtcp" port="${ports.tls}" address="127.0.0.1" name="tls" streamDriver.name="${o.driver ?? 'gtls'}"
      streamDriver.mode="1" streamDriver.authMode="anon"
      streamDriver.CAFile="${o.cert.certFile}" streamDriver.CertFile="${o.cert.certFile}" streamDriver.KeyFile="${o.cert.keyFile}")`
    : '';
  return `global(workDirectory="${dir}" parser.escapeControlCharactersOnReceive="off" maxMessageSize="1m")
module(load="imtcp" maxSessions="200")
module(load="imudp")
input(type="imtcp" port="${ports.plain}" address="127.0.0.1" name="tcp")
input(type="imudp" port="${ports.plain}" address="127.0.0.1" name="udp")
${tls}
template(name="jsonline" type="string" string="${TEMPLATE.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}\\n")
action(type="omfile" file="${outFile}" template="jsonline" asyncWriting="off" flushOnTXEnd="on")
`;
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = netConnect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/**
 * Parses the output file: one JSON object per line. A last line without its
 * newline is one rsyslog is still writing (the file is read while it
 * writes), so it is left for the next read.
 */
export function parseOutput(text: string): ReceivedSyslog[] {
  return text
    .slice(0, text.lastIndexOf('\n') + 1)
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => {
      const o = JSON.parse(l) as Record<string, string>;
      return { ...(o as unknown as ReceivedSyslog), pri: Number(o['pri']) };
    });
}

/**
 * Starts `rsyslogd -n -iNONE -f CONF` with TCP and UDP inputs on one free port
 * and, with a certificate, a TLS input on another; resolves once it accepts
 * connections. Kill it with `close()` in cleanup.
 */
export async function startRsyslog(options: StartRsyslogOptions = {}): Promise<Rsyslog> {
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'tw-rsyslog-'));
  mkdirSync(dir, { recursive: true });
  const ports = options.ports ?? { plain: await freePort(), tls: await freePort() };
  const outFile = join(dir, 'messages.jsonl');
  const conf = join(dir, 'rsyslog.conf');
  writeFileSync(conf, config(dir, outFile, ports, options));
  const stderr: string[] = [];
  const child: ChildProcess = spawn('rsyslogd', ['-n', '-iNONE', '-f', conf], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout?.on('data', (d: Buffer) => stderr.push(d.toString()));
  child.stderr?.on('data', (d: Buffer) => stderr.push(d.toString()));
  let exited = false;
  const exit = new Promise<void>((resolve) =>
    child.once('exit', () => {
      exited = true;
      resolve();
    }),
  );

  const stop = async (signal: NodeJS.Signals = 'SIGTERM') => {
    if (!exited) child.kill(signal);
    await exit;
  };

  const deadline = Date.now() + 10_000;
  for (;;) {
    if (exited) throw new Error(`rsyslogd exited: ${stderr.join('')}`);
    const up = (await canConnect(ports.plain)) && (!options.cert || (await canConnect(ports.tls)));
    if (up) break;
    if (Date.now() > deadline) {
      await stop('SIGKILL');
      throw new Error(`rsyslogd did not listen within 10 s: ${stderr.join('')}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }

  const messages = () => (existsSync(outFile) ? parseOutput(readFileSync(outFile, 'utf8')) : []);
  return {
    port: ports.plain,
    tlsPort: ports.tls,
    dir,
    outFile,
    options: { ...options, ports, dir },
    messages,
    async waitFor(n, timeoutMs = 10_000) {
      const end = Date.now() + timeoutMs;
      for (;;) {
        const got = messages();
        if (got.length >= n) return got;
        if (Date.now() > end)
          throw new Error(`rsyslog wrote ${got.length} of ${n} messages; its output: ${stderr.join('')}`);
        await new Promise((r) => setTimeout(r, 25));
      }
    },
    stop,
    async close() {
      await stop('SIGKILL');
      if (!options.dir) rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** One SD-ELEMENT with its parameters unescaped (RFC 5424 §6.3.3). */
export interface SdElement {
  id: string;
  params: Array<[string, string]>;
}

/** Parses STRUCTURED-DATA as received; throws on anything malformed. */
export function parseStructuredData(sd: string): SdElement[] {
  if (sd === '-') return [];
  const out: SdElement[] = [];
  let i = 0;
  const fail = (why: string) => {
    throw new Error(`bad structured data at ${i}: ${why} in ${JSON.stringify(sd.slice(0, 200))}`);
  };
  while (i < sd.length) {
    if (sd[i] !== '[') fail('expected [');
    i++;
    const idEnd = sd.slice(i).search(/[ \]]/);
    if (idEnd < 0) fail('unterminated SD-ID');
    const el: SdElement = { id: sd.slice(i, i + idEnd), params: [] };
    i += idEnd;
    while (sd[i] === ' ') {
      i++;
      const eq = sd.indexOf('="', i);
      if (eq < 0) fail('expected name="');
      const name = sd.slice(i, eq);
      i = eq + 2;
      let value = '';
      for (;;) {
        const c = sd[i];
        if (c === undefined) fail('unterminated value');
        if (c === '\\' && (sd[i + 1] === '"' || sd[i + 1] === '\\' || sd[i + 1] === ']')) {
          value += sd[i + 1];
          i += 2;
        } else if (c === '"') {
          i++;
          break;
        } else {
          value += c;
          i++;
        }
      }
      el.params.push([name, value]);
    }
    if (sd[i] !== ']') fail('expected ]');
    i++;
    out.push(el);
  }
  return out;
}
