import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { NatsServerHandle } from '../../support/nats-server.ts';

/**
 * Freezes a test's nats-server with SIGSTOP (its sockets stay open, nothing is answered: a hung
 * server or a link that drops everything without a reset) and thaws it with SIGCONT. The process
 * is found by its command line naming the handle's own config file (a unique temp path), so no
 * other process can match. Returns once the kernel shows the process stopped (kill() only queues
 * the signal), so whatever the caller sends next is surely not answered before the thaw.
 * `thaw()` is idempotent; call it in cleanup so a failing test never leaves a stopped server behind.
 */
export function freezeNats(server: NatsServerHandle): { thaw(): void } {
  const pid = natsPid(server);
  process.kill(pid, 'SIGSTOP');
  waitStopped(pid);
  let frozen = true;
  return {
    thaw() {
      if (!frozen) return;
      frozen = false;
      process.kill(pid, 'SIGCONT');
    },
  };
}

/** Waits (synchronously, at most 2 s) until /proc says every thread of `pid` is stopped (state T). */
function waitStopped(pid: number): void {
  const tick = new Int32Array(new SharedArrayBuffer(4));
  const stopped = (task: string) => {
    const stat = readFileSync(`/proc/${pid}/task/${task}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('T');
  };
  for (let i = 0; i < 2000; i++) {
    if (readdirSync(`/proc/${pid}/task`).every(stopped)) return;
    Atomics.wait(tick, 0, 0, 1);
  }
  throw new Error(`nats-server ${pid} not stopped 2 s after SIGSTOP`);
}

function natsPid(server: NatsServerHandle): number {
  const conf = path.join(path.dirname(server.storeDir), 'server.conf');
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    let cmd: string;
    try {
      cmd = readFileSync(`/proc/${d}/cmdline`, 'utf8');
    } catch {
      continue; // exited meanwhile
    }
    if (cmd.split('\0').includes(conf)) return Number(d);
  }
  throw new Error(`no process runs with ${conf}`);
}
