/**
 * `trailwarden sinks` against a real in-process server (the full app on a
 * free port) delivering to a real webhook receiver.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, describe, test } from 'node:test';
import { Command, CommanderError } from 'commander';
import { stringify } from 'yaml';
import { ApiError } from '../../src/cli/http-client.js';
import { registerSinksCommand } from '../../src/cli/sinks.js';
import { rawEvent, type TestApp, testApp } from '../helpers/app.js';
import { until } from '../helpers/until.js';
import {
  newSecret,
  type Receiver,
  type ReceiverResponse,
  startReceiver,
} from '../helpers/webhook-receiver.js';

const FAST_RETRY = { delays_ms: [10, 10], jitter: 0 };

interface Harness {
  t: TestApp;
  url: string;
  receiver: Receiver;
  secret: string;
  /** A webhook sink definition (as `sinks create` reads it) pointing at the receiver. */
  hook(name: string, over?: Record<string, unknown>): Record<string, unknown>;
  /** Runs `trailwarden sinks <args>` with the admin key (or `key`). */
  cli(args: string[], key?: string): Promise<{ code: number; out: string }>;
  /** The seqs the receiver got, request by request. */
  seqs(): number[][];
}

const open: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (open.length > 0) await open.pop()!();
});

async function harness(
  respond: (body: unknown) => ReceiverResponse = () => ({ status: 204 }),
): Promise<Harness> {
  const secret = newSecret();
  const receiver = await startReceiver({ secret, respond: (req) => respond(req.parsed) });
  open.push(() => receiver.close());
  const hook = (name: string, over: Record<string, unknown> = {}) => ({
    name,
    type: 'webhook',
    url: receiver.url,
    secret,
    headers: { authorization: 'Bearer receiver-token-1' },
    allow_private_networks: true,
    start_from: 'beginning',
    filter: { include_actions: ['user.*'] },
    retry: FAST_RETRY,
    batch: { max_events: 50, max_wait_ms: 0 },
    ...over,
  });
  const t = await testApp({ audit_reads: false, sinks: [hook('from-config')] });
  open.push(() => t.close());
  const url = await t.app.listen({ host: '127.0.0.1', port: 0 });
  const cli = async (args: string[], key = t.admin.replace(/^Bearer /, '')) => {
    let out = '';
    let code = 0;
    const sink = new Writable({
      write(chunk, _enc, cb) {
        out += String(chunk);
        cb();
      },
    });
    const program = new Command('trailwarden').exitOverride().configureOutput({
      writeOut: (s) => {
        out += s;
      },
      writeErr: (s) => {
        out += s;
      },
    });
    registerSinksCommand(program, {
      out: sink,
      env: { TRAILWARDEN_URL: url, TRAILWARDEN_KEY: key, CLI_SIDE_TOKEN: 'from-the-cli-environment' },
      exit: (c) => {
        code = c;
      },
    });
    try {
      await program.parseAsync(['sinks', ...args], { from: 'user' });
    } catch (err) {
      if (!(err instanceof CommanderError)) throw err;
      code = err.exitCode;
    }
    return { code, out };
  };
  const seqs = () => receiver.requests.map((q) => (q.parsed as Array<{ seq: number }>).map((e) => e.seq));
  return { t, url, receiver, secret, hook, cli, seqs };
}

async function post(t: TestApp, events: unknown[]): Promise<void> {
  const res = await t.app.inject({
    method: 'POST',
    url: '/v1/events',
    headers: { authorization: t.admin },
    payload: events,
  });
  assert.equal(res.statusCode, 201, res.body);
}

function writeSinkFile(t: TestApp, file: string, text: string): string {
  const path = join(t.dataDir, file);
  writeFileSync(path, text);
  return path;
}

const caughtUp = (t: TestApp, name: string) => async () =>
  (await t.parts.ctx.delivery.admin.status(name, null)).lag_events === 0;

describe('trailwarden sinks', { timeout: 30_000 }, () => {
  test('create reads a YAML or JSON file, and list, show and status report the sink with secrets masked', async () => {
    const h = await harness();
    const yamlFile = writeSinkFile(h.t, 'siem.yaml', stringify(h.hook('siem')));
    const created = await h.cli(['create', '--file', yamlFile]);
    assert.equal(created.code, 0);
    assert.match(created.out, /^Created sink siem \(webhook\)/);
    const jsonFile = writeSinkFile(h.t, 'other.json', JSON.stringify(h.hook('other', { enabled: false })));
    assert.match((await h.cli(['create', '-f', jsonFile, '--json'])).out, /"name": "other"/);

    await post(h.t, [rawEvent(), rawEvent({ action: 'user.logout' })]);
    await until(caughtUp(h.t, 'siem'), 'siem caught up');

    const list = await h.cli(['list']);
    assert.equal(list.code, 0);
    const lines = list.out.trim().split('\n');
    // NODE: the node holding the sink's lease (with SQLite, always this server); none for a disabled sink.
    const node = h.t.parts.ctx.delivery.nodeId.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    assert.match(lines[0]!, /^NAME\s+TYPE\s+STATE\s+LAG\s+DEAD\s+SOURCE\s+TENANT\s+NODE$/);
    assert.match(
      lines[1]!,
      new RegExp(`^from-config\\s+webhook\\s+healthy\\s+0 \\(0 s\\)\\s+0\\s+config\\s+\\*\\s+${node}$`),
    );
    assert.match(lines[2]!, /^other\s+webhook\s+disabled\s+\d+ .*\s+api\s+\*\s+-$/);
    assert.match(
      lines[3]!,
      new RegExp(`^siem\\s+webhook\\s+healthy\\s+0 \\(0 s\\)\\s+0\\s+api\\s+\\*\\s+${node}$`),
    );

    for (const name of ['siem', 'from-config']) {
      const shown = (await h.cli(['show', name])).out;
      assert.ok(!shown.includes(h.secret) && !shown.includes('receiver-token-1'), shown);
      const parsed = JSON.parse(shown) as { secret: string; headers: Record<string, string> };
      assert.equal(parsed.secret, '********');
      assert.deepEqual(parsed.headers, { authorization: '********' });
    }
    const listJson = (await h.cli(['list', '--json'])).out;
    assert.ok(!listJson.includes(h.secret) && !listJson.includes('receiver-token-1'));

    const status = await h.cli(['status', 'siem']);
    assert.equal(status.code, 0);
    assert.match(status.out, /^sink siem \(webhook, defined through the API\)$/m);
    assert.match(status.out, /^ {2}state: +healthy$/m);
    assert.ok(status.out.includes(`  delivered by:  node ${h.t.parts.ctx.delivery.nodeId}\n`), status.out);
    assert.match(status.out, /^ {2}lag: +0 events, 0 s$/m);
    assert.match(status.out, /^ {2}last error: +none since start$/m);
    assert.match(
      status.out,
      /^ {2}since start: +2 delivered in \d+ batches, 0 retries, 0 parked, \d+ filtered out$/m,
    );
    assert.match(status.out, /^ {2}dead letters: +0$/m);
    const json = JSON.parse((await h.cli(['status', 'siem', '--json'])).out) as {
      lag_events: number;
      state: string;
    };
    assert.equal(json.state, 'healthy');
    assert.equal(json.lag_events, 0);
  });

  test('an invalid sink file is refused with the server problems, and a bad file says why', async () => {
    const h = await harness();
    const bad = writeSinkFile(
      h.t,
      'bad.yaml',
      stringify({ name: 'Bad Name', type: 'webhook', url: 'ftp://x' }),
    );
    await assert.rejects(
      h.cli(['create', '--file', bad]),
      (e: unknown) => e instanceof ApiError && e.code === 'TW_ERR_INVALID_SINK' && /name/.test(e.message),
    );
    const list = writeSinkFile(h.t, 'list.json', '[]');
    await assert.rejects(h.cli(['create', '--file', list]), /must hold one sink as an object/);
    const broken = writeSinkFile(h.t, 'broken.json', '{"name": ');
    await assert.rejects(h.cli(['create', '--file', broken]), /cannot read .*broken\.json/);
  });

  test('dead-letters lists a refused event and redrive delivers it once the receiver accepts it', async () => {
    let refuse = true;
    const h = await harness((body) => {
      const events = body as Array<{ reason?: string }>;
      return refuse && events.some((e) => e.reason === 'poison')
        ? { status: 400, body: 'poison' }
        : { status: 204 };
    });
    await post(h.t, [rawEvent(), rawEvent({ reason: 'poison', event_id: 'evt_poison' }), rawEvent()]);
    await until(caughtUp(h.t, 'from-config'), 'caught up');

    const letters = await h.cli(['dead-letters', 'from-config']);
    assert.equal(letters.code, 0);
    const [header, row, more] = letters.out.trim().split('\n');
    assert.match(header!, /^ID\s+SEQ\s+EVENT ID\s+ATTEMPTS\s+PARKED AT\s+REASON$/);
    assert.match(row!, /^\d+\s+\d+\s+evt_poison\s+1\s+\S+\s+HTTP 400: poison$/);
    assert.equal(more, undefined);
    const id = Number(row!.split(/\s+/)[0]);
    assert.match(
      (await h.cli(['status', 'from-config'])).out,
      /dead letters: +1 \(trailwarden sinks dead-letters/,
    );

    const failed = await h.cli(['redrive', 'from-config', '--id', String(id), '--id', '999999']);
    assert.equal(failed.code, 1, 'a redrive that leaves letters behind exits 1');
    assert.match(failed.out, new RegExp(`^ {2}${id}: seq \\d+ failed: HTTP 400: poison$`, 'm'));
    assert.match(failed.out, /^ {2}999999: no such dead letter$/m);
    assert.match(failed.out, /0 delivered \(and removed\), 2 left\.$/m);

    refuse = false;
    const redriven = await h.cli(['redrive', 'from-config']);
    assert.equal(redriven.code, 0, redriven.out);
    assert.match(redriven.out, /1 delivered \(and removed\), 0 left\.$/m);
    assert.equal(
      (h.receiver.requests.at(-1)!.parsed as Array<{ event_id: string }>)[0]!.event_id,
      'evt_poison',
    );
    assert.equal(
      (await h.cli(['dead-letters', 'from-config'])).out,
      'No dead letters in sink from-config.\n',
    );
    const page = JSON.parse((await h.cli(['dead-letters', 'from-config', '--limit', '5', '--json'])).out);
    assert.deepEqual(page, { dead_letters: [], next_after_id: null });
  });

  test('pause stops delivery, resume goes on from the cursor, and replay delivers from a seq or a time again', async () => {
    const h = await harness();
    await post(h.t, [rawEvent()]);
    await until(caughtUp(h.t, 'from-config'), 'caught up');
    const before = h.receiver.requests.length;

    const paused = await h.cli(['pause', 'from-config']);
    assert.match(paused.out, /^Paused sink from-config at seq \d+ \(state: paused\)/);
    await post(h.t, [rawEvent({ reason: 'while paused' })]);
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(h.receiver.requests.length, before, 'nothing is sent while paused');
    assert.match((await h.cli(['status', 'from-config'])).out, /state: +paused/);

    const resumed = await h.cli(['resume', 'from-config']);
    assert.match(resumed.out, /^Resumed sink from-config \(state: healthy/);
    await until(() => h.seqs().flat().length === 2, 'the paused event delivered');

    const head = (await h.t.parts.ctx.delivery.admin.status('from-config', null)).head_seq;
    const replay = await h.cli(['replay', 'from-config', '--from-seq', '1']);
    assert.equal(replay.out, 'Sink from-config delivers again from seq 1.\n');
    await until(() => h.seqs().flat().length === 4, 'both events delivered again');
    assert.deepEqual(h.seqs().flat().slice(2), h.seqs().flat().slice(0, 2));

    const future = new Date(Date.now() + 60_000).toISOString();
    const fromTime = await h.cli(['replay', 'from-config', '--from-time', future]);
    assert.match(fromTime.out, /delivers again from seq (\d+)\.$/m);
    assert.ok(
      Number(/seq (\d+)/.exec(fromTime.out)![1]) > head,
      'a time after the last event starts after the head',
    );

    await assert.rejects(h.cli(['replay', 'from-config']), /exactly one of --from-seq or --from-time/);
    const both = await h
      .cli(['replay', 'from-config', '--from-seq', '1', '--from-time', future])
      .catch((e) => e);
    assert.match(String(both), /exactly one/);
    const badTime = await h.cli(['replay', 'from-config', '--from-time', 'yesterday']);
    assert.equal(badTime.code, 1);
    assert.match(badTime.out, /expected an ISO 8601 time/);
  });

  test('delete removes an API sink; a config-file sink and an unknown one are refused with their codes', async () => {
    const h = await harness();
    await h.cli(['create', '--file', writeSinkFile(h.t, 's.json', JSON.stringify(h.hook('temp')))]);
    const deleted = await h.cli(['delete', 'temp']);
    assert.equal(deleted.out, 'Deleted sink temp, its cursor and its dead letters.\n');
    await assert.rejects(
      h.cli(['status', 'temp']),
      (e: unknown) => e instanceof ApiError && e.status === 404,
    );
    await assert.rejects(
      h.cli(['delete', 'from-config']),
      (e: unknown) => e instanceof ApiError && e.code === 'TW_ERR_SINK_READ_ONLY',
    );
    await assert.rejects(
      h.cli(['delete', 'nope']),
      (e: unknown) => e instanceof ApiError && e.code === 'TW_ERR_NOT_FOUND',
    );
  });

  test('a tenant-bound admin key sees and creates only sinks of its tenant; an all-tenant key names them with --tenant', async () => {
    const h = await harness();
    const tenantKey = (await h.t.key('admin', 'acme')).replace(/^Bearer /, '');
    // Named like the config file's sink: names are per tenant.
    const { allow_private_networks: _, ...hook } = h.hook('from-config');
    const file = writeSinkFile(h.t, 'acme.json', JSON.stringify({ ...hook, enabled: false }));
    assert.equal((await h.cli(['create', '--file', file], tenantKey)).code, 0);
    const shown = JSON.parse((await h.cli(['show', 'from-config'], tenantKey)).out) as {
      tenant_id: string;
      filter: { tenants: string[] };
    };
    assert.equal(shown.tenant_id, 'acme');
    assert.deepEqual(shown.filter.tenants, ['acme']);
    const list = (await h.cli(['list'], tenantKey)).out;
    assert.match(list, /^from-config\s.*\sacme\s/m);
    assert.equal(list.trim().split('\n').length, 2, list);

    const all = (await h.cli(['list'])).out;
    assert.match(all, /^from-config\s.*\sconfig\s+\*\s/m);
    assert.match(all, /^from-config\s.*\sapi\s+acme\s/m);
    const viaAdmin = JSON.parse((await h.cli(['show', 'from-config', '--tenant', 'acme'])).out) as {
      tenant_id: string;
    };
    assert.equal(viaAdmin.tenant_id, 'acme');
    assert.equal(JSON.parse((await h.cli(['show', 'from-config'])).out).source, 'config');
  });

  test("create replaces environment references from the command's environment, never the server's", async () => {
    const h = await harness();
    const ref = (name: string) => '$' + `{${name}}`;
    const file = writeSinkFile(
      h.t,
      'env.yaml',
      stringify(h.hook('env', { headers: { authorization: `Bearer ${ref('CLI_SIDE_TOKEN')}` } })),
    );
    assert.equal((await h.cli(['create', '--file', file])).code, 0);
    await post(h.t, [rawEvent()]);
    await until(caughtUp(h.t, 'env'), 'the sink to deliver');
    const sent = h.receiver.requests.filter(
      (q) => q.headers.authorization === 'Bearer from-the-cli-environment',
    );
    assert.ok(sent.length > 0);
    const unset = writeSinkFile(
      h.t,
      'unset.yaml',
      stringify(h.hook('unset', { secret: ref('NOT_SET_ANYWHERE') })),
    );
    await assert.rejects(
      h.cli(['create', '--file', unset]),
      /environment variable NOT_SET_ANYWHERE is not set/,
    );
  });

  test('every subcommand explains itself in --help', async () => {
    const h = await harness();
    const expected: Record<string, RegExp[]> = {
      list: [/state, lag and dead letters/, /--json/, /--url <url>/, /--key <key>/],
      status: [/healthy, retrying, failing, paused, disabled, stopped/, /--json/],
      show: [/secrets masked/],
      replay: [/--from-seq <seq>/, /--from-time <iso>/, /exactly one of/],
      pause: [/cursor stays/],
      resume: [/410 Gone/],
      'dead-letters': [/--limit <n>/, /--after-id <id>/],
      redrive: [/--id <id>/, /status 1/],
      create: [/-f, --file <file>/, /\$\{ENV\}/, /Example sink\.yaml/],
      delete: [/config file/],
    };
    for (const [cmd, patterns] of Object.entries(expected)) {
      const help = await h.cli([cmd, '--help']);
      assert.equal(help.code, 0);
      for (const p of patterns) assert.match(help.out, p, `sinks ${cmd} --help`);
    }
    const top = await h.cli(['--help']);
    for (const cmd of Object.keys(expected)) assert.match(top.out, new RegExp(`^ {2}${cmd}\\b`, 'm'));
  });
});
