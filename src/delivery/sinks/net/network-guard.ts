import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from 'node:dns';
import { BlockList, isIP, isIPv4 } from 'node:net';
import type { buildConnector } from 'undici';
import type { SinkContext } from '../../sink.js';

/**
 * Refuses outgoing connections to addresses inside the operator's own network
 * (SSRF): a sink URL is configuration, but it may come from a tenant-facing
 * admin or a templated value, and a hostname may resolve to anything.
 *
 * The check runs on the address actually connected to: IP-literal hosts before
 * connecting, hostnames inside the socket's DNS lookup. Checking the resolved
 * address in the same lookup that `connect()` uses leaves no gap for DNS
 * rebinding between a check and the connection.
 */

/** A connection refused because its address is in a private or special range. */
export class ForbiddenAddressError extends Error {
  readonly code = 'TW_FORBIDDEN_ADDRESS';
  readonly address: string;
  constructor(address: string, hint: string) {
    super(`target address ${address} is in a private range; ${hint}`);
    this.name = 'ForbiddenAddressError';
    this.address = address;
  }
}

/** [network, prefix length] in IPv4, as a 32-bit number. */
const FORBIDDEN_V4: ReadonlyArray<readonly [string, number]> = [
  ['0.0.0.0', 8], // "this network", includes the unspecified address
  ['10.0.0.0', 8], // private (RFC 1918)
  ['100.64.0.0', 10], // carrier-grade NAT (RFC 6598)
  ['127.0.0.0', 8], // loopback
  ['169.254.0.0', 16], // link-local, cloud metadata endpoints
  ['172.16.0.0', 12], // private (RFC 1918)
  ['192.0.0.0', 24], // IETF protocol assignments
  ['192.168.0.0', 16], // private (RFC 1918)
  ['198.18.0.0', 15], // benchmarking (RFC 2544)
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved, includes broadcast 255.255.255.255
];

/** [first groups, prefix length] in IPv6, as 16-bit groups. */
const FORBIDDEN_V6: ReadonlyArray<readonly [number[], number]> = [
  [[0, 0, 0, 0, 0, 0, 0, 0], 128], // unspecified ::
  [[0, 0, 0, 0, 0, 0, 0, 1], 128], // loopback ::1
  [[0x0064, 0xff9b, 0x0001], 48], // local-use NAT64 (RFC 8215)
  [[0x0100, 0, 0, 0], 64], // discard-only (RFC 6666)
  [[0xfc00], 7], // unique-local
  [[0xfe80], 10], // link-local
  [[0xfec0], 10], // site-local (deprecated, still routed by some stacks)
  [[0xff00], 8], // multicast
];

function v4ToNumber(ip: string): number {
  return ip.split('.').reduce((n, part) => n * 256 + Number(part), 0);
}

function inV4Range(ip: number, [net, bits]: readonly [string, number]): boolean {
  const shift = 32 - bits;
  return Math.floor(ip / 2 ** shift) === Math.floor(v4ToNumber(net) / 2 ** shift);
}

/** Eight 16-bit groups of a valid IPv6 address (zone id dropped, embedded IPv4 expanded). */
function v6Groups(ip: string): number[] {
  let text = ip.split('%')[0] ?? ip;
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted?.[1]) {
    const n = v4ToNumber(dotted[1]);
    text = `${text.slice(0, -dotted[1].length)}${(n >>> 16).toString(16)}:${(n & 0xffff).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const parse = (s: string) => (s === '' ? [] : s.split(':').map((g) => Number.parseInt(g, 16)));
  const left = parse(head);
  if (tail === undefined) return left;
  const right = parse(tail);
  return [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
}

function inV6Range(groups: number[], [net, bits]: readonly [number[], number]): boolean {
  for (let i = 0; i * 16 < bits; i++) {
    const take = Math.min(16, bits - i * 16);
    const mask = (0xffff << (16 - take)) & 0xffff;
    if (((groups[i] ?? 0) & mask) !== ((net[i] ?? 0) & mask)) return false;
  }
  return true;
}

function v4FromGroups(hi: number | undefined, lo: number | undefined): string {
  const h = hi ?? 0;
  const l = lo ?? 0;
  return `${h >>> 8}.${h & 0xff}.${l >>> 8}.${l & 0xff}`;
}

/**
 * Whether a connection to `ip` must be refused unless private networks are
 * allowed: private, loopback, link-local, unique-local, CGNAT, multicast,
 * unspecified and reserved ranges, also when an IPv6 address embeds such an
 * IPv4 address (IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible, NAT64
 * `64:ff9b::/96`, 6to4 `2002::/16`). Anything that is not an IP address is
 * refused too.
 */
export function isForbiddenAddress(ip: string): boolean {
  if (isIPv4(ip)) {
    const n = v4ToNumber(ip);
    return FORBIDDEN_V4.some((range) => inV4Range(n, range));
  }
  if (isIP(ip.split('%')[0] ?? '') !== 6) return true;
  const g = v6Groups(ip);
  if (FORBIDDEN_V6.some((range) => inV6Range(g, range))) return true;
  const [g0, g1, g2, g3, g4, g5, g6, g7] = g;
  // IPv4-mapped ::ffff:0:0/96 and IPv4-compatible ::/96 (deprecated).
  if (g0 === 0 && g1 === 0 && g2 === 0 && g3 === 0 && g4 === 0 && (g5 === 0xffff || g5 === 0)) {
    return isForbiddenAddress(v4FromGroups(g6, g7));
  }
  // NAT64 well-known prefix 64:ff9b::/96 reaches the embedded IPv4 address.
  if (g0 === 0x64 && g1 === 0xff9b && g2 === 0 && g3 === 0 && g4 === 0 && g5 === 0) {
    return isForbiddenAddress(v4FromGroups(g6, g7));
  }
  // 6to4 2002:AABB:CCDD::/48 tunnels to the IPv4 address AA.BB.CC.DD.
  if (g0 === 0x2002) return isForbiddenAddress(v4FromGroups(g1, g2));
  return false;
}

type LookupCallback = (
  err: NodeJS.ErrnoException | null,
  address: string | LookupAddress[],
  family?: number,
) => void;

/** A `dns.lookup`-shaped function, as `net.connect`, `tls.connect` and undici's connector take it. */
export type GuardedLookup = (hostname: string, options: LookupOptions, callback: LookupCallback) => void;

/**
 * Where a sink may connect. `active: false` lets everything through (an
 * operator's sink with `allow_private_networks: true`); otherwise addresses
 * in private and special ranges are refused, except those the operator
 * listed in `allowed_private_networks`.
 */
export interface NetworkGuard {
  readonly active: boolean;
  /** Whether a connection to this IP address must be refused. */
  forbidden(ip: string): boolean;
  /**
   * A `dns.lookup` replacement for `net.connect` that fails with
   * ForbiddenAddressError when any resolved address is forbidden. Handles
   * both the single-address form and `all: true` (Node's happy eyeballs).
   */
  readonly lookup: GuardedLookup;
  /**
   * Wraps an undici connector so IP-literal hosts are checked before
   * connecting (Node skips the lookup for them); hostnames are checked by
   * `lookup`, which the connector must be built with.
   */
  connector(connect: buildConnector.connector): buildConnector.connector;
  /** Throws ForbiddenAddressError when `host` is an IP literal that is forbidden (Node does no lookup for those). */
  checkLiteral(host: string): void;
}

/** Checks `allowed_private_networks` entries; returns the problem or `null`. Shared with config validation. */
export function cidrProblem(cidr: string): string | null {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(cidr);
  const family = m ? isIP(m[1]!) : 0;
  if (!m || family === 0)
    return `expected a network such as 10.20.0.0/16 or fd00::/8, got ${JSON.stringify(cidr)}`;
  const bits = Number(m[2]);
  if (bits > (family === 4 ? 32 : 128)) return `prefix /${bits} is too long for ${m[1]}`;
  return null;
}

function allowList(cidrs: readonly string[]): BlockList | null {
  if (cidrs.length === 0) return null;
  const list = new BlockList();
  for (const cidr of cidrs) {
    const problem = cidrProblem(cidr);
    if (problem) throw new Error(`allowed_private_networks: ${problem}`);
    const [net, bits] = cidr.split('/') as [string, string];
    list.addSubnet(net, Number(bits), isIPv4(net) ? 'ipv4' : 'ipv6');
  }
  return list;
}

/** The IPv4 address an IPv4-mapped IPv6 address carries, if it is one. */
function mappedV4(ip: string): string | undefined {
  return /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip)?.[1];
}

const OPEN_GUARD: NetworkGuard = {
  active: false,
  forbidden: () => false,
  lookup: (hostname, options, callback) => dnsLookup(hostname, options, callback as never),
  connector: (connect) => connect,
  checkLiteral: () => undefined,
};

/**
 * The guard of one sink. `allowPrivate` (an operator's choice, never a
 * tenant admin's) turns it off; `allowed` lists the private networks every
 * guarded sink may still reach (e.g. an egress proxy).
 */
export function networkGuard(opts: {
  allowPrivate: boolean;
  allowed?: readonly string[];
  /** The sink is a tenant-bound admin's: the refusal says it cannot be allowed. */
  tenantBound?: boolean;
}): NetworkGuard {
  if (opts.allowPrivate) return OPEN_GUARD;
  const allowed = allowList(opts.allowed ?? []);
  const hint = opts.tenantBound
    ? "a tenant-bound admin's sink reaches public addresses only" +
      (allowed ? ' and the allowed_private_networks of the operator' : '')
    : 'set allow_private_networks: true to allow' +
      (allowed ? ', or add its network to allowed_private_networks' : '');
  const forbidden = (ip: string): boolean => {
    if (!isForbiddenAddress(ip)) return false;
    if (allowed === null) return true;
    const bare = ip.split('%')[0] ?? ip;
    const v4 = isIPv4(bare) ? bare : mappedV4(bare);
    return !(v4 !== undefined ? allowed.check(v4, 'ipv4') : allowed.check(bare, 'ipv6'));
  };
  const refuse = (ip: string) => new ForbiddenAddressError(ip, hint);
  const lookup: GuardedLookup = (hostname, options, callback) => {
    dnsLookup(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) return callback(err, []);
      const bad = addresses.find((a) => forbidden(a.address));
      if (bad) return callback(refuse(bad.address), []);
      if (options.all) return callback(null, addresses);
      const first = addresses[0];
      if (!first)
        return callback(Object.assign(new Error(`${hostname} has no address`), { code: 'ENOTFOUND' }), []);
      callback(null, first.address, first.family);
    });
  };
  const checkLiteral = (host: string) => {
    const bare = host.replace(/^\[(.*)\]$/, '$1');
    if (isIP(bare.split('%')[0] ?? '') !== 0 && forbidden(bare)) throw refuse(bare);
  };
  return {
    active: true,
    forbidden,
    lookup,
    checkLiteral,
    connector: (connect) => (options, callback) => {
      try {
        checkLiteral(options.hostname);
      } catch (err) {
        callback(err as Error, null);
        return;
      }
      // undici's connector returns the socket it opens (not in its types): passed on for a caller that ends it early.
      return connect(options, callback);
    },
  };
}

/** Finds a ForbiddenAddressError in an error or its causes. */
export function forbiddenAddressIn(err: unknown): ForbiddenAddressError | undefined {
  for (let e = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    if (e instanceof ForbiddenAddressError) return e;
  }
  return undefined;
}

/**
 * The guard of a sink from its `allow_private_networks` option: honoured only
 * for the operator's and all-tenant admins' sinks; a tenant-bound admin's
 * sink is always held to public addresses (and `allowed_private_networks`).
 */
export function sinkNetworkGuard(
  allowPrivate: boolean,
  ctx: Pick<SinkContext, 'owner' | 'allowedPrivateNetworks'>,
): NetworkGuard {
  const tenantBound = ctx.owner.tenantId !== null;
  return networkGuard({
    allowPrivate: allowPrivate && !tenantBound,
    allowed: ctx.allowedPrivateNetworks,
    tenantBound,
  });
}
