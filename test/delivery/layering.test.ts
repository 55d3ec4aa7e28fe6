/**
 * The arrow between config and delivery runs one way: the config file's
 * schema validates sinks with delivery's schema, so delivery must not import
 * config (issue 15). The operator's secrets key lives in src/secrets/ and
 * `${NAME}` substitution in a leaf module for that reason.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const SRC = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) =>
    d.isDirectory() ? sourceFiles(join(dir, d.name)) : d.name.endsWith('.ts') ? [join(dir, d.name)] : [],
  );
}

/** The files under src/ that `file` imports (static, dynamic and type-only imports, and re-exports). */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const specifiers = [...text.matchAll(/(?:\bfrom\s*|\bimport\s*\(?\s*)'(\.{1,2}\/[^']+)'/g)].map(
    (m) => m[1]!,
  );
  return specifiers.map((s) => resolve(dirname(file), s));
}

test('no module of src/delivery imports one of src/config', () => {
  const config = join(SRC, 'config');
  const edges = sourceFiles(join(SRC, 'delivery')).flatMap((file) =>
    importsOf(file)
      .filter((target) => !relative(config, target).startsWith('..'))
      .map((target) => `${relative(SRC, file)} -> ${relative(SRC, target)}`),
  );
  assert.deepEqual(edges, []);
});

test('the check sees an import of config when there is one', () => {
  // config/schema.ts imports delivery's sink schema: the same scan finds that edge the other way.
  const delivery = join(SRC, 'delivery');
  const found = importsOf(join(SRC, 'config', 'schema.ts')).some(
    (target) => !relative(delivery, target).startsWith('..'),
  );
  assert.equal(found, true);
});
