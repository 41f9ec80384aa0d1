// takeNodeLock (services/applier/node-lock.ts) in one process, where SQLite refuses a second
// connection a lock its first holds as it refuses another process's: the node's lock and its
// network namespace's are both taken, a refusal of either leaves neither held, and a release
// frees both. test/services/applier/node-lock.test.ts takes them from processes in netns.
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { tryProcessLock } from '../../../libs/locks/index.ts';
import {
  netnsLockFile,
  networkNamespaceInode,
  nodeLockFile,
  takeNodeLock,
} from '../../../services/applier/node-lock.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'sb-nodelock-unit-'));
/** This test's own namespace claim name: the vitest worker runs in the host's namespace. */
const CLAIM = `switchboard-test/node-lock-${process.pid}`;
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('takeNodeLock', () => {
  it("takes the node's lock and its namespace's; another name in the namespace is refused and holds nothing", async () => {
    const inode = networkNamespaceInode();
    expect(inode).toBe(statSync('/proc/self/ns/net').ino);
    const a = await takeNodeLock(dir, 'node-a', 'applier', undefined, CLAIM);
    const nsFile = netnsLockFile(dir, inode);
    expect(JSON.parse(readFileSync(`${nsFile}.holder`, 'utf8'))).toMatchObject({ purpose: 'applier of node node-a' });

    await expect(takeNodeLock(dir, 'node-a', 'apply --once', undefined, CLAIM)).rejects.toThrow(
      new RegExp(`^node node-a is programmed by another process \\(applier of node node-a, pid ${process.pid} on `),
    );
    await expect(takeNodeLock(dir, 'node-b', 'apply --once', undefined, CLAIM)).rejects.toThrow(
      new RegExp(
        `^this process's network namespace \\(net:\\[${inode}\\]\\) is programmed by another process \\(applier of node node-a, pid ${process.pid} on [^;]*; lock ${nsFile.replaceAll('.', '\\.')}\\): stop it first, one process per network namespace$`,
      ),
    );
    // node-b's own lock was let go when the namespace's was refused: taken now by name, not refused
    const bOnly = takeNodeLockFileOnly('node-b');
    bOnly.release();

    a.release();
    const b = await takeNodeLock(dir, 'node-b', 'cleanup', undefined, CLAIM);
    expect(JSON.parse(readFileSync(`${nsFile}.holder`, 'utf8'))).toMatchObject({ purpose: 'cleanup of node node-b' });
    b.release();
    // released twice: nothing left to release, no error
    b.release();
    (await takeNodeLock(dir, 'node-a', 'applier', undefined, CLAIM)).release();
  });

  it('a named namespace that does not exist is one line naming it', async () => {
    await expect(takeNodeLock(dir, 'node-a', 'cleanup', `sb-none-${process.pid}`)).rejects.toThrow(
      `network namespace sb-none-${process.pid}: not found (/run/netns/sb-none-${process.pid}: ENOENT)`,
    );
  });
});

/** The node's lock file alone (what takeNodeLock takes first), to see whether a refusal left it held. */
function takeNodeLockFileOnly(node: string) {
  const file = nodeLockFile(dir, node);
  const a = tryProcessLock(file, 'probe');
  if (!('lock' in a)) throw new Error(`${file} still held: ${a.heldBy}`);
  return a.lock;
}
