import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { sbIn } from './cli-support.ts';

// Rotating the NATS keys alone (docs/install.md "Rotating the NATS keys") meant editing
// `credentials init`'s output by hand: deleting the new signing-key Secret and pasting the planner
// key and API tokens in force, or every node dropped targets (bad signature) and every ctl token
// was revoked. --keep-planner-key-pub and --keep-api-tokens keep them.

const dir = mkdtempSync(path.join(tmpdir(), 'sb-init-keep-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

type Secret = { metadata: { name: string }; stringData: Record<string, string> };
const secretsOf = (yaml: string) =>
  new Map(parseAllDocuments(yaml).map((d) => [(d.toJS() as Secret).metadata.name, (d.toJS() as Secret).stringData]));
const file = (name: string, text: string) => {
  const f = path.join(dir, name);
  writeFileSync(f, text, { mode: 0o600 });
  return f;
};

describe('credentials init --keep-planner-key-pub / --keep-api-tokens', () => {
  it('renders no signing-key Secret, gives the appliers the key in force and the planner the tokens in force; new NATS keys', async () => {
    const pub = generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const tokens = '# ops\nsecret-token-of-alice-0123456789 alice operator\nviewer-token-0123456789abcdef bob\n';
    const fresh = await sbIn(['credentials', 'init', '--keys-out', path.join(dir, 'k0.json')]);
    expect(fresh.code).toBe(0);
    const r = await sbIn([
      'credentials',
      'init',
      '--keys-out',
      path.join(dir, 'k1.json'),
      '--keep-planner-key-pub',
      file('planner.key.pub', pub),
      '--keep-api-tokens',
      file('api-tokens', tokens),
    ]);
    expect(r.code, r.stderr).toBe(0);
    const kept = secretsOf(r.stdout);
    const made = secretsOf(fresh.stdout);
    expect([...made.keys()]).toContain('switchboard-signing-key');
    expect([...kept.keys()].sort()).toEqual(
      [...made.keys()].filter((n) => n !== 'switchboard-signing-key').sort(), // the one in the cluster stays
    );
    expect(kept.get('switchboard-applier')!['planner.key.pub']).toBe(pub);
    expect(kept.get('switchboard-planner')!['api-tokens']).toBe(tokens);
    // the NATS identities are new all the same
    expect(kept.get('switchboard-planner')!['planner.creds']).not.toBe(
      made.get('switchboard-planner')!['planner.creds'],
    );
    expect(kept.get('switchboard-nats-resolver')!['resolver.conf']).not.toBe(
      made.get('switchboard-nats-resolver')!['resolver.conf'],
    );
  });

  it('a file that is not what the flag takes is a usage error (exit 2) naming it, and no keys file is written', async () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'pem' });
    const cases: [string, string, RegExp][] = [
      [
        '--keep-planner-key-pub',
        file('garbage.pub', 'not a key\n'),
        /^--keep-planner-key-pub .*garbage\.pub: not a public key in PEM/,
      ],
      [
        '--keep-planner-key-pub',
        file('rsa.pub', rsa.toString()),
        /^--keep-planner-key-pub .*rsa\.pub: a rsa key; the planner signs with Ed25519$/,
      ],
      [
        '--keep-api-tokens',
        file('bad-tokens', 'onlyonefield\n'),
        /^--keep-api-tokens .*bad-tokens:1: expected "TOKEN IDENTITY \[viewer\|operator\]"/,
      ],
    ];
    for (const [flag, f, want] of cases) {
      const keysOut = path.join(dir, `never-${path.basename(f)}.json`);
      const r = await sbIn(['credentials', 'init', '--keys-out', keysOut, flag, f]);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr.replace(/^switchboard: /, '').trim()).toMatch(want);
      expect(r.stdout).toBe('');
      expect(existsSync(keysOut)).toBe(false);
    }
  });
});
