import { afterEach, expect, it, vi } from 'vitest';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { main } from '../../../services/cli/main.ts';
import type { RunningPlanner } from '../../../services/planner/run-planner.ts';
import { startGroupPlanner } from '../../ha/in-process-group.ts';
import { nodeYaml, plannerEnv, sliceYaml, svcYaml, type PlannerEnv } from './planner-support.ts';

/**
 * probe8 J1: JetStream refusing the lease (its storage full: the server's max_file_store used up
 * by another stream) left a group with no leader while every planner's /readyz said 200, writes
 * answered "retry shortly", and nothing said why. Two planners of one group in this process on a
 * real nats-server with a small JetStream storage.
 */
let env: PlannerEnv | undefined;
const stops: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const s of stops.splice(0).reverse()) await s().catch(() => undefined);
  await env?.cleanup();
  env = undefined;
});

const readyz = async (p: RunningPlanner) => {
  const r = await fetch(`${p.url}/readyz`);
  return { status: r.status, ...((await r.json()) as { reason?: string }) };
};
const status = async (p: RunningPlanner) => (await (await fetch(`${p.url}/status`)).json()) as Record<string, unknown>;

async function ctlStatusHead(url: string): Promise<string> {
  let out = '';
  const spy = vi.spyOn(process.stdout, 'write').mockImplementation((s) => {
    out += String(s);
    return true;
  });
  try {
    expect(await main(['ctl', '--server', url, 'status'])).toBe(0);
  } finally {
    spy.mockRestore();
  }
  return out.split('\n')[0]!;
}

it('no planner leads for longer than the TTL: /readyz 503 on every planner naming the cause, /status noLeader, lastError, writes 503 without "retry shortly", ctl status NOT CURRENT; all clear once JetStream has room', async () => {
  env = await plannerEnv({ jetstreamLimits: 'max_file_store: 262144' });
  env.write('nodes.yaml', nodeYaml('node-1', '192.0.2.1'));
  env.write('a.yaml', svcYaml('a', '10.96.0.1') + '---\n' + sliceYaml('a', ['10.0.0.1']));
  const said: Record<string, string[]> = { a: [], b: [] };
  const start = (id: 'a' | 'b') =>
    startGroupPlanner(env!, stops, { id, db: `${env!.db}.${id}`, say: (l) => said[id]!.push(l) });
  const a = await start('a');
  const b = await start('b');
  for (const p of [a, b]) await expect.poll(async () => (await readyz(p)).status, { timeout: 10_000 }).toBe(200);
  expect(a.group.role()).toBe('leader');
  expect((await status(b)).noLeader).toBeNull();

  // Another stream uses JetStream's storage up: the lease can be neither renewed nor claimed.
  const jsm = await jetstreamManager(env.nc);
  await jsm.streams.add({ name: 'FILL', subjects: ['fill.>'] });
  const js = jetstream(env.nc);
  const refusal = await (async () => {
    for (let i = 0; i < 1000; i++) await js.publish('fill.x', new Uint8Array(4000));
  })().catch((e: Error) => e);
  expect(refusal).toMatchObject({ code: 10023 });

  const cause =
    'JetStream storage is full on the server (its max_file_store or max_mem_store, or the disk, is used up) (JetStream error 10023: insufficient resources)';
  const reason = `no planner has led group switchboard for longer than its lease TTL (${cause})`;
  for (const p of [a, b])
    await expect
      .poll(async () => readyz(p), { timeout: 12_000, interval: 100 })
      .toEqual({ status: 503, ready: false, reason });
  const s = await status(b);
  expect(s.noLeader).toEqual({ forS: expect.any(Number), cause, lasting: true });
  expect(s.notReady).toBe(reason);
  expect(s.leader).toBeNull();
  // lastError follows on each follower's next refresh (every 500 ms; 5 s: ten of them, room for a loaded host)
  for (const p of [b, a]) // a: the deposed leader too
    await expect.poll(() => p.planner.lastError, { timeout: 5000, interval: 50 }).toBe(`no leader: ${cause}`);

  // A write names the cause, without "retry shortly": it lasts until an operator frees space.
  const w = await fetch(`${b.url}/unpin`, { method: 'POST', body: '{}' });
  expect(w.status).toBe(503);
  expect(((await w.json()) as { error: string }).error).toBe(
    `planner b follows in group switchboard and no leader is known right now: ${cause}`,
  );
  expect(await ctlStatusHead(b.url)).toMatch(
    new RegExp(`, NOT CURRENT: no planner leads group switchboard \\(for \\d+ s: ${regexOf(cause)}\\)$`),
  );
  // said once on stderr by each planner, not at every look (TTL/4 apart)
  for (const id of ['a', 'b'])
    expect(said[id]!.filter((l) => l.startsWith(`cannot claim the group's lease: ${cause}`))).toHaveLength(1);

  await jsm.streams.delete('FILL'); // room again: a leader, every planner ready, nothing shown
  for (const p of [a, b])
    await expect.poll(async () => (await readyz(p)).status, { timeout: 12_000, interval: 100 }).toBe(200);
  await expect
    .poll(() => a.group.role() === 'leader' || b.group.role() === 'leader', { timeout: 10_000, interval: 100 })
    .toBe(true);
  const follower = a.group.role() === 'leader' ? b : a;
  await expect.poll(() => follower.planner.failure('no leader'), { timeout: 5000, interval: 50 }).toBeUndefined();
  expect((await status(follower)).noLeader).toBeNull();
  expect(await ctlStatusHead(follower.url)).not.toMatch(/NOT CURRENT/);
  for (const id of ['a', 'b'])
    expect(said[id]!.filter((l) => l.startsWith(`the group's lease answers again (it failed: ${cause})`))).toHaveLength(
      1,
    );
}, 40_000);

function regexOf(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
