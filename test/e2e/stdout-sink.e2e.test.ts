import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { api, producerEvent, removeDir, startServer, tempDir, waitFor, writeConfig } from '../helpers/cli.js';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) removeDir(d);
});

test('a stdout sink writes one JSON line per event on the server process standard output', async () => {
  const dataDir = tempDir();
  dirs.push(dataDir);
  const config = writeConfig(dataDir, {
    sinks: [
      {
        name: 'console',
        type: 'stdout',
        format: 'json',
        start_from: 'beginning',
        filter: { include_actions: ['user.*'] },
      },
    ],
  });
  const server = await startServer({ dataDir, config });
  try {
    const key = server.adminToken!;
    const res = await api(server, key, 'POST', '/v1/events', [
      producerEvent({ event_id: 'evt_stdout_1', reason: 'two\nlines "quoted"' }),
      producerEvent({ event_id: 'evt_stdout_2', action: 'role.assign' }),
    ]);
    assert.equal(res.status, 201);
    const audit = () =>
      server
        .stdout()
        .split('\n')
        .filter((l) => l.startsWith('{') && l.includes('"event_id"'))
        .map((l) => JSON.parse(l) as { event_id: string; reason?: string });
    await waitFor('the event on stdout', async () => audit().some((e) => e.event_id === 'evt_stdout_1'));
    const lines = audit();
    assert.deepEqual(
      lines.map((e) => e.event_id),
      ['evt_stdout_1'],
      'the filter keeps role.assign out',
    );
    assert.equal(lines[0]!.reason, 'two\nlines "quoted"', 'the newline stays escaped inside one line');
  } finally {
    const { code } = await server.stop();
    assert.equal(code, 0);
  }
});
