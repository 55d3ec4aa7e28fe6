import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** README.md and every Markdown file under docs/, relative to the repository root. */
function markdownFiles(): string[] {
  const walk = (dir: string): string[] =>
    readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap((d) =>
      d.isDirectory() ? walk(join(dir, d.name)) : d.name.endsWith('.md') ? [join(dir, d.name)] : [],
    );
  return ['README.md', ...walk('docs')];
}

/** The text outside fenced code blocks and inline code, where a `[text](target)` is a link. */
function prose(markdown: string): string {
  return markdown.replace(/^```[^\n]*\n[\s\S]*?^```[^\n]*$/gm, '').replace(/`[^`\n]*`/g, '');
}

/** Relative link targets of a Markdown text (web addresses left out). */
function relativeLinks(markdown: string): string[] {
  return [...prose(markdown).matchAll(/\]\(([^)\s]+)\)/g)]
    .map((m) => m[1] as string)
    .filter((t) => !/^[a-z][a-z0-9+.-]*:/i.test(t));
}

/** The anchors GitHub gives a Markdown file's headings (lower case, punctuation dropped, spaces as hyphens, repeats numbered). */
function anchors(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  const withoutFences = markdown.replace(/^```[^\n]*\n[\s\S]*?^```[^\n]*$/gm, '');
  for (const m of withoutFences.matchAll(/^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$/gm)) {
    const text = (m[1] as string).replace(/\[([^\]]*)\]\([^)]*\)/g, '$1');
    const base = text
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, '')
      .replace(/\s/g, '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${n}`);
  }
  return out;
}

/** Every broken relative link of the docs, as "file: target (why)". */
function brokenLinks(): string[] {
  const broken: string[] = [];
  for (const file of markdownFiles()) {
    const text = readFileSync(join(ROOT, file), 'utf8');
    for (const target of relativeLinks(text)) {
      const [path = '', fragment] = target.split('#', 2);
      const resolved = path === '' ? join(ROOT, file) : resolve(ROOT, dirname(file), decodeURI(path));
      if (!existsSync(resolved)) {
        broken.push(`${file}: ${target} (no ${relative(ROOT, resolved)})`);
        continue;
      }
      if (fragment === undefined || statSync(resolved).isDirectory()) continue;
      if (!anchors(readFileSync(resolved, 'utf8')).has(fragment)) {
        broken.push(`${file}: ${target} (no heading #${fragment} in ${relative(ROOT, resolved)})`);
      }
    }
  }
  return broken;
}

test('every relative link in README.md and docs/ reaches an existing file, and each #fragment a heading in it', () => {
  assert.deepEqual(brokenLinks(), []);
});

test('the heading anchors follow GitHub: lower case, punctuation dropped, each space a hyphen, repeats numbered', () => {
  const doc = [
    '# HTTP API (v1)',
    '## `cluster`',
    '## Issue 14 (security hardening): ingest cost, same-run A/B',
    '### Method',
    '### Method',
    '```',
    '# not a heading',
    '```',
  ].join('\n');
  assert.deepEqual(
    [...anchors(doc)],
    ['http-api-v1', 'cluster', 'issue-14-security-hardening-ingest-cost-same-run-ab', 'method', 'method-1'],
  );
});
