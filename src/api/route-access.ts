import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type {
  FastifyInstance,
  FastifyPluginAsync,
  FastifyRequest,
  onRequestHookHandler,
  RawServerDefault,
  RouteOptions,
} from 'fastify';
import { authenticate, type Principal, requirePermission } from '../auth/api-keys.js';
import type { Store } from '../store/store.js';
import type { AppContext } from './context.js';

/** What a route asks of its caller: a key allowed to write, read or administer, or nothing. */
export type RouteAccess = 'write' | 'read' | 'admin' | 'public';

/** Where the caller found on the headers is kept; routes read it as `req.principal`. */
const CALLER = Symbol('trailwarden.caller');

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Set for every route by the group it is registered in (`RouteGate.group`). */
    access?: RouteAccess;
  }
  interface FastifyRequest {
    /**
     * The caller, authenticated on the headers before the body was read and
     * allowed the route's access. Public routes have no caller: reading it
     * there is a programming error and throws.
     */
    readonly principal: Principal;
    [CALLER]: Principal | null;
  }
}

/** What every group of routes is registered with. */
export interface RoutesOptions {
  ctx: AppContext;
}

/**
 * A group of routes: an encapsulated Fastify plugin whose JSON schemas type
 * its requests (`req.params`, `req.query`, `req.body`) through the TypeBox
 * type provider, which infers types from plain JSON schemas written `as const`.
 */
export type RoutePlugin = FastifyPluginAsync<RoutesOptions, RawServerDefault, TypeBoxTypeProvider>;

/**
 * What a request goes through on its headers alone, before Fastify reads its
 * body, per group of routes: authentication for the group's access (a caller
 * without a valid key gets its 401 or 403 at once, and its body is never
 * buffered), then the body bounds, so that only callers with a key take
 * room in them. Every route belongs to a group; one registered outside any
 * is refused at startup, so no route can read a body before authentication
 * by omission.
 */
export class RouteGate {
  private readonly routes: RouteOptions[] = [];

  /** `limitBody` is the hook bounding bodies (body-budget.ts), shared by every group. */
  constructor(
    private readonly store: Store,
    private readonly limitBody: onRequestHookHandler,
  ) {}

  /** Installs `req.principal` and the startup check that every route belongs to a group. */
  install(app: FastifyInstance): void {
    app.decorateRequest(CALLER, null);
    app.decorateRequest('principal', {
      getter(this: FastifyRequest): Principal {
        const caller = this[CALLER];
        if (caller === null) {
          throw new Error(
            `${this.method} ${this.routeOptions.url ?? this.url} asks for a caller but is public`,
          );
        }
        return caller;
      },
    });
    // A group's own onRoute hook runs after this one and sets the access,
    // so the check waits until every route is registered.
    app.addHook('onRoute', (route) => {
      this.routes.push(route);
    });
    app.addHook('onReady', async () => {
      const loose = this.routes.filter((route) => route.config?.access === undefined);
      this.routes.length = 0;
      if (loose.length > 0) {
        const named = loose.map((route) => `${String(route.method)} ${route.url}`).join(', ');
        throw new Error(`routes registered outside a RouteGate group (no access declared): ${named}`);
      }
    });
  }

  /** `routes` as one group whose every route asks `access` of its caller. */
  group(access: RouteAccess, routes: RoutePlugin): RoutePlugin {
    const { store, limitBody } = this;
    return async (scope, opts) => {
      scope.addHook('onRoute', (route) => {
        const declared = route.config?.access;
        if (declared !== undefined && declared !== access) {
          throw new Error(
            `route ${String(route.method)} ${route.url} declares access ${declared} in a ${access} group`,
          );
        }
        route.config = { ...route.config, access };
      });
      if (access !== 'public') {
        scope.addHook('onRequest', async (req) => {
          const principal = await authenticate(store, req.headers.authorization);
          requirePermission(principal, access);
          req[CALLER] = principal;
        });
      }
      scope.addHook('onRequest', limitBody);
      await routes(scope, opts);
    };
  }
}
