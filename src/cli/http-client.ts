import type { Command } from 'commander';

/** How the CLI reaches a Trailwarden server. */
export interface ClientOptions {
  /** Base URL, e.g. `http://127.0.0.1:8080` (a path prefix is kept). */
  url: string;
  /** API key sent as a bearer token; none when unset. */
  key?: string | undefined;
}

export const DEFAULT_URL = 'http://127.0.0.1:8080';

/** One problem listed in a problem+json answer (index is within the batch sent). */
export interface ApiProblem {
  index?: number;
  path?: string;
  message: string;
}

/** A non-2xx answer from the API, read from its RFC 9457 problem+json body. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly detail: string;
  readonly problems: ApiProblem[];

  constructor(status: number, code: string, detail: string, problems: ApiProblem[]) {
    const listed = problems.map((p) => `\n  - ${describeProblem(p)}`).join('');
    super(`${code}: ${detail}${listed}`);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.detail = detail;
    this.problems = problems;
  }
}

/** `[3] actor.email: expected an email address` */
export function describeProblem(p: ApiProblem): string {
  const index = p.index === undefined ? '' : `[${p.index}] `;
  return `${index}${p.path ? `${p.path}: ` : ''}${p.message}`;
}

export type QueryValue = string | number | boolean | undefined;

export interface RequestOptions {
  query?: Record<string, QueryValue>;
  body?: string | Uint8Array;
  contentType?: string;
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

/** A tiny client for the Trailwarden API over Node's global `fetch`. */
export class ApiClient {
  readonly baseUrl: URL;
  readonly #key: string | undefined;

  constructor(opts: ClientOptions) {
    // A trailing slash makes relative paths resolve under any path prefix.
    this.baseUrl = new URL(opts.url.endsWith('/') ? opts.url : `${opts.url}/`);
    this.#key = opts.key;
  }

  /** The absolute URL for an API path and query (undefined values are left out). */
  urlFor(path: string, query: Record<string, QueryValue> = {}): URL {
    const url = new URL(path.replace(/^\/+/, ''), this.baseUrl);
    for (const [name, value] of Object.entries(query)) {
      if (value !== undefined) url.searchParams.set(name, String(value));
    }
    return url;
  }

  /**
   * Sends one request and returns the response when it is 2xx; otherwise
   * throws an `ApiError` built from the problem+json body.
   */
  async request(method: string, path: string, opts: RequestOptions = {}): Promise<Response> {
    const url = this.urlFor(path, opts.query);
    const headers: Record<string, string> = { accept: 'application/json', ...opts.headers };
    if (this.#key) headers.authorization = `Bearer ${this.#key}`;
    if (opts.contentType) headers['content-type'] = opts.contentType;
    let res: Response;
    try {
      res = await fetch(url, {
        method,
        headers,
        ...(opts.body === undefined ? {} : { body: opts.body }),
        ...(opts.signal ? { signal: opts.signal } : {}),
      });
    } catch (err) {
      if (opts.signal?.aborted) throw err;
      // fetch reports "fetch failed"; the useful part (ECONNREFUSED, ENOTFOUND) is in the cause.
      const cause = err instanceof Error && err.cause instanceof Error ? err.cause.message : String(err);
      throw new Error(`cannot reach Trailwarden at ${this.baseUrl.origin}: ${cause}`, { cause: err });
    }
    if (!res.ok) throw await errorFrom(res);
    return res;
  }

  /** `request`, then the body parsed as JSON. */
  async json<T>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
    const res = await this.request(method, path, opts);
    return (await res.json()) as T;
  }
}

async function errorFrom(res: Response): Promise<ApiError> {
  const text = await res.text().catch(() => '');
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  if (body !== null && typeof body === 'object') {
    const b = body as Record<string, unknown>;
    const code = typeof b.code === 'string' ? b.code : `HTTP ${res.status}`;
    const detail =
      typeof b.detail === 'string' ? b.detail : typeof b.title === 'string' ? b.title : res.statusText;
    const problems = Array.isArray(b.problems) ? b.problems.filter(isProblem) : [];
    return new ApiError(res.status, code, detail, problems);
  }
  // Not problem+json (a proxy's HTML page, say): show the start of it.
  const excerpt = text.trim().slice(0, 200);
  return new ApiError(res.status, `HTTP ${res.status}`, excerpt || res.statusText || 'request failed', []);
}

function isProblem(p: unknown): p is ApiProblem {
  return p !== null && typeof p === 'object' && typeof (p as ApiProblem).message === 'string';
}

/** Adds `--url` and `--key` to a command. */
export function addClientOptions(cmd: Command): Command {
  return cmd
    .option('--url <url>', `server base URL (env TRAILWARDEN_URL; default ${DEFAULT_URL})`)
    .option('--key <key>', 'API key (env TRAILWARDEN_KEY)');
}

/** Client options from flags, then the environment, then the default URL. */
export function clientOptionsFrom(
  flags: { url?: string; key?: string },
  env: NodeJS.ProcessEnv,
): ClientOptions {
  return {
    url: flags.url || env.TRAILWARDEN_URL || DEFAULT_URL,
    key: flags.key || env.TRAILWARDEN_KEY || undefined,
  };
}

/** The event filters shared by `tail` and `export`, as CLI flags. */
export interface FilterFlags {
  tenantId?: string;
  action?: string;
  actorId?: string;
  resourceType?: string;
  resourceId?: string;
  outcome?: string;
}

/** Adds the filter flags to a command. */
export function addFilterOptions(cmd: Command): Command {
  return cmd
    .option('--tenant-id <id>', 'only events of this tenant')
    .option('--action <action>', 'exact action, or a prefix ending in ".*" (user.*)')
    .option('--actor-id <id>', 'only events by this actor')
    .option('--resource-type <type>', 'only events on resources of this type')
    .option('--resource-id <id>', 'only events on this resource')
    .option('--outcome <outcome>', 'success | failure | denied');
}

/** Maps filter flags onto the API's query parameters. */
export function filterQuery(flags: FilterFlags): Record<string, QueryValue> {
  return {
    tenant_id: flags.tenantId,
    action: flags.action,
    actor_id: flags.actorId,
    resource_type: flags.resourceType,
    resource_id: flags.resourceId,
    outcome: flags.outcome,
  };
}
