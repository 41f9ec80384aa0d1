import { EventEmitter } from 'node:events';
import { describe, expect, it, vi } from 'vitest';

// Review3 A2: /ui/api/events made a snapshot per stream per tick and queued it whether or not the
// viewer read: 20 streams that never read took the planner from 254 MB to 505 MB. The route is
// driven here with fake responses whose unsent bytes (writableLength) the test sets.

let made = 0;
let fakeSnapshot = (): unknown => ({ n: ++made, clocks: null });
vi.mock('../../../services/console/console-snapshot.ts', async (original) => ({
  ...(await original<typeof import('../../../services/console/console-snapshot.ts')>()),
  consoleSnapshot: () => fakeSnapshot(),
}));
const { consoleRoutes } = await import('../../../services/console/console-routes.ts');

function stream(route: { handle: (c: never) => unknown }, stillAuthorized = () => true, identity = 'viewer') {
  const req = new EventEmitter();
  const res = {
    headers: {} as Record<string, string>,
    setHeader: (k: string, v: string) => {
      res.headers[k] = v;
    },
    writableLength: 0,
    destroyed: false,
    ended: false,
    writes: 0,
    chunks: [] as string[],
    writeHead: () => res,
    write: (chunk: string) => {
      res.writes++;
      res.chunks.push(chunk);
      return true;
    },
    end: () => {
      res.ended = true;
    },
    destroy: () => {
      res.destroyed = true;
    },
  };
  const principal = { identity, role: 'viewer' };
  route.handle({ req, res, query: new URLSearchParams(), principal, stillAuthorized } as never);
  return { res, close: () => req.emit('close') };
}

describe('console event stream (review3 A2)', () => {
  it('one snapshot per tick for all streams; a stream whose viewer does not read gets nothing more, and is closed when stuck', async () => {
    const routes = consoleRoutes({
      planner: () => ({}) as never,
      log: () => ({}) as never,
      pushIntervalMs: 40,
      stuckMs: 300,
      maxBufferedBytes: 1000,
    });
    const route = routes.find((r) => r.path === '/ui/api/events')!;
    const streams = Array.from({ length: 10 }, () => stream(route));
    made = 0;
    await new Promise((r) => setTimeout(r, 400));
    const ticks = made;
    // 10 streams, ~10 ticks: about one snapshot per tick (at most two), not ten
    expect(ticks).toBeGreaterThan(0);
    expect(ticks).toBeLessThanOrEqual(2 * Math.ceil(400 / 40) + 2);
    expect(streams.every((s) => s.res.writes > 3)).toBe(true);

    const stuck = streams[0]!.res;
    stuck.writableLength = 5000;
    const before = stuck.writes;
    await new Promise((r) => setTimeout(r, 150));
    expect(stuck.writes).toBe(before); // nothing more queued while the viewer has not read
    expect(stuck.destroyed).toBe(false);
    await until(() => stuck.destroyed);
    expect(stuck.writes).toBe(before);
    expect(streams[1]!.res.destroyed).toBe(false); // the others go on
    for (const s of streams) s.close();
  });
});

describe('console event stream: the rollout clocks', () => {
  it('a snapshot whose clocks alone moved is not pushed again; the one pushed carries them', async () => {
    let tick = 0;
    fakeSnapshot = () => ({ n: 1, clocks: { waveElapsedMs: ++tick, bakeElapsedMs: null } });
    try {
      const routes = consoleRoutes({ planner: () => ({}) as never, log: () => ({}) as never, pushIntervalMs: 20 });
      const s = stream(routes.find((r) => r.path === '/ui/api/events')!);
      await until(() => tick >= 10);
      const sent = s.res.chunks.filter((c) => c.startsWith('event: snapshot'));
      expect(sent).toHaveLength(1);
      expect(JSON.parse(sent[0]!.slice('event: snapshot\ndata: '.length))).toEqual({
        n: 1,
        clocks: { waveElapsedMs: 1, bakeElapsedMs: null },
      });
      s.close();
    } finally {
      fakeSnapshot = () => ({ n: ++made, clocks: null });
    }
  });
});

describe('console event stream (review3 A6)', () => {
  it('ends once its token is revoked (the token file reloaded without it); other streams go on', async () => {
    const routes = consoleRoutes({ planner: () => ({}) as never, log: () => ({}) as never, pushIntervalMs: 20 });
    const route = routes.find((r) => r.path === '/ui/api/events')!;
    let revoked = false;
    const alice = stream(route, () => !revoked);
    const bob = stream(route);
    await until(() => alice.res.writes > 1);
    revoked = true;
    await until(() => alice.res.ended);
    const writes = alice.res.writes;
    await new Promise((r) => setTimeout(r, 100));
    expect(alice.res.writes).toBe(writes); // nothing after the revocation
    expect(bob.res.ended).toBe(false);
    alice.close();
    bob.close();
  });
});

describe('console event streams are capped (per token identity and in all)', () => {
  it('the stream past a cap is refused with its reason; a closed, revoked or stuck stream frees its slot', async () => {
    const routes = consoleRoutes({
      planner: () => ({}) as never,
      log: () => ({}) as never,
      pushIntervalMs: 20,
      stuckMs: 60,
      maxBufferedBytes: 1000,
      streams: { perIdentity: 2, total: 3 },
    });
    const route = routes.find((r) => r.path === '/ui/api/events')!;
    let aliceRevoked = false;
    const alice = [stream(route, () => !aliceRevoked, 'alice'), stream(route, () => true, 'alice')];
    const refused = (who: string) => {
      try {
        stream(route, () => true, who);
      } catch (e) {
        return { code: (e as { code: number }).code, error: (e as Error).message };
      }
      return undefined;
    };
    expect(refused('alice')).toEqual({
      code: 429,
      error: 'alice already has 2 console event streams open (at most 2 per token identity); close one',
    });
    const bob = stream(route, () => true, 'bob');
    expect(refused('carol')).toEqual({
      code: 503,
      error: 'the planner already serves 3 console event streams (at most 3); try again later',
    });
    alice[1]!.close(); // the viewer left
    const carol = stream(route, () => true, 'carol');
    expect(refused('dave')?.code).toBe(503);
    aliceRevoked = true; // alice's first stream ends by itself at its next tick
    await until(() => alice[0]!.res.ended);
    const dave = stream(route, () => true, 'dave');
    dave.res.writableLength = 5000; // dave never reads: closed once stuck
    await until(() => dave.res.destroyed);
    const erin = stream(route, () => true, 'erin');
    expect(erin.res.ended || erin.res.destroyed).toBe(false);
    for (const s of [bob, carol, dave, erin, ...alice]) s.close();
  });
});

async function until(f: () => boolean): Promise<void> {
  const end = Date.now() + 5000;
  while (!f()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}
