import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';

/**
 * A TCP relay on 127.0.0.1 in front of a peer, which a test can take down
 * (nothing listens: connections are refused) and bring back on the same
 * port, and which counts the connections a client still holds to it. Bytes
 * pass through untouched, TLS included, so the peer behind it is the real one.
 */
export interface TcpGate {
  port: number;
  /** Connections from clients that are not closed yet. */
  openConnections(): number;
  /**
   * Stops listening and ends every connection, both ways; resolves once each
   * client connection is closed (the client saw the end and closed its side;
   * one that does not within `graceMs` is cut).
   */
  down(graceMs?: number): Promise<void>;
  /** Listens again on the same port. */
  up(): Promise<void>;
  close(): Promise<void>;
}

/** Starts a gate relaying to `127.0.0.1:targetPort`. */
export async function startTcpGate(targetPort: number): Promise<TcpGate> {
  const clients = new Set<Socket>();
  const relay = (client: Socket) => {
    clients.add(client);
    const upstream = tcpConnect({ host: '127.0.0.1', port: targetPort });
    client.on('close', () => {
      clients.delete(client);
      upstream.destroy();
    });
    upstream.on('close', () => client.end());
    client.on('error', () => client.destroy());
    upstream.on('error', () => upstream.destroy());
    client.pipe(upstream);
    upstream.pipe(client);
  };
  const listen = (server: Server, port: number) =>
    new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve((server.address() as { port: number }).port);
      });
    });
  let server: Server | undefined = createServer(relay);
  const port = await listen(server, 0);

  const down = async (graceMs = 2000) => {
    const s = server;
    server = undefined;
    // close() stops listening at once; its callback waits for the connections ended below.
    const closed = s ? new Promise<void>((resolve) => s.close(() => resolve())) : Promise.resolve();
    await Promise.all(
      [...clients].map(
        (c) =>
          new Promise<void>((resolve) => {
            if (c.destroyed) return resolve();
            c.once('close', () => resolve());
            c.end();
            setTimeout(() => c.destroy(), graceMs).unref();
          }),
      ),
    );
    await closed;
  };
  return {
    port,
    openConnections: () => clients.size,
    down,
    async up() {
      if (server) return;
      server = createServer(relay);
      await listen(server, port);
    },
    close: () => down(0),
  };
}
