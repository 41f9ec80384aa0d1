import { chmodSync, mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  authenticate,
  openModeWarning,
  parseTokenFile,
  watchTokenFile,
  weakTokenWarnings,
  type TokenFileWatch,
} from '../../../services/planner/bearer-auth.ts';

const LONG = 'a1b2c3d4e5f6a7b8c9d0e1f2'; // 24 characters
const OTHER = 'f0e1d2c3b4a5968778695a4b'; // 24 characters

/** Replaces the file whole (a poll never sees it half-written), mode 0600 unless told. */
const replace = (file: string, text: string, mode = 0o600) => {
  writeFileSync(`${file}.new`, text);
  chmodSync(`${file}.new`, mode);
  renameSync(`${file}.new`, file);
};

describe('weak tokens and open modes (review3 L1)', () => {
  it('one warning a token shorter than 16 characters, naming its line; long ones none', () => {
    const t = parseTokenFile(`# c\nop-tok alice operator\n${LONG} bob\nfifteen-chars-x carol\n`, 'tok');
    expect(weakTokenWarnings(t)).toEqual([
      'tok:2: the token of alice is shorter than 16 characters and can be guessed; use a long random one (openssl rand -hex 24)',
      'tok:4: the token of carol is shorter than 16 characters and can be guessed; use a long random one (openssl rand -hex 24)',
    ]);
    expect(authenticate(t, 'Bearer op-tok')).toEqual({ identity: 'alice', role: 'operator' }); // warned, not refused
  });

  it('a file others may read or its group write is warned about with its mode; 0600, 0400 and group read are not', () => {
    expect(openModeWarning('/etc/t', 0o100644)).toBe(
      'token file /etc/t is readable by others (mode 0644): whoever can read it can use its tokens; chmod 600 /etc/t',
    );
    expect(openModeWarning('/etc/t', 0o100620)).toMatch(/ is writable by its group \(mode 0620\)/);
    expect(openModeWarning('/etc/t', 0o100664)).toMatch(
      / is readable by others and writable by its group \(mode 0664\)/,
    );
    expect(openModeWarning('/etc/t', 0o100600)).toBeUndefined();
    expect(openModeWarning('/etc/t', 0o100400)).toBeUndefined();
    // a Kubernetes Secret mounted under the pod's fsGroup: root:fsGroup 0440, the planner reads it through the group (review5 F6)
    expect(openModeWarning('/etc/t', 0o100440)).toBeUndefined();
    expect(openModeWarning('/etc/t', 0o100640)).toBeUndefined();
  });
});

describe('watchTokenFile: removal revokes, a bad change keeps the tokens (review3 L1)', () => {
  let dir: string | undefined;
  let watch: TokenFileWatch | undefined;
  afterEach(() => {
    watch?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
    watch = dir = undefined;
  });

  it('a file anyone may write is refused at start, naming its mode', () => {
    dir = mkdtempSync(path.join(tmpdir(), 'bearer-auth-'));
    const file = path.join(dir, 'tokens');
    writeFileSync(file, `${LONG} bob\n`);
    chmodSync(file, 0o602);
    expect(() => watchTokenFile(file)).toThrow(
      `token file ${file}: mode 0602 lets anyone add a token; chmod 600 ${file}`,
    );
  });

  it('removed: no token in force, said once; malformed or unreadable: tokens kept, said; back: tokens again', async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'bearer-auth-'));
    const file = path.join(dir, 'tokens');
    writeFileSync(file, `short alice operator\n${LONG} bob\n`, { mode: 0o644 });
    chmodSync(file, 0o644); // whatever the umask
    const said: string[] = [];
    watch = watchTokenFile(file, { intervalMs: 20, say: (l) => said.push(l) });
    // At start: the open mode once, the short token by its line.
    expect(said).toEqual([
      `token file ${file} is readable by others (mode 0644): whoever can read it can use its tokens; chmod 600 ${file}`,
      `${file}:1: the token of alice is shorter than 16 characters and can be guessed; use a long random one (openssl rand -hex 24)`,
    ]);
    const who = (token: string) => authenticate(watch!.current(), `Bearer ${token}`)?.identity;
    expect(who(LONG)).toBe('bob');
    expect(watch.revoked()).toBeUndefined();
    said.length = 0;

    // A typo keeps the tokens in force (and says so).
    replace(file, `${LONG} bob\nbroken-line\n`);
    await expect.poll(() => said.length, { timeout: 5000, interval: 10 }).toBe(1);
    expect(said[0]).toBe(
      `${file}:2: expected "TOKEN IDENTITY [viewer|operator]", got 1 field; keeping the tokens in force`,
    );
    expect(who('short')).toBe('alice');

    // Anyone may write it: not trusted (anyone could have added a token), the tokens stay.
    replace(file, `${LONG} bob\n${OTHER} mallory operator\n`, 0o666);
    await expect.poll(() => said.length, { timeout: 5000, interval: 10 }).toBe(2);
    expect(said[1]).toBe(
      `token file ${file}: mode 0666 lets anyone add a token; chmod 600 ${file}; keeping the tokens in force`,
    );
    expect(who(OTHER)).toBeUndefined();
    said.splice(1);

    // Removed: every token revoked, said once.
    unlinkSync(file);
    await expect.poll(() => watch!.revoked(), { timeout: 5000, interval: 10 }).toBeDefined();
    expect(watch.current()).toEqual([]);
    expect(who(LONG)).toBeUndefined();
    expect(said.slice(1)).toEqual([
      `token file ${file} removed: every token is revoked, the API answers 401 until a file is back`,
    ]);
    // Back, but malformed: still none in force (the removed file's tokens do not return).
    replace(file, 'x\n');
    await expect.poll(() => said.length, { timeout: 5000, interval: 10 }).toBe(3);
    expect(said[2]).toMatch(/:1: expected .*got 1 field; still no token in force$/);
    expect(who(LONG)).toBeUndefined();

    // Back and good (replaced by rename, mode 0600): its tokens, no mode warning.
    replace(file, `${OTHER} carol operator\n`);
    await expect.poll(() => watch!.revoked(), { timeout: 5000, interval: 10 }).toBeUndefined();
    expect(said[3]).toBe(`token file ${file} reloaded: 1 token`);
    expect(said).toHaveLength(4);
    expect(who(OTHER)).toBe('carol');

    // Unreadable (replaced at once by a link to a directory): not a removal, the tokens stay.
    mkdirSync(path.join(dir, 'd'));
    symlinkSync(path.join(dir, 'd'), `${file}.new`);
    renameSync(`${file}.new`, file);
    await expect.poll(() => said.length, { timeout: 5000, interval: 10 }).toBeGreaterThan(4);
    expect(said.filter((l) => l.includes('removed'))).toHaveLength(1);
    expect(said.at(-1)).toBe(`token file ${file}: EISDIR; keeping the tokens in force`);
    expect(who(OTHER)).toBe('carol');
  });
});
