import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EventLog, type RetentionStatus } from '../../../libs/eventlog/index.ts';
import { DEFAULT_PROXY_CONFIG } from '../../../libs/model/index.ts';
import { runPlanner, type RunningPlanner } from '../../../services/planner/run-planner.ts';
import { nodeYaml, plannerEnv, sliceYaml, svcYaml, until, type PlannerEnv } from './planner-support.ts';

// probe11 K3 on a real planner (manifests, nats-server, SQLite): after online retention the first
// row `GET /versions` (ctl versions) listed was the parent of the oldest rebuildable version,
// /status named the next one, and pin/diff of the listed one failed with "events up to seq N were
// compacted and no checkpoint covers seq M".

let env: PlannerEnv;
const stops: (() => Promise<unknown>)[] = [];

beforeEach(async () => {
  env = await plannerEnv();
  env.write('nodes.yaml', nodeYaml('node-1', '192.0.2.1'));
});
afterEach(async () => {
  for (const s of stops.splice(0).reverse()) await s().catch(() => undefined);
  await env.cleanup();
});

async function get<T>(p: RunningPlanner, path: string): Promise<{ code: number; body: T }> {
  const res = await fetch(`${p.url}${path}`);
  return { code: res.status, body: (await res.json()) as T };
}

async function post(p: RunningPlanner, path: string, body: unknown): Promise<{ code: number; error?: string }> {
  const res = await fetch(`${p.url}${path}`, {
    method: 'POST',
    headers: { 'x-switchboard-actor': 'alice' },
    body: JSON.stringify(body),
  });
  return { code: res.status, ...((await res.json()) as { error?: string }) };
}

describe('planner --retain-versions: one oldest version (probe11 K3)', () => {
  it('versions starts at /status oldestVersion; the row kept below it answers COMPACTED in versions terms', {
    timeout: 60_000,
  }, async () => {
    const p = await runPlanner({
      manifests: env.manifests,
      nats: env.nats.url,
      db: env.db,
      http: '127.0.0.1:0',
      config: DEFAULT_PROXY_CONFIG,
      debounceMs: 20,
      pollMs: 50,
      leaseTtlMs: 3000,
      checkpointEvery: 2,
      retain: { versions: 2 },
      retainEveryMs: 100,
      say: () => {},
    });
    stops.push(() => p.stop());
    await p.planner.synced;
    for (let n = 1; n <= 8; n++) {
      const before = p.planner.data.latest()?.version ?? 0;
      env.write('a.yaml', `${svcYaml('a', '10.96.0.1')}---\n${sliceYaml('a', [`10.0.0.${n}`])}`);
      await until(() => (p.planner.data.latest()?.version ?? 0) > before, 10_000, `a version after ${before}`);
    }
    const latest = p.planner.data.latest()!.version;
    await until(
      async () => ((await get<{ retention: RetentionStatus }>(p, '/status')).body.retention.oldestVersion ?? 0) > 2,
      40_000,
      'a retention run',
    );
    // As in the finding: pin the oldest version listed. Runs go on every 100 ms (the group's mark
    // moves once a second), so the listing may be a run old: ask again then. Once pinned, the pin
    // holds retention there and nothing below moves.
    let oldest = 0;
    for (let i = 0; i < 20 && !oldest; i++) {
      const first = (await get<{ versions: { version: number }[] }>(p, '/versions')).body.versions[0]!.version;
      const r = await post(p, '/pin', { version: first, reason: 'pin the oldest listed' });
      if (r.code === 200) oldest = first;
      else expect(r.error).toMatch(/^version \d+ was compacted from the log \(it rebuilds versions from \d+ on\)$/);
    }
    expect(oldest).toBeGreaterThan(2);
    const status = (await get<{ retention: RetentionStatus }>(p, '/status')).body.retention;
    expect(status.oldestVersion).toBe(oldest);
    expect(status.heldBy).toBe(`the data pin to version ${oldest}`);
    // the file (read-only, as audit reads a running planner's) still holds the row below it
    const log = await EventLog.open({ file: env.db, readOnly: true });
    try {
      expect(log.version(oldest - 1)).toBeDefined();
    } finally {
      log.close();
    }

    const listed = (await get<{ versions: { version: number }[]; omitted: number }>(p, '/versions')).body;
    expect(listed.versions[0]!.version).toBe(oldest);
    expect(listed.versions.at(-1)!.version).toBe(latest + 1); // the pin's version
    expect(listed.omitted).toBe(0);

    const sentence = `version ${oldest - 1} was compacted from the log (it rebuilds versions from ${oldest} on)`;
    expect(await post(p, '/pin', { version: oldest - 1, reason: 'pin the row below' })).toMatchObject({
      error: sentence,
    });
    expect(await post(p, '/rollback', { toVersion: oldest - 1, reason: 'back to the row below' })).toMatchObject({
      error: sentence,
    });
    expect((await get<{ error: string }>(p, `/diff?a=${oldest - 1}&b=${latest}`)).body.error).toBe(sentence);
  });
});
