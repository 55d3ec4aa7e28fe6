import { Worker, type WorkerOptions } from 'node:worker_threads';

/**
 * A worker thread running `name` (a module next to this one). Built, it is
 * plain JS; run from TypeScript sources (tests, `tsx`), a worker does not
 * inherit the parent's loader hooks, so a small bootstrap registers tsx in
 * the worker first.
 */
export function startThread(name: string, options: WorkerOptions): Worker {
  if (!import.meta.url.endsWith('.ts')) return new Worker(new URL(`./${name}.js`, import.meta.url), options);
  const url = new URL(`./${name}.ts`, import.meta.url);
  const tsx = import.meta.resolve('tsx/esm/api');
  const bootstrap = `import(${JSON.stringify(tsx)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(url.href)}); });`;
  return new Worker(bootstrap, { ...options, eval: true });
}
