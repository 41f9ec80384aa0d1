import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { EventLog } from '../../../libs/eventlog/index.ts';
import { DEFAULT_PROXY_CONFIG, operationOutcome, refusedOperation } from '../../../libs/model/index.ts';
import { main } from '../../../services/cli/main.ts';
import type { RouteCall } from '../../../services/planner/http-api.ts';
import { HttpError } from '../../../services/planner/http-error.ts';
import { REFUSALS_BURST, RefusalRecorder } from '../../../services/planner/refused-operations.ts';
import { runPlanner, type RunningPlanner } from '../../../services/planner/run-planner.ts';
import { nodeStateHash, renderNodeState } from '../../../libs/planner/index.ts';
import {
  ack,
  nodeYaml,
  plannerEnv,
  sendAck,
  startBarePlanner,
  svcYaml,
  until,
  type PlannerEnv,
} from './planner-support.ts';

// probe11 K5: refused operations left no trace in `audit ops` (a second rollout colliding with
// one at a gate, a failed promote). An authenticated operator's refusal is now recorded with its
// outcome; 401/403 are counted and said on stderr, never written to the log.

let env: PlannerEnv;
let planner: RunningPlanner;
const said: string[] = [];

beforeAll(async () => {
  env = await plannerEnv();
  env.write('node-1.yaml', nodeYaml('node-1', '192.0.2.1'));
  env.write('node-2.yaml', nodeYaml('node-2', '192.0.2.2'));
  env.write('a.yaml', svcYaml('a', '10.96.0.1'));
  const tokenFile = path.join(env.dir, 'tokens');
  writeFileSync(tokenFile, 'view-tok grafana\nalice-tok alice operator\nbob-tok bob operator\nci-tok ci operator\n');
  planner = await runPlanner({
    manifests: env.manifests,
    nats: env.nats.url,
    db: env.db,
    http: '127.0.0.1:0',
    tokenFile,
    config: DEFAULT_PROXY_CONFIG,
    debounceMs: 20,
    pollMs: 100,
    say: (l) => said.push(l),
  });
  await planner.planner.synced;
});
afterAll(async () => {
  await planner?.stop();
  await env?.cleanup();
});

const call = async (p: string, token: string | undefined, body: unknown) => {
  const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
  const res = await fetch(planner.url + p, { method: 'POST', headers, body: JSON.stringify(body) });
  return { code: res.status, json: (await res.json()) as Record<string, unknown> };
};
const ops = () => (planner.planner['options'].log as EventLog).operations();
const metric = async (name: string) => {
  const text = await (await fetch(`${planner.url}/metrics`, { headers: { authorization: 'Bearer view-tok' } })).text();
  return text.split('\n').filter((l) => l.startsWith(name));
};

describe('refused operations in the audit trail (probe11 K5)', () => {
  it("an operator's 409s and 400s are recorded with actor, reason, request and outcome; accepted ones say accepted", async () => {
    // node-1's applier is live and in sync: it can be the canary of alice's rollout
    const p = planner.planner;
    const rendered = nodeStateHash(renderNodeState(p.data.publishedData(), 'node-1', p.config.revision(1)!.config));
    await sendAck(env.nc, ack('node-1', p.data.latest()!.version, 1, rendered, p.data.latest()!.hash));
    await until(() => p.status().find((n) => n.node === 'node-1')?.status === 'SYNCED', 5000, 'node-1 SYNCED');
    const started = await call('/mode', 'alice-tok', {
      mode: 'nftables',
      waves: '1,100%',
      pauseBefore: [2],
      reason: 'alice mode',
    });
    expect(started.code).toBe(200);
    const bob = await call('/rollout', 'bob-tok', { configRevision: 1, waves: '1,100%', reason: 'bob rollout' });
    expect(bob.code).toBe(409);
    const promote = await call('/rollout', 'alice-tok', { promote: true, reason: 'promote early' });
    expect(promote.code).toBe(409);
    const bad = await call('/pin', 'bob-tok', { version: 'one', reason: 'typo' });
    expect(bad).toMatchObject({ code: 400, json: { error: 'version must be a positive integer' } });

    const refused = ops().filter((o) => operationOutcome(o) !== 'accepted');
    expect(refused.map((o) => [o.kind, o.actor, o.reason, o.version])).toEqual([
      ['rollout', 'bob', 'bob rollout', undefined],
      ['rollout', 'alice', 'promote early', undefined],
      ['pin', 'bob', 'typo', undefined],
    ]);
    expect(operationOutcome(refused[0]!)).toBe(`refused (409): ${bob.json.error}`);
    expect(refused[0]!.params).toEqual({
      refused: { status: 409, error: bob.json.error, request: { configRevision: 1, waves: '1,100%' } },
    });
    expect(operationOutcome(refused[1]!)).toBe(`refused (409): ${promote.json.error}`);
    expect(operationOutcome(refused[2]!)).toBe('refused (400): version must be a positive integer');
    // the refusals changed nothing: the rollout alice started still waits, the data is not pinned
    expect(planner.planner.config.state.rollout).toMatchObject({ configRevision: 2 });
    expect(planner.planner.data.pin).toBeUndefined();
    expect(await metric('switchboard_planner_operations_refused_total')).toEqual(
      expect.arrayContaining([
        'switchboard_planner_operations_refused_total{status="409",recorded="true"} 2',
        'switchboard_planner_operations_refused_total{status="400",recorded="true"} 1',
      ]),
    );

    // audit ops (read-only on the running planner's file): an OUTCOME column, `outcome` in JSON
    let out = '';
    const spy = vi.spyOn(process.stdout, 'write').mockImplementation((s) => {
      out += String(s);
      return true;
    });
    try {
      expect(await main(['audit', '--db', env.db, 'ops', '-o', 'wide'])).toBe(0);
    } finally {
      spy.mockRestore();
    }
    expect(out.split('\n')[0]).toMatch(/^ID\s+AT\s+KIND\s+ACTOR\s+VERSION\s+REASON\s+OUTCOME\s+PARAMS$/);
    expect(out).toMatch(/\smode\s+alice\s+-\s+alice mode\s+accepted\s/);
    expect(out).toMatch(/\srollout\s+bob\s+-\s+bob rollout\s+refused \(409\): /);
  });

  it('401 and 403 are counted and said on stderr once a minute, never written to the log', async () => {
    const before = ops().length;
    expect((await call('/pin', 'view-tok', { version: 1 })).code).toBe(403);
    for (let i = 0; i < 30; i++) expect((await call('/pin', undefined, { version: 1 })).code).toBe(401);
    // a write from another site's page (request-guard.ts) is a 403 too, counted as one (K5 leftover)
    const crossSite = await fetch(`${planner.url}/pin`, {
      method: 'POST',
      headers: { authorization: 'Bearer alice-tok', 'sec-fetch-site': 'cross-site' },
      body: JSON.stringify({ version: 1 }),
    });
    expect(crossSite.status).toBe(403);
    expect(ops()).toHaveLength(before);
    expect(await metric('switchboard_planner_requests_denied_total')).toEqual(
      expect.arrayContaining([
        'switchboard_planner_requests_denied_total{status="403"} 2',
        'switchboard_planner_requests_denied_total{status="401"} 30',
      ]),
    );
    // the first denial is said at once, the next 30 wait for the minute to pass
    expect(said.filter((l) => l.includes('denied'))).toEqual([
      '1 API request(s) denied since the last such line; latest: 403 grafana (a viewer) POST /pin',
    ]);
  });

  it("one operator's flood of refusals is recorded up to a budget, then only counted", async () => {
    const recorded = () => ops().filter((o) => o.actor === 'ci').length;
    for (let i = 0; i < REFUSALS_BURST + 5; i++)
      expect((await call('/rollout', 'ci-tok', { promote: true, reason: `retry ${i}` })).code).toBe(409);
    expect(recorded()).toBe(REFUSALS_BURST);
    expect(await metric('switchboard_planner_operations_refused_total{status="409",recorded="false"}')).toEqual([
      'switchboard_planner_operations_refused_total{status="409",recorded="false"} 5',
    ]);
    expect(said.filter((l) => l.includes('not recorded'))).toHaveLength(1);
    // another operator still has its own budget
    expect((await call('/rollout', 'bob-tok', { promote: true, reason: 'bob too' })).code).toBe(409);
    expect(ops().at(-1)).toMatchObject({ actor: 'bob', reason: 'bob too' });
  });
});

describe("a refusal's record and the group's log (K5 leftover)", () => {
  it('is settled only once the group has flushed it, as an accepted operation is; a failed flush rejects', async () => {
    // what the file held at each flush: the record must be written before, and awaited by, one
    const flushed: number[] = [];
    let fail = false;
    const bare = await startBarePlanner(env, 'refusal-flush.db', {
      commit: async () => {
        flushed.push(bare.log.operations().length);
        if (fail) throw new Error('timed out');
      },
    });
    try {
      const op = (reason: string) =>
        refusedOperation({ kind: 'pin', actor: 'alice', reason, status: 409, error: 'no', request: {} });
      const [ops0, flushes0] = [bare.log.operations().length, flushed.length];
      await bare.planner.recordRefusal(op('first'));
      expect(flushed.slice(flushes0)).toEqual([ops0 + 1]);
      fail = true;
      await expect(bare.planner.recordRefusal(op('second'))).rejects.toThrow(
        /the record of a refused pin is not confirmed in the group's log \(timed out\)/,
      );
      expect(flushed.slice(flushes0)).toEqual([ops0 + 1, ops0 + 2]);
    } finally {
      await bare.stop();
    }
  });
});

describe('RefusalRecorder (pure)', () => {
  const call = {
    body: { version: 3, reason: 'r' },
    who: { actor: 'alice', reason: 'r' },
    principal: undefined,
  } as unknown as RouteCall;
  const failing = (e: unknown) => ({
    method: 'POST' as const,
    path: '/pin',
    access: 'operate' as const,
    handle: () => Promise.reject(e),
  });

  it('a 5xx (may still land) is not a refusal; a follower that cannot record still answers the same refusal', async () => {
    const recorded: unknown[] = [];
    const r = new RefusalRecorder({ recordRefusal: async (op) => recorded.push(op) }, { say: () => {} });
    await expect(r.route(failing(new HttpError(503, 'not confirmed'))).handle(call)).rejects.toThrow('not confirmed');
    expect(recorded).toEqual([]);
    const follower = new RefusalRecorder(
      { recordRefusal: () => Promise.reject(new Error('this planner follows: operations go to the leader')) },
      { say: () => {} },
    );
    await expect(
      follower.route(failing(new Error('no rollout waits at a --pause-before gate'))).handle(call),
    ).rejects.toThrow('no rollout waits at a --pause-before gate');
    await expect(r.route(failing(new Error('version 3 was compacted\nsecond line'))).handle(call)).rejects.toThrow();
    expect(recorded).toEqual([
      {
        kind: 'pin',
        actor: 'alice',
        reason: 'r',
        params: { refused: { status: 409, error: 'version 3 was compacted', request: { version: 3 } } },
      },
    ]);
  });
});
