import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import type { LookupAddress } from 'node:dns';
import { isIP, isIPv6, connect as netConnect, type Socket } from 'node:net';
import { type ConnectionOptions, connect as tlsConnect } from 'node:tls';
import type { NetworkGuard } from '../net/network-guard.js';

export type SyslogProtocol = 'udp' | 'tcp' | 'tls';

export interface SyslogTransportOptions {
  protocol: SyslogProtocol;
  host: string;
  port: number;
  connectTimeoutMs: number;
  /** TLS settings (CA, client certificate, servername, rejectUnauthorized) for `tls`. */
  tls?: ConnectionOptions;
  /** Which addresses may be connected to (checked on the address actually used). */
  guard: NetworkGuard;
}

/**
 * Carries bytes to a syslog collector. Streams (TCP, TLS) keep one connection
 * open and open a new one on the next send after it broke; the worker's retry
 * schedule provides the backoff between attempts.
 */
export interface SyslogTransport {
  /**
   * Sends a batch: for a stream, one buffer of concatenated frames, resolved
   * once it was handed to an open connection without error; for UDP, one
   * datagram per buffer, resolved once each was sent. Rejects with a
   * readable reason.
   */
  send(payload: Buffer[], signal: AbortSignal): Promise<void>;
  /** Opens (and closes) a connection, or resolves the host for UDP; no message is sent. */
  probe(): Promise<void>;
  /** Closes the connection; a probe still connecting fails. */
  close(): Promise<void>;
}

/** An error whose message is the reason an outcome carries (its cause may be a ForbiddenAddressError). */
export class SyslogTransportError extends Error {}

/** The host's first address, resolved through the guard (an IP literal is checked as it is). */
function resolve(o: SyslogTransportOptions): Promise<string> {
  if (isIP(o.host) !== 0) {
    o.guard.checkLiteral(o.host);
    return Promise.resolve(o.host);
  }
  return new Promise((done, fail) =>
    o.guard.lookup(o.host, {}, (err, address) => {
      if (err) fail(err);
      else done(typeof address === 'string' ? address : ((address as LookupAddress[])[0]?.address ?? ''));
    }),
  );
}

function describe(err: unknown, o: SyslogTransportOptions): string {
  const e = err as Error & { code?: string; errors?: Error[] };
  const message = e.errors?.length ? e.errors.map((x) => x.message).join('; ') : (e.message ?? String(err));
  const code = e.code && !message.includes(e.code) ? ` (${e.code})` : '';
  const where = `${o.protocol}://${o.host}:${o.port}`;
  const hint =
    o.protocol === 'tls' &&
    /certificate|self.signed|issuer|altname|CERT_|verify/i.test(`${message} ${e.code}`)
      ? '; the collector certificate is not trusted: set tls.ca_file to the CA that signed it, or fix tls.servername'
      : '';
  return `cannot send to ${where}: ${message}${code}${hint}`;
}

/** Opens a TCP or TLS connection; rejects after `connectTimeoutMs` (TLS handshake included). */
function openStream(o: SyslogTransportOptions, signal?: AbortSignal): Promise<Socket> {
  return new Promise((resolve, reject) => {
    try {
      o.guard.checkLiteral(o.host);
    } catch (err) {
      reject(new SyslogTransportError(describe(err, o), { cause: err }));
      return;
    }
    const lookup = o.guard.active ? { lookup: o.guard.lookup } : {};
    const socket =
      o.protocol === 'tls'
        ? tlsConnect({ host: o.host, port: o.port, ...lookup, ...o.tls })
        : netConnect({ host: o.host, port: o.port, ...lookup });
    const fail = (err: unknown) => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      socket.destroy();
      reject(new SyslogTransportError(describe(err, o), { cause: err }));
    };
    const onAbort = () => fail(new Error('aborted: the sink is stopping'));
    const timer = setTimeout(
      () => fail(new Error(`no connection within connect_timeout_ms (${o.connectTimeoutMs} ms)`)),
      o.connectTimeoutMs,
    );
    signal?.addEventListener('abort', onAbort, { once: true });
    socket.once('error', fail);
    socket.once(o.protocol === 'tls' ? 'secureConnect' : 'connect', () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      socket.off('error', fail);
      resolve(socket);
    });
  });
}

/**
 * Writes younger than this when a connection drops are sent again on the next
 * one: the collector may have closed without reading them (TCP has no
 * application-level ack). Duplicates are the price; see docs/sinks/syslog.md.
 */
const RESEND_WINDOW_MS = 1000;
/** At most this much is kept for a resend. */
const RESEND_MAX_BYTES = 4 * 1_048_576;

class StreamTransport implements SyslogTransport {
  private socket: Socket | undefined;
  /** Recent writes on the current connection, oldest first. */
  private recent: Array<{ data: Buffer; at: number }> = [];
  /** What to send first on the next connection. */
  private resend: Buffer[] = [];
  /** Ends a probe's connection attempt at close(). */
  private readonly closing = new AbortController();

  constructor(private readonly o: SyslogTransportOptions) {}

  private async connected(signal: AbortSignal): Promise<Socket> {
    if (this.socket && !this.socket.destroyed && this.socket.writable) return this.socket;
    this.socket?.destroy();
    const socket = await openStream(this.o, signal);
    // A collector says nothing back; read and drop anything it sends so the socket notices a close.
    socket.resume();
    const drop = () => {
      if (this.socket === socket) {
        this.socket = undefined;
        const since = Date.now() - RESEND_WINDOW_MS;
        this.resend = this.recent.filter((w) => w.at >= since).map((w) => w.data);
        this.recent = [];
      }
      socket.destroy();
    };
    socket.on('error', drop);
    socket.on('end', drop);
    socket.on('close', drop);
    socket.setKeepAlive(true, 30_000);
    socket.setNoDelay(true);
    this.socket = socket;
    return socket;
  }

  async send(payload: Buffer[], signal: AbortSignal): Promise<void> {
    const socket = await this.connected(signal);
    const resend = this.resend;
    const fresh = payload.length === 1 ? payload[0]! : Buffer.concat(payload);
    const data = resend.length > 0 ? Buffer.concat([...resend, fresh]) : fresh;
    // Remembered before the write completes: a connection that drops while the write is in flight
    // (its callback still to come, e.g. TLS encrypting) must resend it too, or it is lost. The
    // resent part as well: a connection that drops again at once (a collector still starting) must not lose it.
    const written = this.remember(data);
    await new Promise<void>((resolve, reject) => {
      const onAbort = () => socket.destroy(new Error('aborted: the sink is stopping'));
      signal.addEventListener('abort', onAbort, { once: true });
      socket.write(data, (err) => {
        signal.removeEventListener('abort', onAbort);
        if (err) {
          socket.destroy();
          // The caller sends the batch again; a resend of it as well would only duplicate it.
          this.recent = this.recent.filter((w) => w !== written);
          this.resend = this.resend.filter((d) => d !== data);
          reject(new SyslogTransportError(describe(err, this.o)));
        } else {
          if (this.resend === resend) this.resend = [];
          resolve();
        }
      });
    });
  }

  private remember(data: Buffer): { data: Buffer; at: number } {
    const now = Date.now();
    const entry = { data, at: now };
    this.recent.push(entry);
    let bytes = this.recent.reduce((n, w) => n + w.data.length, 0);
    while (
      this.recent.length > 1 &&
      (this.recent[0]!.at < now - RESEND_WINDOW_MS || bytes > RESEND_MAX_BYTES)
    )
      bytes -= this.recent.shift()!.data.length;
    return entry;
  }

  async probe(): Promise<void> {
    (await openStream(this.o, this.closing.signal)).destroy();
  }

  async close(): Promise<void> {
    this.closing.abort();
    const s = this.socket;
    this.socket = undefined;
    if (!s || s.destroyed) return;
    await new Promise<void>((resolve) => {
      s.once('close', () => resolve());
      s.end();
      setTimeout(() => s.destroy(), 1000).unref();
    });
  }
}

class UdpTransport implements SyslogTransport {
  private socket: Promise<UdpSocket> | undefined;

  constructor(private readonly o: SyslogTransportOptions) {}

  /** A connected UDP socket: the kernel then reports ICMP "port unreachable" as ECONNREFUSED. */
  private open(): Promise<UdpSocket> {
    this.socket ??= (async () => {
      const address = await resolve(this.o);
      const s = createSocket(isIPv6(address) ? 'udp6' : 'udp4');
      s.on('error', () => this.reset(s));
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        s.connect(this.o.port, address, () => {
          s.off('error', reject);
          resolve();
        });
      });
      return s;
    })().catch((err) => {
      this.socket = undefined;
      throw new SyslogTransportError(describe(err, this.o), { cause: err });
    });
    return this.socket;
  }

  private reset(s: UdpSocket) {
    this.socket = undefined;
    try {
      s.close();
    } catch {
      // already closed
    }
  }

  async send(payload: Buffer[], signal: AbortSignal): Promise<void> {
    const s = await this.open();
    for (const datagram of payload) {
      if (signal.aborted) throw new SyslogTransportError('aborted: the sink is stopping');
      await new Promise<void>((resolve, reject) =>
        s.send(datagram, (err) => {
          if (err) {
            this.reset(s);
            reject(new SyslogTransportError(describe(err, this.o)));
          } else resolve();
        }),
      );
    }
  }

  async probe(): Promise<void> {
    try {
      await resolve(this.o);
    } catch (err) {
      throw new SyslogTransportError(describe(err, this.o), { cause: err });
    }
  }

  async close(): Promise<void> {
    const s = await this.socket?.catch(() => undefined);
    this.socket = undefined;
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
  }
}

/** A transport for the protocol; nothing is opened until the first send. */
export function createTransport(o: SyslogTransportOptions): SyslogTransport {
  return o.protocol === 'udp' ? new UdpTransport(o) : new StreamTransport(o);
}
