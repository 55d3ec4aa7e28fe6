import type { Client, Notification } from 'pg';
import { KEYS_CHANNEL } from './key-cache.js';
import { PENDING_CHANNEL } from './pending-batches.js';
import { createClient } from './postgres-connection.js';
import { APPEND_CHANNEL } from './postgres-writer.js';
import { LEASE_CHANNEL } from './sequencer-lease.js';

/** What the store does with each notice the LISTEN connection hears, and with its losses. */
export interface ListenHandlers {
  /** A new head (`APPEND_CHANNEL`), announced by whichever instance sequenced it. */
  head(head: number): void;
  /** Another node handed events over for the sequencer (`PENDING_CHANNEL`). */
  pending(): void;
  /** The sequencer lease was let go (`LEASE_CHANNEL`): try for it now. */
  leaseReleased(): void;
  /** A key was revoked (`KEYS_CHANNEL`): forget it. */
  keyRevoked(keyId: string): void;
  /** Whether notices are heard: false from a loss until the new connection listens. */
  listening(heard: boolean): void;
  /** A new connection replaces a lost one: notices sent meanwhile were missed. */
  reconnected(): void;
  /** The store is closing: a lost connection is not made again. */
  closing(): boolean;
}

/**
 * One connection for the life of the store, LISTENing for new heads (for
 * listeners), for pending events and lease changes (for the sequencer) and
 * for key revocations (for the key cache). When the connection is lost (a
 * database restart) it is made again half a second later.
 */
export class ListenConnection {
  private client: Client;
  /** Settles once the current connection listens (or failed and will be made again). */
  listening: Promise<void> = Promise.resolve();

  constructor(
    private readonly connectionString: string,
    private readonly handlers: ListenHandlers,
  ) {
    this.client = this.connect();
  }

  /** Ends the connection (the store stops). */
  async end(): Promise<void> {
    await this.client.end().catch(() => undefined);
  }

  private connect(): Client {
    const h = this.handlers;
    const client = createClient(this.connectionString);
    client.on('notification', (msg: Notification) => {
      if (msg.channel === PENDING_CHANNEL) {
        h.pending();
        return;
      }
      if (msg.channel === LEASE_CHANNEL) {
        h.leaseReleased();
        return;
      }
      if (msg.channel === KEYS_CHANNEL) {
        h.keyRevoked(msg.payload ?? '');
        return;
      }
      const head = Number((msg.payload ?? '').split(' ')[0]);
      if (Number.isSafeInteger(head)) h.head(head);
    });
    let lost = false;
    const reconnect = () => {
      if (lost || h.closing()) return;
      lost = true;
      // Revocations go unheard until it listens again.
      h.listening(false);
      client.end().catch(() => undefined);
      const timer = setTimeout(() => {
        if (h.closing()) return;
        this.client = this.connect();
        h.reconnected();
      }, 500);
      timer.unref();
    };
    client.on('error', reconnect);
    client.on('end', reconnect);
    this.listening = client
      .connect()
      .then(() =>
        client.query(
          `LISTEN ${APPEND_CHANNEL}; LISTEN ${PENDING_CHANNEL}; LISTEN ${LEASE_CHANNEL}; LISTEN ${KEYS_CHANNEL}`,
        ),
      )
      .then(
        () => {
          if (!lost) h.listening(true);
        },
        () => reconnect(),
      );
    return client;
  }
}
