// Runs inside a netns (TestNetns.run): the nftables dataplane as the applier builds it
// (createDataplane), with nf_tables change notifications on and off, against a commit to another
// table; reports what the resync read and which child processes this process had after the apply.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { createDataplane } from '../../../libs/dataplane/index.ts';
import { nodeState } from './node-state-builder.ts';

const nft = (...args: string[]): string => execFileSync('nft', args, { encoding: 'utf8' });

/** Command lines of this process's children (every thread's), e.g. the notification listener. */
function children(): string[] {
  const pids = readdirSync('/proc/self/task').flatMap((t) =>
    readFileSync(`/proc/self/task/${t}/children`, 'utf8').trim().split(/\s+/).filter(Boolean),
  );
  return pids.map((p) => {
    try {
      return readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0').slice(0, 2).join(' ');
    } catch {
      return `${p} (gone)`;
    }
  });
}

export interface OptionOutcome {
  notifications: boolean;
  listenerChildren: number;
  /** `none`: the resync knew the commit was not to our table; `read`: it read our table back. */
  resync: 'none' | 'read';
  writes: number;
}

export async function withAndWithoutNotifications(): Promise<OptionOutcome[]> {
  const state = nodeState([{ servicePort: 'ns/a:p', address: '10.96.0.1', port: 80, endpoints: ['10.1.0.1:8080'] }]);
  const out: OptionOutcome[] = [];
  for (const notifications of [true, false]) {
    const dp = await createDataplane({ mode: 'nftables', node: 'n1', nftChangeNotifications: notifications });
    try {
      await dp.apply(state);
      const listenerChildren = children().filter((c) => c.includes(' -e')).length;
      nft('add', 'table', 'inet', 'someone-else');
      const r = await dp.resync();
      out.push({
        notifications,
        listenerChildren,
        resync: r.notes.some((n) => n.includes('none to our table')) ? 'none' : 'read',
        writes: r.kernelWrites,
      });
    } finally {
      nft('delete', 'table', 'inet', 'someone-else');
      await dp.cleanup();
      await dp.close();
    }
  }
  return out;
}
