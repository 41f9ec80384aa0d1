import {
  chmodSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { loadOrCreateSigningKey } from '../../../libs/bus/index.ts';

// review3 L1 and probe3 U3: the planner's key file is created without following anything planted
// beside it, an existing key anyone may replace is refused, a readable one is named, and creating a
// key says so (appliers holding another key drop every target until they get FILE.pub).

const dir = mkdtempSync(path.join(tmpdir(), 'sb-signing-key-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

it('creates the key 0600 through a fresh O_EXCL temp file: links planted at the old temp names are left alone', () => {
  const file = path.join(dir, 'a', 'key.pem');
  const lines: string[] = [];
  const bait = path.join(dir, 'bait.txt');
  writeFileSync(bait, 'bait\n');
  chmodSync(bait, 0o666);
  loadOrCreateSigningKey(path.join(dir, 'a', 'other.pem')); // makes the directory
  symlinkSync(bait, `${file}.tmp-${process.pid}`); // the name the previous release wrote through
  symlinkSync(bait, `${file}.pub.tmp-${process.pid}`);
  const signer = loadOrCreateSigningKey(file, { say: (l) => lines.push(l), logHasVersions: true });
  expect(readFileSync(bait, 'utf8')).toBe('bait\n');
  expect(statSync(file).mode & 0o777).toBe(0o600);
  expect(readFileSync(`${file}.pub`, 'utf8')).toBe(signer.publicKeyPem);
  expect(lines).toEqual([
    `created signing key ${file}; appliers need ${file}.pub as --planner-key (the log already holds versions: appliers given an earlier key drop every target until they get this one)`,
  ]);
  expect(readdirSync(path.dirname(file)).filter((n) => n.includes('.tmp-') && !n.endsWith(`-${process.pid}`))).toEqual(
    [],
  );
  // loading it again: the same key, nothing said
  lines.length = 0;
  expect(loadOrCreateSigningKey(file, { say: (l) => lines.push(l) }).publicKeyPem).toBe(signer.publicKeyPem);
  expect(lines).toEqual([]);
});

it('refuses a key anyone may replace; warns about one others may read or its group write; group read is fine', () => {
  const file = path.join(dir, 'b.pem');
  const signer = loadOrCreateSigningKey(file);
  chmodSync(file, 0o666);
  expect(() => loadOrCreateSigningKey(file)).toThrow(
    `signing key ${file}: mode 0666 lets anyone replace it; chmod 600 it`,
  );
  const lines: string[] = [];
  // a Kubernetes Secret under an fsGroup: root:fsGroup 0440, read through the group (review5 F6)
  for (const mode of [0o440, 0o640, 0o400]) {
    chmodSync(file, mode);
    expect(loadOrCreateSigningKey(file, { say: (l) => lines.push(l) }).publicKeyPem).toBe(signer.publicKeyPem);
  }
  expect(lines).toEqual([]);
  for (const mode of [0o644, 0o660]) {
    chmodSync(file, mode);
    loadOrCreateSigningKey(file, { say: (l) => lines.push(l) });
  }
  expect(lines).toEqual([
    `warning: signing key ${file} is readable by others (mode 0644); chmod 600 it`,
    `warning: signing key ${file} is writable by its group (mode 0660); chmod 600 it`,
  ]);
  expect(existsSync(`${file}.pub`)).toBe(true);
});
