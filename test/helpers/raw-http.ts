import { connect, type Socket } from 'node:net';

/** An HTTP/1.1 response as read off a raw socket. */
export interface RawResponse {
  status: number;
  /** Header names lowercased. */
  headers: Record<string, string>;
  body: string;
}

/**
 * A client connection that writes bytes exactly as given (a body never sent,
 * a body trickled, a header too large): what `fetch` and `inject()` cannot
 * send. It reads everything the server sends until asked to stop.
 */
export class RawConnection {
  private text = '';
  private waiters: Array<() => void> = [];
  readonly closed: Promise<void>;
  /** Set when the connection ended with an error (e.g. ECONNRESET) rather than a clean close. */
  error: string | undefined;

  private constructor(readonly socket: Socket) {
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      this.text += chunk;
      this.notify();
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      this.error = err.code ?? err.message;
    });
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    void this.closed.then(() => this.notify());
  }

  static async open(port: number): Promise<RawConnection> {
    const socket = connect(port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    return new RawConnection(socket);
  }

  /** Writes `data`; false once the socket can take nothing more (it was closed). */
  write(data: string | Buffer): boolean {
    if (this.socket.destroyed || !this.socket.writable) return false;
    this.socket.write(data);
    return true;
  }

  /** Resolves with the first whole response received, or `undefined` if the connection closed first. */
  async response(): Promise<RawResponse | undefined> {
    for (;;) {
      const parsed = parseResponse(this.text);
      if (parsed !== undefined) return parsed;
      if (this.socket.destroyed) return undefined;
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  /** Resolves with everything received once `done` holds for it, or once the connection closed. */
  async until(done: (received: string) => boolean): Promise<string> {
    while (!done(this.text) && !this.socket.destroyed) {
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
    return this.text;
  }

  /** Resolves once the server closed the connection (or it broke). */
  async untilClosed(): Promise<void> {
    await this.closed;
  }

  destroy(): void {
    this.socket.destroy();
  }

  private notify(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
}

/** The first whole response in `text` (Content-Length framing), if all of it arrived. */
export function parseResponse(text: string): RawResponse | undefined {
  const end = text.indexOf('\r\n\r\n');
  if (end < 0) return undefined;
  const [statusLine = '', ...lines] = text.slice(0, end).split('\r\n');
  const status = /^HTTP\/1\.1 (\d{3})/.exec(statusLine)?.[1];
  if (status === undefined) return undefined;
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  const length = Number(headers['content-length'] ?? 0);
  const body = Buffer.from(text.slice(end + 4), 'latin1');
  if (body.length < length) return undefined;
  return { status: Number(status), headers, body: body.subarray(0, length).toString('utf8') };
}

/** The request line and headers of an HTTP/1.1 request, ending with the blank line. */
export function requestHead(method: string, path: string, headers: Record<string, string | number>): string {
  const lines = [`${method} ${path} HTTP/1.1`, 'Host: 127.0.0.1'];
  for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${value}`);
  return `${lines.join('\r\n')}\r\n\r\n`;
}
