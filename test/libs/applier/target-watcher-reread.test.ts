// The re-read of the two target keys (at start, after each reconnect, periodically) asks for both at
// once: read one after the other, a re-read nothing answers lasted twice the read timeout (2 × 2 s
// in production) and the node waited that long on a notice lost while it was away.
import { connect, headers, type Msg, type NatsConnection } from '@nats-io/transport-node';
import { afterEach, describe, expect, it } from 'vitest';
import { TargetWatcher } from '../../../libs/applier/index.ts';
import { DEFAULT_TARGET_KEY, kvSubject, nodeTargetKey, TARGETS_STREAM } from '../../../libs/bus/index.ts';
import { startNatsServer, type NatsServerHandle } from '../../support/nats-server.ts';

let server: NatsServerHandle | undefined;
const conns: NatsConnection[] = [];
let watcher: TargetWatcher | undefined;
afterEach(async () => {
  await watcher?.stop();
  watcher = undefined;
  for (const c of conns.splice(0)) await c.close();
  await server?.stop();
  server = undefined;
});

const getSubject = (key: string) => `$JS.API.DIRECT.GET.${TARGETS_STREAM}.${kvSubject(key)}`;

describe('TargetWatcher re-read of the target keys', () => {
  it('has both keys in flight at once, and takes their answers in key order whatever order they come in', async () => {
    server = await startNatsServer();
    const [nc, observer] = [await connect({ servers: server.url }), await connect({ servers: server.url })];
    conns.push(nc, observer);
    // The server's side of the reads: who asked for what, held unanswered until the test answers.
    const held: Msg[] = [];
    observer.subscribe(`$JS.API.DIRECT.GET.${TARGETS_STREAM}.>`, { callback: (_e, m) => void held.push(m) });
    await observer.flush();
    const errors: string[] = [];
    watcher = await TargetWatcher.start({
      nc,
      node: 'n1',
      onChange: () => undefined,
      onError: (e) => errors.push(e),
      refreshMs: 0,
      timeoutMs: 60_000, // an unanswered read lasts a minute: read one after the other, the second waits it out
    });
    // before: only the node's own key was asked for (the default key's read waited for its answer)
    await expect.poll(() => held.length, { timeout: 10_000 }).toBe(2);
    expect(held.map((m) => m.subject).sort()).toEqual(
      [getSubject(DEFAULT_TARGET_KEY), getSubject(nodeTargetKey('n1'))].sort(),
    );

    // Answered in reverse order: the default key "not found", then the node's key an error. As read
    // one after the other, the node's key's result is taken first and the default key's last, so
    // the node waits for 'a target', and the error of the node's key is said.
    const own = held.find((m) => m.subject === getSubject(nodeTargetKey('n1')))!;
    const dflt = held.find((m) => m.subject === getSubject(DEFAULT_TARGET_KEY))!;
    dflt.respond(new Uint8Array(0), { headers: headers(404, 'Message Not Found') });
    await observer.flush();
    own.respond(new Uint8Array(0), { headers: headers(500, 'Broken') });
    await observer.flush();
    await expect
      .poll(() => errors, { timeout: 10_000 })
      .toEqual([`get ${nodeTargetKey('n1')}: ${kvSubject(nodeTargetKey('n1'))}: 500 Broken`]);
    expect(watcher.waitingFor()).toBe('a target (the planner has not published one yet)');
  });
});
