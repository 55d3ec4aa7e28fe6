/**
 * Producers for failover tests: batches with unique, client-chosen event ids
 * posted through the live nodes of a {@link NodeCluster} until stopped, and
 * the record of what every answer promised.
 */
import { randomBytes } from 'node:crypto';
import { producerEvent } from './cli.js';
import type { ClusterNode, NodeCluster } from './cluster-nodes.js';

type Batch = Array<Record<string, unknown>>;

/** One producer: which node it sends to next (undefined: stop) and how many events per batch. */
export interface Producer {
  name: string;
  pick(): ClusterNode | undefined;
  batchSize: [min: number, max: number];
}

/** Producers that take the live nodes in turn. */
export function roundRobin(cluster: NodeCluster, count: number, batchSize: [number, number]): Producer[] {
  let turn = 0;
  const pick = () => {
    const live = cluster.live();
    return live[turn++ % live.length];
  };
  return Array.from({ length: count }, (_, i) => ({ name: `rr${i}`, pick, batchSize }));
}

/** A batch whose answer never came (or came broken): stored or not, unknown until it is resent. */
export interface Unanswered {
  node: string;
  batch: Batch;
  error: string;
}

/**
 * Producers posting batches with unique, client-chosen event ids until
 * stopped, and the record of every answer. A 201 acknowledges the batch's
 * ids; a 503 must be problem+json `TW_ERR_NOT_READY` with `Retry-After`;
 * anything else (a 500, a hang past the client timeout, a connection error
 * from a node the test did not kill) lands in `unexpected`.
 */
export class LoadGenerator {
  /** event_id → the node that acknowledged it and when. */
  readonly acked = new Map<string, { node: string; at: number }>();
  /** Answers 503 with the promised shape, by node and time. */
  readonly notReady: Array<{ node: string; at: number }> = [];
  readonly unanswered: Unanswered[] = [];
  /** Connection errors from nodes the test killed (expected; their batches are in `unanswered`). */
  connectionErrorsFromKilled = 0;
  readonly unexpected: string[] = [];
  /** Requests sent and not answered yet, and the events they carry, by node. */
  private readonly inFlight = new Map<string, { requests: number; events: number }>();
  private stopping = false;
  private running: Promise<void>[] = [];
  private readonly runId = randomBytes(3).toString('hex');

  constructor(
    private readonly cluster: NodeCluster,
    private readonly opts: { clientTimeoutMs: number } = { clientTimeoutMs: 20_000 },
  ) {}

  /** Starts producers; they run until `stop()` or until `pick` says undefined. */
  add(producers: Producer[]): void {
    this.running.push(...producers.map((p) => this.produce(p)));
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.running);
  }

  /** Requests to `node` not answered yet, and how many events they carry. */
  inFlightTo(node: ClusterNode): { requests: number; events: number } {
    return this.inFlight.get(node.id) ?? { requests: 0, events: 0 };
  }

  /** Events acknowledged by `node` at or after `since` (epoch ms). */
  ackedBy(node: ClusterNode, since = 0): number {
    let n = 0;
    for (const a of this.acked.values()) if (a.node === node.id && a.at >= since) n++;
    return n;
  }

  private async produce(p: Producer): Promise<void> {
    for (let n = 0; !this.stopping; n++) {
      const node = p.pick();
      if (node === undefined) return;
      const [min, max] = p.batchSize;
      const batch: Batch = Array.from({ length: min + Math.floor(Math.random() * (max - min + 1)) }, (_, i) =>
        producerEvent({
          event_id: `evt_fo_${this.runId}_${p.name}_${n}_${i}`,
          tenant_id: 'acme',
          reason: `${p.name}/${n}/${i}`,
        }),
      );
      const pause = await this.send(node, batch);
      if (pause > 0) await new Promise((r) => setTimeout(r, pause));
    }
  }

  /** Sends one batch and files the answer; returns how long to wait before the next. */
  private async send(node: ClusterNode, batch: Batch): Promise<number> {
    const before = this.inFlightTo(node);
    this.inFlight.set(node.id, { requests: before.requests + 1, events: before.events + batch.length });
    try {
      let res: Response;
      try {
        res = await this.cluster.request(node, 'POST', '/v1/events', batch, this.opts.clientTimeoutMs);
      } catch (err) {
        const error = errorText(err);
        this.unanswered.push({ node: node.id, batch, error });
        if (node.killed) this.connectionErrorsFromKilled++;
        else this.unexpected.push(`${node.id}: no answer from a live node: ${error}`);
        // A refused connection fails at once: without a pause this loop would spin.
        return 100;
      }
      const text = await res.text().catch((err: unknown) => {
        this.unanswered.push({ node: node.id, batch, error: `body: ${errorText(err)}` });
        return undefined;
      });
      if (text === undefined) {
        if (node.killed) this.connectionErrorsFromKilled++;
        else this.unexpected.push(`${node.id}: answer cut off by a live node`);
        return 100;
      }
      if (res.status === 201) {
        this.fileAcknowledged(node, batch, text);
        return 0;
      }
      this.unanswered.push({ node: node.id, batch, error: `${res.status}` });
      if (res.status === 503) {
        const problem = parseJson(text) as { code?: unknown } | undefined;
        const wellFormed =
          res.headers.get('retry-after') !== null &&
          (res.headers.get('content-type') ?? '').startsWith('application/problem+json') &&
          problem?.code === 'TW_ERR_NOT_READY';
        if (wellFormed) this.notReady.push({ node: node.id, at: Date.now() });
        else
          this.unexpected.push(
            `${node.id}: 503 without Retry-After or TW_ERR_NOT_READY problem+json: ` +
              `retry-after=${res.headers.get('retry-after')} content-type=${res.headers.get('content-type')} ${text}`,
          );
        // A client honouring Retry-After would wait longer; a short pause keeps the outage observed.
        return 200;
      }
      this.unexpected.push(`${node.id}: ${res.status} ${text.slice(0, 500)}`);
      return 200;
    } finally {
      const now = this.inFlightTo(node);
      this.inFlight.set(node.id, { requests: now.requests - 1, events: now.events - batch.length });
    }
  }

  private fileAcknowledged(node: ClusterNode, batch: Batch, text: string): void {
    const answer = parseJson(text) as {
      accepted?: unknown;
      events?: Array<{ event_id: string; status: string }>;
    };
    const ids = batch.map((e) => e.event_id as string);
    const answered = answer?.events?.map((e) => e.event_id) ?? [];
    const statusesOk =
      answer?.events?.every((e) => e.status === 'created' || e.status === 'duplicate') ?? false;
    if (answered.join() !== ids.join() || !statusesOk) {
      this.unexpected.push(`${node.id}: 201 that does not list the batch's events: ${text.slice(0, 500)}`);
    }
    const at = Date.now();
    for (const id of ids) this.acked.set(id, { node: node.id, at });
  }

  /**
   * Sends every unanswered batch again through `node` until it is
   * acknowledged (503s are waited out for up to `timeoutMs`): event ids make
   * this safe, and it settles whether each was stored. Returns answers that
   * were neither 201 nor 503.
   */
  async resendUnanswered(node: ClusterNode, timeoutMs = 60_000): Promise<string[]> {
    const refused: string[] = [];
    const deadline = Date.now() + timeoutMs;
    for (const { batch } of this.unanswered.splice(0)) {
      for (;;) {
        const res = await this.cluster.request(node, 'POST', '/v1/events', batch);
        const text = await res.text();
        if (res.status === 201) {
          this.fileAcknowledged(node, batch, text);
          break;
        }
        if (res.status !== 503 || Date.now() > deadline) {
          refused.push(`${res.status} ${text.slice(0, 500)}`);
          break;
        }
        await new Promise((r) => setTimeout(r, 250));
      }
    }
    return refused;
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function errorText(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = err.cause instanceof Error ? ` (${err.cause.message})` : '';
  return `${err.name}: ${err.message}${cause}`;
}
