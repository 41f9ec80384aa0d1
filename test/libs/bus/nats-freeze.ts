import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { NatsServerHandle } from '../../support/nats-server.ts';

/**
 * Freezes a test's nats-server with SIGSTOP (its sockets stay open, nothing is answered: a hung
 * server or a link that drops everything without a reset) and thaws it with SIGCONT. The process
 * is found by its command line naming the handle's own config file (a unique temp path), so no
 * other process can match. `thaw()` is idempotent; call it in cleanup so a failing test never
 * leaves a stopped server behind.
 */
export function freezeNats(server: NatsServerHandle): { thaw(): void } {
  const pid = natsPid(server);
  process.kill(pid, 'SIGSTOP');
  let frozen = true;
  return {
    thaw() {
      if (!frozen) return;
      frozen = false;
      process.kill(pid, 'SIGCONT');
    },
  };
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
