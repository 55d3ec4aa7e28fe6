import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** PEM texts of a throwaway CA, a server certificate for 127.0.0.1 and a client certificate it signed. */
export interface TestPki {
  /** Holds the files below while the PKI lives (`remove` deletes it). */
  dir: string;
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  files: { ca: string; serverCert: string; serverKey: string };
  remove(): void;
}

/**
 * Makes a CA and two leaf certificates with openssl (P-256 keys, valid two
 * days): the server's names IP 127.0.0.1 and localhost, the client's is for
 * mutual TLS. The files stay until `remove()` (rsyslog reads them from disk).
 */
export function makeTestPki(): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'tw-pki-'));
  const file = (name: string) => join(dir, name);
  const key = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2'];
  const leaf = [
    '-CA',
    file('ca.pem'),
    '-CAkey',
    file('ca.key'),
    '-addext',
    'basicConstraints=critical,CA:FALSE',
  ];
  const openssl = (...args: string[]) =>
    execFileSync('openssl', ['req', '-x509', ...key, ...args], { stdio: 'pipe' });
  openssl('-subj', '/CN=tw-conformance-ca', '-keyout', file('ca.key'), '-out', file('ca.pem'));
  openssl(
    '-subj',
    '/CN=127.0.0.1',
    ...leaf,
    '-addext',
    'subjectAltName=IP:127.0.0.1,DNS:localhost',
    '-keyout',
    file('server.key'),
    '-out',
    file('server.pem'),
  );
  openssl('-subj', '/CN=tw-client', ...leaf, '-keyout', file('client.key'), '-out', file('client.pem'));
  const read = (name: string) => readFileSync(file(name), 'utf8');
  return {
    dir,
    ca: read('ca.pem'),
    serverCert: read('server.pem'),
    serverKey: read('server.key'),
    clientCert: read('client.pem'),
    clientKey: read('client.key'),
    files: { ca: file('ca.pem'), serverCert: file('server.pem'), serverKey: file('server.key') },
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
