import { type AgentOptions, type ClientRequestArgs, Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent, type RequestOptions as HttpsRequestOptions } from 'node:https';
import { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { NetworkGuard } from './network-guard.js';

/** Node's http and https agents of one sink, every connection through its network guard. */
export interface GuardedAgents {
  http: HttpAgent;
  https: HttpsAgent;
  /** Ends their sockets (kept-alive and in use); a connection asked for afterwards fails at once. */
  destroy(): void;
}

/** The guard's refusal of the host a connection is for, or `null`. */
function guardRefusal(
  guard: NetworkGuard,
  options: { host?: string | null; hostname?: string | null },
): Error | null {
  try {
    guard.checkLiteral(options.hostname ?? options.host ?? '');
    return null;
  } catch (err) {
    return err instanceof Error ? err : new Error(String(err));
  }
}

/** A socket that never connects and fails with `err`: the request using it fails with that error. */
function refusedSocket(err: Error): Socket {
  const socket = new Socket();
  process.nextTick(() => socket.destroy(err));
  return socket;
}

/**
 * Agents for an SDK that takes Node's agents (the AWS SDK's NodeHttpHandler
 * and the like). Hostnames are resolved with the guard's `lookup`, so the
 * check is on the address connected to; an IP-literal host, which Node
 * connects to without a lookup, is checked when the connection is created.
 * Checking there, rather than on a configured endpoint, also covers hosts
 * the SDK picks itself (regional endpoints, an endpoint from its own
 * configuration).
 */
export function guardedAgents(guard: NetworkGuard, options: AgentOptions): GuardedAgents {
  const agentOptions: AgentOptions = { ...options, ...(guard.active ? { lookup: guard.lookup } : {}) };
  // An SDK may still retry or clean up after its owner closed (lib-storage does): no socket is opened then.
  let destroyed = false;
  const refusal = (opts: { host?: string | null; hostname?: string | null }): Error | null =>
    destroyed ? new Error('the sink is closed') : guardRefusal(guard, opts);
  class GuardedHttpAgent extends HttpAgent {
    override createConnection(
      opts: ClientRequestArgs,
      callback?: (err: Error | null, stream: Duplex) => void,
    ): Duplex | null | undefined {
      const refused = refusal(opts);
      return refused ? refusedSocket(refused) : super.createConnection(opts, callback);
    }
  }
  class GuardedHttpsAgent extends HttpsAgent {
    override createConnection(
      opts: HttpsRequestOptions,
      callback?: (err: Error | null, stream: Duplex) => void,
    ): Duplex | null | undefined {
      const refused = refusal(opts);
      return refused ? refusedSocket(refused) : super.createConnection(opts, callback);
    }
  }
  const http = new GuardedHttpAgent(agentOptions);
  const https = new GuardedHttpsAgent(agentOptions);
  return {
    http,
    https,
    destroy() {
      destroyed = true;
      http.destroy();
      https.destroy();
    },
  };
}
