import type { Server } from 'node:http';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { createHttpApi, PUBLISH_FAILING_NOT_READY_MS } from '../../../services/planner/http-api.ts';

let server: Server | undefined;
afterEach(() => new Promise<void>((r) => (server ? server.close(() => r()) : r())));

describe('/readyz and a bus that refuses versions (review4 G2)', () => {
  it('is 503 naming the publish failure once it has lasted the threshold, 200 before and after', async () => {
    let failingMs: number | undefined;
    const planner = {
      isSynced: true,
      sourceProblem: () => undefined,
      failure: (where: string) =>
        where === 'publish' && failingMs !== undefined ? 'publish: insufficient resources' : undefined,
      failingFor: (where: string) => (where === 'publish' ? failingMs : undefined),
    };
    server = createHttpApi({ planner: planner as never, registry: new Registry(), tokens: () => [] });
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/readyz`;
    const readyz = async () => {
      const res = await fetch(url);
      return { status: res.status, body: (await res.json()) as { ready: boolean; reason?: string } };
    };
    expect((await readyz()).status).toBe(200);
    failingMs = 2_000; // a retry or two (a NATS restart): no flap
    expect((await readyz()).status).toBe(200);
    failingMs = PUBLISH_FAILING_NOT_READY_MS;
    expect(await readyz()).toEqual({
      status: 503,
      body: { ready: false, reason: 'cannot publish versions: publish: insufficient resources' },
    });
    failingMs = undefined; // published again
    expect((await readyz()).status).toBe(200);
  });
});
