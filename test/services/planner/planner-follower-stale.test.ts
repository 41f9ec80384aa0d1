import { afterEach, beforeEach, expect, it, vi } from 'vitest';
import { DEFAULT_PROXY_CONFIG } from '../../../libs/model/index.ts';
import { nodeStateHash, renderNodeState } from '../../../libs/planner/index.ts';
import { Planner } from '../../../services/planner/planner.ts';
import { runPlanner, type RunningPlanner } from '../../../services/planner/run-planner.ts';
import { ack, nodeYaml, plannerEnv, sendAck, sliceYaml, svcYaml, until, type PlannerEnv } from './planner-support.ts';

// Review finding F9: a follower serves GET /status from its own copy of the group's log. When that
// copy stops following, its node words must not be measured against the stale targets: a node
// stuck on the old version would read SYNCED there (and `ctl --server <follower> wait` pass).

let env: PlannerEnv;
const stops: (() => Promise<unknown>)[] = [];
beforeEach(async () => {
  env = await plannerEnv();
  env.write('nodes.yaml', nodeYaml('node-1', '192.0.2.1'));
  env.write('a.yaml', svcYaml('a', '10.96.0.1') + '---\n' + sliceYaml('a', ['10.0.0.1']));
});
afterEach(async () => {
  vi.restoreAllMocks();
  for (const s of stops.splice(0).reverse()) await s().catch(() => undefined);
  await env.cleanup();
});

const start = async (id: string, db: string, say: (line: string) => void = () => {}): Promise<RunningPlanner> => {
  const p = await runPlanner({
    manifests: env.manifests,
    nats: env.nats.url,
    db: `${env.dir}/${db}`,
    http: '127.0.0.1:0',
    config: DEFAULT_PROXY_CONFIG,
    debounceMs: 20,
    pollMs: 100,
    id,
    signingKey: `${env.dir}/signing-key.pem`, // one group, one key
    followerStaleAfterMs: 1500, // default 5 s, waited out in each test
    say,
  });
  stops.push(() => p.stop());
  return p;
};

const word = async (url: string) =>
  ((await (await fetch(`${url}/status`)).json()) as { nodes: { status: string; reason: string }[] }).nodes[0]!;

/** A leader and a follower, node-1 SYNCED on version 1 as the follower sees it. */
async function syncedPair(say?: (line: string) => void) {
  const leader = await start('first', 'first.db');
  await leader.planner.synced;
  const follower = await start('second', 'second.db', say);
  expect(follower.group.role()).toBe('follower');
  await follower.planner.synced;
  const lp = leader.planner;
  const h = nodeStateHash(renderNodeState(lp.data.publishedData(), 'node-1', lp.config.revision(1)!.config));
  await sendAck(env.nc, ack('node-1', 1, 1, h, lp.data.latest()!.hash));
  await until(async () => (await word(follower.url)).status === 'SYNCED', 5000, 'SYNCED on the follower');
  return { leader, follower, lp };
}

async function staleFollower(afterStop: () => void = () => {}): Promise<void> {
  const { leader, follower, lp } = await syncedPair();

  // the follower's replicated log stops (as when it keeps failing); the leader makes version 2,
  // which node-1 never applies
  await (follower.group as unknown as { following: { stop(): Promise<void> } }).following.stop();
  env.write('a.yaml', svcYaml('a', '10.96.0.1') + '---\n' + sliceYaml('a', ['10.0.0.2']));
  await until(() => lp.data.latest()?.version === 2, 5000, 'version 2 on the leader');
  await until(async () => (await word(leader.url)).status === 'APPLYING', 5000, 'APPLYING on the leader');
  // the follower has seen its copy behind (its /status measures since when), then the hook runs
  const lag = async () =>
    ((await (await fetch(`${follower.url}/status`)).json()) as { self: { lagRows: number } }).self;
  await until(async () => (await lag()).lagRows > 0, 5000, 'the follower sees its copy behind');
  afterStop();
  await until(async () => (await word(follower.url)).status === 'UNKNOWN', 12_000, 'UNKNOWN on the follower');
  expect((await word(follower.url)).reason).toMatch(
    /^planner view stale: its copy of the group's log has not moved for \d+ s, \d+ rows behind$/,
  );
  const { main } = await import('../../../services/cli/main.ts');
  expect(await main(['ctl', '--server', follower.url, 'wait', '--for=synced', '--timeout', '1s'])).toBe(1);
}

it(
  "a follower whose copy of the group's log stopped shows node words UNKNOWN (planner view stale), not SYNCED",
  () => staleFollower(),
  40_000,
);

// probe12: "has not moved for" was measured on the wall clock: stepped back an hour (NTP, a VM
// restored) right after the copy stopped, the follower kept its stale words SYNCED for that hour.
it(
  'the same with the wall clock stepped back an hour when the copy stops',
  () =>
    staleFollower(() => {
      const wall = Date.now.bind(Date);
      vi.spyOn(Date, 'now').mockImplementation(() => wall() - 3_600_000);
    }),
  40_000,
);

// A follower's view is rebuilt from its copy of the log when the copy moves. A rebuild that failed
// (a read error, the file busy) waited for the log to move again: on a quiet cluster the view
// stayed at the old version, nothing said past one stderr line, and its node words read SYNCED
// against targets the leader had replaced.
it('a follower whose view cannot be rebuilt says so, shows UNKNOWN (planner view stale), and rebuilds it again while the log stands still', async () => {
  const said: string[] = [];
  const { follower, lp } = await syncedPair((l) => said.push(l));

  let failing = true;
  const realRefresh = Planner.prototype.refresh;
  vi.spyOn(Planner.prototype, 'refresh').mockImplementation(async function (this: Planner) {
    if (failing) throw new Error('disk I/O error (test)');
    return realRefresh.call(this);
  });
  env.write('a.yaml', svcYaml('a', '10.96.0.1') + '---\n' + sliceYaml('a', ['10.0.0.2']));
  await until(() => lp.data.latest()?.version === 2, 5000, 'version 2 on the leader');
  await until(
    () => follower.planner.failure('view rebuild') === 'view rebuild: disk I/O error (test)',
    5000,
    "the failed rebuild in the follower's lastError",
  );
  await until(async () => (await word(follower.url)).status === 'UNKNOWN', 12_000, 'UNKNOWN on the follower');
  expect((await word(follower.url)).reason).toMatch(
    /^planner view stale: its view could not be rebuilt from its copy of the group's log for \d+ s: disk I\/O error \(test\)$/,
  );
  expect(follower.planner.data.latest()?.version).toBe(1);
  const readyz = async () => {
    const r = await fetch(`${follower.url}/readyz`);
    return { code: r.status, reason: ((await r.json()) as { reason?: string }).reason };
  };
  expect(await readyz()).toEqual({ code: 503, reason: 'view rebuild: disk I/O error (test)' });
  // tried again meanwhile (every 2 s), said once
  expect(said.filter((l) => l.includes('disk I/O error'))).toHaveLength(1);

  // the cause is gone; the leader publishes nothing more, so the follower's copy does not move
  failing = false;
  await until(() => follower.planner.data.latest()?.version === 2, 8000, 'version 2 in the follower view');
  expect(follower.planner.failure('view rebuild')).toBeUndefined();
  expect((await readyz()).code).toBe(200);
  await until(async () => (await word(follower.url)).status === 'APPLYING', 5000, 'APPLYING on the follower');
  expect(said.some((l) => /its view rebuilt again after \d+ s of failures/.test(l))).toBe(true);
}, 40_000);
