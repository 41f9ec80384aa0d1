import type { Server } from 'node:http';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { parseTokenFile, type TokenEntry } from '../../../services/planner/bearer-auth.ts';
import { createHttpApi } from '../../../services/planner/http-api.ts';

let server: Server | undefined;
afterEach(() => new Promise<void>((r) => (server ? server.close(() => r()) : r())));

describe('a long answer asks again whether its token is still good (review3 A6)', () => {
  it('stillAuthorized turns false once the token file no longer has the caller, and stays true for the others', async () => {
    let tokens: readonly TokenEntry[] = parseTokenFile('alice-token-000 alice\nolga-token-0000 olga operator\n', 't');
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let inside = 0;
    server = createHttpApi({
      planner: {} as never,
      registry: new Registry(),
      tokens: () => tokens,
      routes: [
        {
          method: 'GET',
          path: '/long',
          access: 'read',
          handle: async ({ stillAuthorized }) => {
            const before = stillAuthorized();
            inside++;
            await gate;
            return { before, after: stillAuthorized() };
          },
        },
      ],
    });
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/long`;
    const ask = (token: string) => fetch(url, { headers: { authorization: `Bearer ${token}` } }).then((r) => r.json());
    const alice = ask('alice-token-000');
    const olga = ask('olga-token-0000');
    await expect.poll(() => inside, { interval: 5 }).toBe(2); // both are inside the handler
    tokens = tokens.filter((t) => t.identity !== 'alice'); // the reloaded file
    release();
    expect(await alice).toEqual({ before: true, after: false });
    expect(await olga).toEqual({ before: true, after: true });
  });
});
