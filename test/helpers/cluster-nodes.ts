/**
 * Several `trailwarden serve` nodes on one PostgreSQL database, as a
 * deployment runs them: one shared signing key, one admin token, a lease time
 * short enough for a test. Plus what failover tests need around them: kill -9
 * a node, ask every node whether it sequences, read the whole log.
 * `load-generator.ts` keeps producers posting through the live nodes.
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { removeDir, type Server, startServer, tempDir, writeConfig } from './cli.js';

/** A token in the format `TRAILWARDEN_ADMIN_KEY` takes (see importApiKey in src/auth/api-keys.ts). */
export function adminToken(): string {
  return `tw_${randomBytes(10).toString('hex').slice(0, 16)}_${randomBytes(32).toString('base64url')}`;
}

/** What `/readyz` answers when the node and its store are ready. */
export interface Readiness {
  status: string;
  store: string;
  head_seq: number;
  sequencer: boolean;
}

/** One node of the cluster. */
export interface ClusterNode {
  /** Its `cluster.node_id`: `node-1`, `node-2`, … */
  readonly id: string;
  /** Its YAML config file (also what `verify --config` reads). */
  readonly config: string;
  readonly server: Server;
  /** Set before the test's SIGKILL is sent, so a request failing from then on is expected. */
  killed: boolean;
}

export interface ClusterOptions {
  /** `postgres://` URL of the (empty) database all nodes share. */
  store: string;
  count: number;
  leaseMs: number;
  /** Per node start timeout; generous, since a loaded machine starts slowly. */
  startTimeoutMs?: number;
}

/** `fetch` that never waits longer than `ms`: a hung node must fail the check, not the test run. */
function fetchWithin(url: URL, init: RequestInit, ms: number): Promise<Response> {
  return fetch(url, { ...init, signal: AbortSignal.timeout(ms) });
}

/** N nodes on one database. Create with {@link NodeCluster.start}; always `close()` (an after hook). */
export class NodeCluster {
  readonly nodes: ClusterNode[] = [];
  /** Nodes that exited without the test killing them (a crash is a failure in every scenario). */
  readonly crashed: string[] = [];
  readonly adminKey = adminToken();
  /** One key for the secrets of API sinks, shared by every node as a deployment does. */
  readonly secretsKey = randomBytes(32).toString('base64');
  readonly dir = tempDir('tw-e2e-cluster-');
  readonly keyFile = join(this.dir, 'shared.pem');

  private constructor(private readonly opts: ClusterOptions) {
    const { privateKey } = generateKeyPairSync('ed25519');
    writeFileSync(this.keyFile, privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });
  }

  /**
   * Starts `count` nodes together on the empty database, as a deployment
   * does. `onCreated` gets the cluster before any node starts, so a caller's
   * after hook can `close()` it even when a start fails (the promise rejects;
   * the nodes up so far are in `nodes`).
   */
  static async start(opts: ClusterOptions, onCreated: (c: NodeCluster) => void): Promise<NodeCluster> {
    const cluster = new NodeCluster(opts);
    onCreated(cluster);
    await Promise.all(Array.from({ length: opts.count }, (_, i) => cluster.startNode(i + 1)));
    return cluster;
  }

  private async startNode(n: number): Promise<ClusterNode> {
    const id = `node-${n}`;
    const nodeDir = join(this.dir, id);
    mkdirSync(nodeDir);
    const config = writeConfig(nodeDir, {
      listen: '127.0.0.1:0',
      data_dir: join(nodeDir, 'data'),
      store: this.opts.store,
      // Reads audited into the log would interleave with the scenario's events.
      audit_reads: false,
      checkpoints: {
        key_file: this.keyFile,
        // No origin: nodes starting together must agree on the one the first of them keeps.
        every_ms: 1000,
      },
      cluster: { lease_ms: this.opts.leaseMs, node_id: id },
    });
    const server = await startServer({
      dataDir: join(nodeDir, 'data'),
      config,
      env: { TRAILWARDEN_ADMIN_KEY: this.adminKey, TRAILWARDEN_SECRETS_KEY: this.secretsKey },
      timeoutMs: this.opts.startTimeoutMs ?? 60_000,
    });
    const node: ClusterNode = { id, config, server, killed: false };
    this.nodes.push(node);
    server.child.once('exit', (code, signal) => {
      if (!node.killed)
        this.crashed.push(`${id} exited (code ${code}, signal ${signal})\n${server.stderr()}`);
    });
    return node;
  }

  /** Nodes not killed by the test, in start order. */
  live(): ClusterNode[] {
    return this.nodes.filter((n) => !n.killed);
  }

  node(id: string): ClusterNode {
    const found = this.nodes.find((n) => n.id === id);
    if (!found) throw new Error(`no node ${id}`);
    return found;
  }

  /** kill -9: no shutdown hook runs, leases are left to expire. */
  async kill(node: ClusterNode): Promise<void> {
    node.killed = true;
    await node.server.stop('SIGKILL');
  }

  /** A node's `/readyz`, or undefined when it answers anything but 200 (or nothing within 5 s). */
  async readiness(node: ClusterNode): Promise<Readiness | undefined> {
    try {
      const res = await fetchWithin(new URL('/readyz', node.server.url), {}, 5000);
      if (res.status !== 200) {
        await res.body?.cancel();
        return undefined;
      }
      return (await res.json()) as Readiness;
    } catch {
      return undefined;
    }
  }

  /** The live nodes that say `sequencer: true` right now, asked together. */
  async sequencers(): Promise<ClusterNode[]> {
    const live = this.live();
    const states = await Promise.all(live.map((n) => this.readiness(n)));
    return live.filter((_, i) => states[i]?.sequencer === true);
  }

  /**
   * Polls until exactly one live node says `sequencer: true` in three
   * polls in a row, and returns it. Throws when `timeoutMs` passes, or at
   * once when more than one node has claimed the role for longer than two
   * lease times in a row: no handover takes that long, so that is two
   * sequencers, not a handover seen half-way.
   */
  async soleSequencer(timeoutMs: number): Promise<ClusterNode & { since: number }> {
    const deadline = Date.now() + timeoutMs;
    let streak: { id: string; count: number; since: number } | undefined;
    let manySince: number | undefined;
    let last: string[] = [];
    for (;;) {
      const asked = Date.now();
      const seq = await this.sequencers();
      last = seq.map((n) => n.id);
      const only = seq.length === 1 ? seq[0] : undefined;
      if (only) {
        streak =
          streak?.id === only.id
            ? { ...streak, count: streak.count + 1 }
            : { id: only.id, count: 1, since: asked };
        // `since`: when the first poll of the streak was sent, not when the streak was confirmed.
        if (streak.count >= 3) return Object.assign(only, { since: streak.since });
      } else {
        streak = undefined;
      }
      if (seq.length > 1) manySince ??= Date.now();
      else manySince = undefined;
      const tooMany = manySince !== undefined && Date.now() - manySince > 2 * this.opts.leaseMs;
      if (tooMany || Date.now() > deadline) {
        throw new Error(
          `expected exactly one live node to report sequencer:true; ${
            tooMany ? `for over ${2 * this.opts.leaseMs} ms` : `after ${timeoutMs} ms`
          } these did: [${last.join(', ')}] of [${this.live()
            .map((n) => n.id)
            .join(', ')}]`,
        );
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Calls a node's API with the admin key; never waits more than `timeoutMs`. */
  request(node: ClusterNode, method: string, path: string, body?: unknown, timeoutMs = 20_000) {
    const headers: Record<string, string> = { authorization: `Bearer ${this.adminKey}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    return fetchWithin(
      new URL(path, node.server.url),
      { method, headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }) },
      timeoutMs,
    );
  }

  /** The whole log as `node` serves it, paged in ascending seq. */
  async readLog(node: ClusterNode): Promise<Array<{ seq: number; event_id: string }>> {
    const all: Array<{ seq: number; event_id: string }> = [];
    let cursor: string | null = null;
    do {
      const query: string = cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`;
      const res = await this.request(node, 'GET', `/v1/events?limit=1000&order=asc${query}`);
      if (res.status !== 200)
        throw new Error(`GET /v1/events on ${node.id}: ${res.status} ${await res.text()}`);
      const page = (await res.json()) as {
        events: Array<{ seq: number; event_id: string }>;
        next_cursor: string | null;
      };
      all.push(...page.events.map((e) => ({ seq: e.seq, event_id: e.event_id })));
      cursor = page.next_cursor;
    } while (cursor !== null);
    return all;
  }

  /** Kills whatever still runs and removes every node's folder. */
  async close(): Promise<void> {
    await Promise.all(
      this.nodes.map((n) => {
        n.killed = true;
        return n.server.stop('SIGKILL');
      }),
    );
    removeDir(this.dir);
  }
}
