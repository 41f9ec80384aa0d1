// One process per network namespace: a listening abstract unix socket, whose name the kernel
// keeps per network namespace and frees when its holder dies (kill -9 included).
//
// A lock file keeps apart only the processes that share it; the kernel state an applier programs
// belongs to a network namespace, which processes share whatever files they see (a unit file on
// the host beside a DaemonSet pod with hostNetwork, given other state directories). An abstract
// name is seen by every process in the namespace, across mount and PID namespaces.
//
// Anyone in the namespace may bind any abstract name first, so the name alone would let an
// unprivileged process keep every applier from starting. Who holds it is asked of the kernel
// (sock_diag: the uid that created the socket): a holder that is neither root nor this process's
// uid could not program the namespace's kernel state, so it is ignored, with a note. The holder
// answers each connection with who it is (purpose, pid, host, since), to name it in a refusal.

import net from 'node:net';
import { hostname } from 'node:os';
import { listListeningUnixSockets } from '../netlink/index.ts';
import { holderText, type ProcessLock } from './process-lock.ts';

/** What the holder found when the name was taken: its uid and what it says it is. */
export interface ClaimHolder {
  /** The uid the kernel says created the socket; undefined when sock_diag could not tell. */
  readonly uid: number | undefined;
  readonly inode: number | undefined;
  /** What the holder said it is (its greeting), as text; undefined when it said nothing readable. */
  readonly says: string | undefined;
  /** Why the kernel could not be asked (sock_diag failed), when it could not. */
  readonly diagError?: string;
}

/** Taken; held by a process that could program the namespace (`heldBy` names it); or held by one that could not. */
export type ClaimAttempt = { readonly lock: ProcessLock } | { readonly heldBy: string } | { readonly ignored: string };

/**
 * Whether a holder of the name counts (pure). `myUid`: this process's effective uid. A holder the
 * kernel names with another uid than root's and ours could not program the namespace: ignored.
 * When the kernel cannot say, what the holder says decides: one that answers as a claim of ours
 * counts, one that says nothing is ignored.
 */
export function judgeClaimHolder(name: string, holder: ClaimHolder, myUid: number): ClaimAttempt {
  const socket = holder.inode === undefined ? '' : `, socket inode ${holder.inode}`;
  if (holder.uid !== undefined && holder.uid !== 0 && holder.uid !== myUid)
    return {
      ignored: `@${name} is held by uid ${holder.uid}${socket}, which cannot program this network namespace: ignored (only a root-owned holder counts)`,
    };
  if (holder.uid !== undefined)
    return {
      heldBy: `${holder.says ?? `a process of uid ${holder.uid} that does not say what it is`}; it holds @${name}${socket}`,
    };
  if (holder.says !== undefined) return { heldBy: `${holder.says}; it holds @${name}` };
  return {
    ignored: `@${name} is held by a process the kernel did not name (${holder.diagError ?? 'sock_diag: not found'}) and that does not say what it is: ignored`,
  };
}

/**
 * Claims the abstract unix socket name `name` in this process's network namespace for `purpose`
 * (said to whoever is refused). Resolves with the claim, with the process that holds it, or with
 * why a holder was ignored (then nothing is held: the caller goes on, with a note).
 */
export async function claimAbstractName(name: string, purpose: string): Promise<ClaimAttempt> {
  const who = `${JSON.stringify({ purpose, pid: process.pid, host: hostname(), since: new Date().toISOString() })}\n`;
  const server = net.createServer((c) => {
    c.on('error', () => undefined); // a peer gone before the greeting: nothing to do
    // closed once the greeting is written (the peer still reads it): a peer that never closes its
    // end keeps nothing here
    c.end(who, () => c.destroy());
  });
  server.maxConnections = 16; // anyone in the namespace may connect: a flood is dropped, not served
  server.on('error', () => undefined); // after listening: nothing it could report to
  const listened = await new Promise<NodeJS.ErrnoException | undefined>((resolve) => {
    server.once('error', resolve);
    server.listen({ path: `\0${name}` }, () => resolve(undefined));
  });
  if (!listened) {
    server.unref(); // an idle claim keeps no process alive
    let held = true;
    return {
      lock: {
        release() {
          if (!held) return;
          held = false;
          server.close();
        },
      },
    };
  }
  if (listened.code !== 'EADDRINUSE') throw new Error(`@${name}: cannot claim it: ${listened.message}`);
  const [found, says] = await Promise.all([holderOf(name), ask(name)]);
  const uid = typeof process.geteuid === 'function' ? process.geteuid() : 0;
  return judgeClaimHolder(name, { ...found, says }, uid);
}

async function holderOf(name: string): Promise<Omit<ClaimHolder, 'says'>> {
  try {
    const s = (await listListeningUnixSockets()).find((x) => x.name === `@${name}`);
    return s
      ? { uid: s.uid, inode: s.inode }
      : { uid: undefined, inode: undefined, diagError: 'sock_diag: not listed' };
  } catch (e) {
    return { uid: undefined, inode: undefined, diagError: `sock_diag: ${(e as Error).message}` };
  }
}

/** What the holder says it is (its first line, when it is a claim of ours), within 1 s. */
function ask(name: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    let text = '';
    const c = net.createConnection({ path: `\0${name}` });
    const done = () => {
      clearTimeout(timer);
      c.destroy();
      resolve(describeGreeting(text));
    };
    const timer = setTimeout(done, 1000);
    c.setEncoding('utf8');
    c.on('data', (d: string) => {
      text += d;
      if (text.includes('\n') || text.length > 4096) done();
    });
    c.on('end', done);
    c.on('error', done);
  });
}

/** A claim's greeting as "PURPOSE, pid PID on HOST since SINCE" (the lock files' wording); undefined if it is not one. */
export function describeGreeting(text: string): string | undefined {
  try {
    const h = JSON.parse(text.split('\n')[0] ?? '') as Record<string, unknown>;
    if (typeof h.purpose !== 'string' || typeof h.pid !== 'number') return undefined;
    return holderText(h);
  } catch {
    return undefined;
  }
}
