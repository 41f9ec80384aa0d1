// A secret file that is there but malformed (token file, nkey seed, .creds, signing key) is bad
// input: one line naming the flag, the file and what is wrong, exit 2 (DESIGN.md "Exit codes"),
// before anything is created. Files live in a temporary directory removed after each test.
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createAccount, createUser, encodeUser, fmtCreds } from '@nats-io/jwt';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { checkAuthFiles, credsNodeMismatch } from '../../../libs/bus/index.ts';
import { generateAccountKeys, mintNodeCreds, mintRoleCreds } from '../../../libs/nodecreds/index.ts';
import { sbIn } from './cli-support.ts';

let dir = '';
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'sb-secret-files-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** A file of this test's directory, mode 0600 as secrets are kept. */
function file(name: string, text: string | Uint8Array): string {
  const f = join(dir, name);
  writeFileSync(f, text);
  chmodSync(f, 0o600);
  return f;
}

const planner = (...extra: string[]) => {
  mkdirSync(join(dir, 'manifests'), { recursive: true });
  return sbIn([
    'planner',
    '--manifests',
    join(dir, 'manifests'),
    '--nats',
    'nats://127.0.0.1:1',
    '--db',
    join(dir, 'log.db'),
    ...extra,
  ]);
};
const applier = (...extra: string[]) =>
  sbIn(['applier', '--node', 'n1', '--nats', 'nats://127.0.0.1:1', '--mode', 'dry-run', ...extra]);

/** Exit 2, one line on stderr matching `line`, nothing on stdout, no log file created. */
function badInput(r: { code: number; stdout: string; stderr: string }, line: RegExp): void {
  expect(r.code).toBe(2);
  expect(r.stdout).toBe('');
  expect(r.stderr.trimEnd().split('\n')).toEqual([expect.stringMatching(line)]);
  expect(existsSync(join(dir, 'log.db'))).toBe(false);
}

describe('malformed secret files are usage errors (exit 2), named in one line', () => {
  it('planner --token-file: a bad line names the file and the line', async () => {
    const f = file('tokens', '# operators\nonlyonefield\n');
    badInput(
      await planner('--token-file', f),
      new RegExp(`--token-file .*${f}:2: expected "TOKEN IDENTITY \\[viewer\\|operator\\]", got 1 field`),
    );
    const bad = file('roles', 'a-long-enough-token-value x admin\n');
    badInput(await planner('--token-file', bad), /--token-file .*:1: role "admin" must be viewer or operator/);
  });

  it('planner --signing-key: an existing key that is not a PEM private key (it is created only when missing)', async () => {
    const f = file('key.pem', 'not a key\n');
    badInput(await planner('--signing-key', f), new RegExp(`--signing-key: signing key ${f}: not a PEM private key`));
  });

  it('planner --nats-nkey-seed / --nats-creds, applier --nkey-seed / --creds: refused at once (before: waited for NATS for ever)', async () => {
    const junk = file('junk', 'garbage\n');
    badInput(await planner('--nats-nkey-seed', junk), /--nats-nkey-seed .* is invalid\. not an nkey seed/);
    badInput(await planner('--nats-creds', junk), /--nats-creds .* is invalid\. not a NATS \.creds file/);
    badInput(await applier('--nkey-seed', junk), /--nkey-seed .* is invalid\. not an nkey seed/);
    badInput(await applier('--creds', junk), /--creds .* is invalid\. not a NATS \.creds file/);
  });

  // probe16 I5: it started, was refused every read and said only "Permissions Violation"
  it("applier --creds holding another node's credential: refused at once, naming the node it is for", async () => {
    const keys = generateAccountKeys();
    const other = file('old.creds', await mintNodeCreds(keys, 'node-old', 600));
    badInput(
      await applier('--creds', other),
      new RegExp(`--creds ${other}: a credential that may report only as node-old, not as --node n1`),
    );
    // its own node's, and a role credential that may publish anything, pass
    expect(credsNodeMismatch(file('n1.creds', await mintNodeCreds(keys, 'n1', 600)), 'n1')).toBeUndefined();
    expect(credsNodeMismatch(file('planner.creds', await mintRoleCreds(keys, 'planner')), 'n1')).toBeUndefined();
    expect(
      credsNodeMismatch(file('dotted.creds', await mintNodeCreds(keys, 'n1.example', 600)), 'n1.example'),
    ).toBeUndefined();
  });

  it('well-formed seed and .creds files pass the check', async () => {
    const user = createUser();
    const account = createAccount();
    const jwt = await encodeUser('n1', user, account);
    expect(() => checkAuthFiles({ nkeySeedFile: file('seed', user.getSeed()) })).not.toThrow();
    expect(() => checkAuthFiles({ credsFile: file('node.creds', fmtCreds(jwt, user)) })).not.toThrow();
    expect(() => checkAuthFiles({ credsFile: file('half.creds', fmtCreds(jwt, user).slice(0, 300)) })).toThrow(
      /half\.creds: not a NATS \.creds file/,
    );
  });
});
