// Runs inside a netns (TestNetns.run): the real notification listener child of a netlink
// NftablesDataplane is killed (SIGKILL) while it runs, as the OOM killer or an operator would.
// Applies and resyncs must go on succeeding; the record restarts with a new child; a resync
// after a change made while the child was dead reads the whole table and names why; once the
// new child records, resyncs read back only what notifications name again.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { NftablesDataplane, NftNetlinkRunner } from '../../../libs/dataplane/index.ts';
import type { ApplyResult } from '../../../libs/dataplane/index.ts';
import { nodeState } from './node-state-builder.ts';

export interface ListenerKillStep {
  step: string;
  /** The listener child's PID after the step (undefined: none running). */
  child: number | undefined;
  notes: readonly string[];
  writes: number;
  verified: boolean;
  /** `nft list table` is, line for line, what it was after the first apply. */
  tableAsLoaded: boolean;
}

const TABLE = 'sblisten';
const nft = (...args: string[]): string => execFileSync('nft', args, { encoding: 'utf8' });
const listing = () => nft('list', 'table', 'inet', TABLE).split('\n').sort().join('\n');
const service = (endpoints: string[]) =>
  nodeState(
    [
      { servicePort: 'ns/a:p', address: '10.96.0.1', port: 80, endpoints },
      { servicePort: 'ns/b:p', address: '10.96.0.2', port: 80, endpoints: ['10.1.0.3:8080'] },
    ],
    { clusterCIDR: '10.0.0.0/8' },
  );
const state = service(['10.1.0.1:8080', '10.1.0.2:8080']);
const changed = service(['10.1.0.1:8080']);

/**
 * This process's listener child: a child of ours (every thread's children list) whose command line
 * is the listener's code. Found by parentage and content, ended by PID.
 */
function listenerChild(): number | undefined {
  for (const tid of readdirSync(`/proc/${process.pid}/task`)) {
    let kids: string;
    try {
      kids = readFileSync(`/proc/${process.pid}/task/${tid}/children`, 'utf8');
    } catch {
      continue;
    }
    for (const pid of kids.split(' ').filter(Boolean).map(Number)) {
      try {
        if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('addMembership')) return pid;
      } catch {
        // exited meanwhile
      }
    }
  }
  return undefined;
}

/**
 * SIGKILLs the running child and waits until the runner has heard of the loss (its record says
 * so): a call made before that still finds the dying child current and restarts nothing, which
 * is fine in production (the next call restarts it) but would make the steps below race.
 */
async function killListener(runner: NftNetlinkRunner): Promise<number> {
  const pid = listenerChild();
  if (pid === undefined) throw new Error('no listener child running');
  process.kill(pid, 'SIGKILL');
  const g = await runner.generation();
  for (let i = 0; i < 1000; i++) {
    const r = await runner.changesSince('inet', TABLE, g, g);
    if ('unknown' in r && r.unknown.includes('exited')) return pid;
    await new Promise((res) => setTimeout(res, 10));
  }
  throw new Error('the runner never heard of the listener exit');
}

export async function runningListenerKilled(): Promise<ListenerKillStep[]> {
  const runner = new NftNetlinkRunner();
  const dp = new NftablesDataplane({ runner, table: TABLE });
  const out: ListenerKillStep[] = [];
  let loaded = '';
  const record = async (step: string, r: Promise<ApplyResult>) => {
    const res = await r;
    out.push({
      step,
      child: listenerChild(),
      notes: res.notes,
      writes: res.kernelWrites,
      verified: res.verified,
      tableAsLoaded: listing() === loaded,
    });
  };
  try {
    await dp.apply(state);
    loaded = listing();
    const first = listenerChild();
    out.push({ step: 'first apply', child: first, notes: [], writes: 0, verified: true, tableAsLoaded: true });

    const killed = await killListener(runner);
    out.push({ step: 'listener killed', child: killed, notes: [], writes: 0, verified: true, tableAsLoaded: true });
    nft('delete', 'element', 'inet', TABLE, 'service-ips', '{ 10.96.0.1 . tcp . 80 }');
    await record('a foreign change while it was dead', dp.resync());
    nft('delete', 'element', 'inet', TABLE, 'service-ips', '{ 10.96.0.2 . tcp . 80 }');
    await record('a foreign change, the new child recording', dp.resync());

    await killListener(runner);
    await record('an apply right after a kill', dp.apply(changed));
    await record('back to the first state', dp.apply(state));
    nft('delete', 'element', 'inet', TABLE, 'service-ips', '{ 10.96.0.1 . tcp . 80 }');
    await record('a foreign change after the apply restarted it', dp.resync());
    nft('delete', 'element', 'inet', TABLE, 'service-ips', '{ 10.96.0.1 . tcp . 80 }');
    await record('a foreign change after that whole read', dp.resync());
    return out;
  } finally {
    await dp.cleanup().catch(() => undefined);
    await dp.close();
  }
}
