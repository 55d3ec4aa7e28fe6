import type { FastifyInstance } from 'fastify';
import { authenticate, type Principal, requirePermission } from '../auth/api-keys.js';
import type { Store } from '../store/store.js';

/** What a route asks of its caller: a key allowed to write, read or administer, or nothing. */
export type RouteAccess = 'write' | 'read' | 'admin' | 'public';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Every route declares it (`buildApp` refuses a route without it). */
    access?: RouteAccess;
  }
  interface FastifyRequest {
    /** The caller, found from the headers before the body is read; unset on public routes. */
    principal: Principal | undefined;
  }
}

/**
 * Authenticates every request on its headers alone, before Fastify reads its
 * body: a caller without a valid key for the route's access gets its 401 or
 * 403 at once, and its body is never buffered. Each route declares its access
 * in `config.access`; a route that forgets is refused when it is registered,
 * so no route can read a body before authentication by omission.
 */
export function authenticateOnHeaders(app: FastifyInstance, store: Store): void {
  app.decorateRequest('principal', undefined);
  app.addHook('onRoute', (route) => {
    if (route.config?.access === undefined) {
      throw new Error(
        `route ${String(route.method)} ${route.url} declares no config.access (write, read, admin or public)`,
      );
    }
  });
  app.addHook('onRequest', async (req) => {
    const access = req.routeOptions.config.access;
    // Unknown routes (no access) are answered by the not-found handling, public ones by their handler.
    if (access === undefined || access === 'public') return;
    const principal = await authenticate(store, req.headers.authorization);
    requirePermission(principal, access);
    req.principal = principal;
  });
}
