import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from 'node:dns';
import { isIP, isIPv4 } from 'node:net';
import type { buildConnector } from 'undici';

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
  constructor(address: string) {
    super(`target address ${address} is in a private range; set allow_private_networks: true to allow`);
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

/**
 * A `dns.lookup` replacement for `net.connect` that fails with
 * ForbiddenAddressError when any resolved address is forbidden. Handles both
 * the single-address form and `all: true` (used by Node's happy eyeballs).
 */
export function guardedLookup(hostname: string, options: LookupOptions, callback: LookupCallback): void {
  dnsLookup(hostname, { ...options, all: true }, (err, addresses) => {
    if (err) return callback(err, []);
    const forbidden = addresses.find((a) => isForbiddenAddress(a.address));
    if (forbidden) return callback(new ForbiddenAddressError(forbidden.address), []);
    if (options.all) return callback(null, addresses);
    const first = addresses[0];
    if (!first)
      return callback(Object.assign(new Error(`${hostname} has no address`), { code: 'ENOTFOUND' }), []);
    callback(null, first.address, first.family);
  });
}

/**
 * Wraps an undici connector so IP-literal hosts are checked before connecting
 * (Node skips the lookup for them); hostnames are checked by `guardedLookup`,
 * which the connector must be built with.
 */
export function guardConnector(connect: buildConnector.connector): buildConnector.connector {
  return (options, callback) => {
    const host = options.hostname.replace(/^\[(.*)\]$/, '$1');
    if (isIP(host) !== 0 && isForbiddenAddress(host)) {
      callback(new ForbiddenAddressError(host), null);
      return;
    }
    connect(options, callback);
  };
}

/** Finds a ForbiddenAddressError in an error or its causes. */
export function forbiddenAddressIn(err: unknown): ForbiddenAddressError | undefined {
  for (let e = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    if (e instanceof ForbiddenAddressError) return e;
  }
  return undefined;
}
