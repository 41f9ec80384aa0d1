// `applier --planner-key FILE` may hold several public keys (a bundle), so the planner's key can be
// rotated without a window in which nodes drop every target (docs/distribution.md).
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { readVerifierFile, signerFromKey, verifierFromPem } from '../../../libs/bus/index.ts';

const newSigner = () => signerFromKey(generateKeyPairSync('ed25519').privateKey);
const a = newSigner();
const b = newSigner();
const c = newSigner();
const statement = 'sb-target\ndefault\n7\n0\n1';

let dir: string | undefined;
afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

describe('a planner key bundle', () => {
  it('one key verifies its own signatures only, as before', () => {
    const v = verifierFromPem(a.publicKeyPem);
    expect(v.verify(statement, a.sign(statement))).toBe(true);
    expect(v.verify(statement, b.sign(statement))).toBe(false);
    expect(v.verify(`${statement}x`, a.sign(statement))).toBe(false);
    expect(v.fingerprints).toHaveLength(1);
  });

  it('trusts every key in the file, in either order, and no other', () => {
    const v = verifierFromPem(`${a.publicKeyPem}\n# the new key\n${b.publicKeyPem}`);
    expect(v.fingerprints).toHaveLength(2);
    // alternating exercises the "last key that verified first" order both ways
    for (let i = 0; i < 3; i++) {
      expect(v.verify(statement, b.sign(statement))).toBe(true);
      expect(v.verify(statement, a.sign(statement))).toBe(true);
    }
    expect(v.verify(statement, c.sign(statement))).toBe(false);
    expect(v.verify(statement, 'not base64 at all')).toBe(false);
  });

  it('the same key twice is trusted once; fingerprints differ between keys', () => {
    const v = verifierFromPem(a.publicKeyPem + a.publicKeyPem + b.publicKeyPem);
    expect(v.fingerprints).toHaveLength(2);
    expect(v.fingerprints![0]).not.toBe(v.fingerprints![1]);
    expect(v.fingerprints![0]).toMatch(/^[0-9a-f]{16}$/);
    expect(verifierFromPem(a.publicKeyPem).fingerprints).toEqual([v.fingerprints![0]]);
  });

  it('names the bad block of a bundle in one line, and refuses a private key or another algorithm', () => {
    const broken = '-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n';
    expect(() => verifierFromPem(a.publicKeyPem + broken, '--planner-key k.pub')).toThrow(
      /^--planner-key k\.pub \(PEM block 2 of 2\): not a PEM public key/,
    );
    const privatePem = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    expect(() => verifierFromPem(privatePem, '--planner-key k.pub')).toThrow(
      "--planner-key k.pub: a private key; give appliers the planner's .pub file",
    );
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'pem' });
    expect(() => verifierFromPem(`${b.publicKeyPem}${rsa as string}`)).toThrow(
      'planner key (PEM block 2 of 2): rsa key, ed25519 expected',
    );
    expect(() => verifierFromPem('hello')).toThrow(/^planner key: not a PEM public key/);
    for (const bad of [broken, privatePem, 'hello']) expect(() => verifierFromPem(bad)).toThrow(/^[^\n]+$/); // one line each
  });

  it('readVerifierFile reads a bundle file', () => {
    dir = mkdtempSync(path.join(tmpdir(), 'sb-keys-'));
    const file = path.join(dir, 'planner-keys.pem');
    writeFileSync(file, a.publicKeyPem + b.publicKeyPem);
    const v = readVerifierFile(file);
    expect(v.verify(statement, a.sign(statement)) && v.verify(statement, b.sign(statement))).toBe(true);
    expect(v.verify(statement, c.sign(statement))).toBe(false);
  });
});
