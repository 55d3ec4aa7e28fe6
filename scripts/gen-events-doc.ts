// Writes docs/events.md, the audit matrix, from the action catalog.
//   node --import tsx scripts/gen-events-doc.ts          regenerate
//   node --import tsx scripts/gen-events-doc.ts --check  exit 1 if the file is stale
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import {
  ACTION_CATALOG,
  ACTION_CATEGORIES,
  DEFAULT_SEVERITY,
  SEVERITY_LEVELS,
  type SeedId,
  type SeedMapping,
} from '../src/event/catalog.js';

/** Where the generated matrix lives, relative to the repository root. */
export const EVENTS_DOC_PATH = join(dirname(fileURLToPath(import.meta.url)), '..', 'docs', 'events.md');

const SEED_TITLES: Record<SeedId, string> = {
  '000': 'ZITADEL — streaming audit logs to SIEM/SOC',
  '001': 'Zaita — SIEM integration (event categories and format)',
  '002': 'CzechIdM — reading audit information over REST',
  '003': 'Blitz Identity Provider — security event types',
  '004': 'CzechIdM — audit trail in the text log (feature request)',
};

function cell(text: string): string {
  return text.replaceAll('|', '\\|').replaceAll('\n', ' ');
}

function mappingText(m: SeedMapping): string {
  const extras = [m.outcome && `outcome ${m.outcome}`, m.note].filter(Boolean).join('; ');
  return extras ? `${m.seed}: ${m.name} (${extras})` : `${m.seed}: ${m.name}`;
}

/** The full text of docs/events.md for the current catalog. */
export function renderEventsDoc(): string {
  const out: string[] = [
    '# Event catalog (audit matrix)',
    '',
    '<!-- Generated from src/event/catalog*.ts by `npm run docs:events`; do not edit by hand. -->',
    '',
    'Every action Trailwarden knows by name. An action is lowercase `category(.sub)*.verb`; whether it',
    'worked goes in `outcome` (`success`, `failure`, `denied`), so a failed login is `user.login` with',
    'outcome `failure`, not a separate action. Producers may send actions outside this list unless',
    '`strict_actions` is on; those get severity `' + DEFAULT_SEVERITY + '`.',
    '',
    'Severity: `low` routine activity · `medium` a change to one account or object, or a failed attempt ·',
    '`high` privileges, credentials of others, security settings · `critical` the audit trail or the',
    'administrator set. Formats map them to syslog / CEF levels:',
    '',
    '| severity | syslog | CEF |',
    '|---|---|---|',
    ...Object.entries(SEVERITY_LEVELS).map(([s, l]) => `| ${s} | ${l.syslog} | ${l.cef} |`),
    '',
    'The seed names column says how the event types of the source documents (`/seeds`) map: the seed',
    'number, its name for the event, and what to put in `outcome` or elsewhere.',
    '',
  ];
  for (const category of ACTION_CATEGORIES) {
    const entries = ACTION_CATALOG.filter((e) => e.category === category.id);
    if (entries.length === 0) continue;
    out.push(
      `## ${category.title}`,
      '',
      '| action | description | severity | seed names |',
      '|---|---|---|---|',
    );
    for (const e of entries) {
      const seeds = (e.seeds ?? []).map(mappingText).join('<br>');
      out.push(`| \`${e.name}\` | ${cell(e.description)} | ${e.severity} | ${cell(seeds)} |`);
    }
    out.push('');
  }
  out.push('## By seed document', '');
  for (const [seedId, title] of Object.entries(SEED_TITLES) as [SeedId, string][]) {
    const rows = ACTION_CATALOG.flatMap((e) =>
      (e.seeds ?? []).filter((m) => m.seed === seedId).map((m) => ({ action: e.name, m })),
    ).sort((a, b) => (a.m.name < b.m.name ? -1 : a.m.name > b.m.name ? 1 : 0));
    if (rows.length === 0) continue;
    out.push(`### ${seedId} — ${title}`, '', '| seed name | action | outcome | note |', '|---|---|---|---|');
    for (const { action, m } of rows) {
      out.push(`| ${cell(m.name)} | \`${action}\` | ${m.outcome ?? ''} | ${cell(m.note ?? '')} |`);
    }
    out.push('');
  }
  return out.join('\n');
}

function main(args: string[]): number {
  const text = renderEventsDoc();
  if (args.includes('--check')) {
    let current = '';
    try {
      current = readFileSync(EVENTS_DOC_PATH, 'utf8');
    } catch {
      // missing counts as stale
    }
    if (current !== text) {
      console.error('docs/events.md is stale; run `npm run docs:events` and commit the result');
      return 1;
    }
    console.log('docs/events.md is up to date');
    return 0;
  }
  writeFileSync(EVENTS_DOC_PATH, text);
  console.log(`wrote ${EVENTS_DOC_PATH} (${ACTION_CATALOG.length} actions)`);
  return 0;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = main(process.argv.slice(2));
}
