import { type Command, InvalidArgumentError } from 'commander';
import { ApiClient, addClientOptions, clientOptionsFrom } from './http-client.js';
import {
  sinksCreate,
  sinksDeadLetters,
  sinksDelete,
  sinksList,
  sinksRedrive,
  sinksReplay,
  sinksSetPaused,
  sinksShow,
  sinksStatus,
} from './sinks-actions.js';

/** Where `sinks` commands write and which environment they read (tests replace both). */
export interface SinksIo {
  out: NodeJS.WritableStream;
  env: NodeJS.ProcessEnv;
  /** Receives each command's exit status. */
  exit: (code: number) => void;
}

const processIo: SinksIo = {
  out: process.stdout,
  env: process.env,
  exit: (code) => {
    process.exitCode = code;
  },
};

interface ClientFlags {
  url?: string;
  key?: string;
  /** An all-tenant admin naming a tenant's sink. */
  tenant?: string;
}

function positiveInt(value: string): number {
  if (!/^\d+$/.test(value) || Number(value) < 1 || !Number.isSafeInteger(Number(value))) {
    throw new InvalidArgumentError('expected a whole number of at least 1');
  }
  return Number(value);
}

function isoTime(value: string): string {
  if (Number.isNaN(Date.parse(value)) || !/^\d{4}-\d{2}-\d{2}T/.test(value)) {
    throw new InvalidArgumentError('expected an ISO 8601 time such as 2025-01-31T08:00:00Z');
  }
  return value;
}

function collectIds(value: string, previous: number[] = []): number[] {
  return [...previous, positiveInt(value)];
}

/** Adds `trailwarden sinks …`, the admin API of delivery over HTTP (admin key). */
export function registerSinksCommand(program: Command, io: SinksIo = processIo): Command {
  const sinks = program
    .command('sinks')
    .summary('manage delivery sinks on a running server')
    .description(
      'Manage the sinks a running server delivers events to, through its admin API (an admin key; ' +
        'a tenant-bound admin key sees only its tenant’s sinks). See docs/delivery.md.',
    );
  const client = (flags: ClientFlags) => new ApiClient(clientOptionsFrom(flags, io.env));
  const sub = (spec: string, summary: string, description: string) =>
    addClientOptions(sinks.command(spec).summary(summary).description(description)).option(
      '--tenant <tenant>',
      'the tenant whose sink is meant (sink names are per tenant; an all-tenant admin key needs it for a tenant’s sink)',
    );
  const done = io.exit;

  sub(
    'list',
    'list sinks with their state and lag',
    'List the sinks this key may see, with state, lag and dead letters.',
  )
    .option('--json', 'JSON output: the settings (secrets masked) and the status of each sink')
    .action(async (flags: ClientFlags & { json?: boolean }) =>
      done(await sinksList(client(flags), flags, io.out)),
    );

  sub(
    'status',
    'show the health of a sink',
    'Show a sink’s state (healthy, retrying, failing, paused, disabled, stopped), its lag in events ' +
      'and seconds, its last success and error, counters since the server started, and how many ' +
      'events wait in its dead-letter list.',
  )
    .argument('<name>', 'sink name')
    .option('--json', 'the raw GET /v1/sinks/{name}/status answer')
    .action(async (name: string, flags: ClientFlags & { json?: boolean }) =>
      done(await sinksStatus(client(flags), name, flags, io.out)),
    );

  sub('show', 'print the settings of a sink', 'Print a sink’s settings as JSON, secrets masked.')
    .argument('<name>', 'sink name')
    .action(async (name: string, flags: ClientFlags) =>
      done(await sinksShow(client(flags), name, flags, io.out)),
    );

  sub(
    'replay',
    'deliver events again from a seq or a time',
    'Move the sink’s cursor so delivery starts again at --from-seq, or at the first event received at ' +
      'or after --from-time. Events from there on are delivered again (with new delivery ids); the ' +
      'attempt in progress is abandoned.',
  )
    .argument('<name>', 'sink name')
    .option('--from-seq <seq>', 'first seq to deliver again (1 = the whole log)', positiveInt)
    .option('--from-time <iso>', 'first receive time to deliver again, e.g. 2025-01-31T08:00:00Z', isoTime)
    .addHelpText('after', '\nGive exactly one of --from-seq and --from-time.')
    .action(async (name: string, flags: ClientFlags & { fromSeq?: number; fromTime?: string }) =>
      done(await sinksReplay(client(flags), name, flags, io.out)),
    );

  sub(
    'pause',
    'stop delivering to a sink',
    'Pause a sink after the attempt in progress. Its cursor stays, so `resume` goes on where it stopped.',
  )
    .argument('<name>', 'sink name')
    .action(async (name: string, flags: ClientFlags) =>
      done(await sinksSetPaused(client(flags), name, true, flags, io.out)),
    );

  sub(
    'resume',
    'resume a paused or disabled sink',
    'Resume a paused sink, or re-enable one the receiver disabled (HTTP 410 Gone); retrying starts afresh.',
  )
    .argument('<name>', 'sink name')
    .action(async (name: string, flags: ClientFlags) =>
      done(await sinksSetPaused(client(flags), name, false, flags, io.out)),
    );

  sub(
    'dead-letters',
    'list events a sink gave up on',
    'List the dead letters of a sink: events refused for good (e.g. HTTP 400) or whose retry schedule ran out.',
  )
    .argument('<name>', 'sink name')
    .option('--limit <n>', 'at most this many (1-1000; default 100)', positiveInt)
    .option('--after-id <id>', 'the page after this dead-letter id', positiveInt)
    .option('--json', 'JSON output')
    .action(async (name: string, flags: ClientFlags & { limit?: number; afterId?: number; json?: boolean }) =>
      done(await sinksDeadLetters(client(flags), name, flags, io.out)),
    );

  sub(
    'redrive',
    'deliver dead letters again',
    'Deliver dead letters again, once each, now: all of them (up to 1000), or those given with --id. ' +
      'Delivered ones leave the list; the others stay with the new reason.',
  )
    .argument('<name>', 'sink name')
    .option('--id <id>', 'a dead-letter id (repeat for several)', collectIds)
    .option('--json', 'JSON output')
    .addHelpText('after', '\nExits with status 1 when any dead letter was not delivered.')
    .action(async (name: string, flags: ClientFlags & { id?: number[]; json?: boolean }) =>
      done(await sinksRedrive(client(flags), name, flags, io.out)),
    );

  sub(
    'create',
    'create a sink from a JSON or YAML file',
    'Create a sink from a file holding one sink (the same fields as an entry under `sinks:` in the ' +
      // biome-ignore lint/suspicious/noTemplateCurlyInString: a ${ENV} reference, meant literally
      'config file). `${ENV}` references are replaced from this command’s environment before sending ' +
      '(the server never reads its own environment for an API sink), so secrets can stay out of the file.',
  )
    .requiredOption('-f, --file <file>', 'sink definition (.json, .yaml or .yml; "-" reads stdin)')
    .option('--json', 'print the created sink (secrets masked)')
    .addHelpText(
      'after',
      '\nExample sink.yaml:\n' +
        '  name: siem\n' +
        '  type: webhook\n' +
        '  url: https://siem.example.com/hook\n' +
        // biome-ignore lint/suspicious/noTemplateCurlyInString: a ${ENV} reference, meant literally
        '  secret: ${SIEM_WEBHOOK_SECRET}\n' +
        '  filter:\n' +
        "    include_actions: ['user.*']",
    )
    .action(async (flags: ClientFlags & { file: string; json?: boolean }) =>
      done(await sinksCreate(client(flags), flags, io.env, io.out)),
    );

  sub(
    'delete',
    'delete a sink',
    'Delete a sink created through the API, with its cursor and dead letters. Sinks of the config ' +
      'file are removed there.',
  )
    .argument('<name>', 'sink name')
    .action(async (name: string, flags: ClientFlags) =>
      done(await sinksDelete(client(flags), name, flags, io.out)),
    );

  return sinks;
}
