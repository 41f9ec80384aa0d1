import { getEventListeners } from 'node:events';
import { expect, it } from 'vitest';
import { connectBusWaiting, sleepUnlessAborted } from '../../../libs/bus/index.ts';
import { freePort } from '../../support/nats-server.ts';

// probe21 P21-3: connectBusWaiting (planner, applier, credentials) and the applier's wait for the
// planner key slept between attempts with an abort listener that stayed when the timer fired: one
// more per attempt on the process's long-lived signal, and after 11 Node printed
// "MaxListenersExceededWarning: Possible EventTarget memory leak detected" (an applier started
// before the planner, or while NATS is down, printed it within ~45 s).

it('waiting for NATS through many attempts leaves at most one abort listener on the signal', async () => {
  const port = await freePort(); // nothing listens there: every attempt is refused at once
  const ac = new AbortController();
  let attempts = 0;
  let reached!: () => void;
  const thirty = new Promise<void>((r) => {
    reached = r;
  });
  let most = 0;
  const waiting = connectBusWaiting({
    servers: [`nats://127.0.0.1:${port}`],
    name: 'wait-listeners',
    maxBackoffMs: 1,
    signal: ac.signal,
    onWaiting: () => {
      most = Math.max(most, getEventListeners(ac.signal, 'abort').length);
      if (++attempts === 30) reached();
    },
  });
  await thirty;
  ac.abort();
  await expect(waiting).rejects.toThrow(/stopped while waiting for NATS/);
  expect(most).toBeLessThanOrEqual(1);
  expect(getEventListeners(ac.signal, 'abort')).toHaveLength(0);
});

it('sleepUnlessAborted: a wait that ran takes its listener with it; an abort cuts it short', async () => {
  const ac = new AbortController();
  for (let i = 0; i < 20; i++) expect(await sleepUnlessAborted(0, ac.signal)).toBe(true);
  expect(getEventListeners(ac.signal, 'abort')).toHaveLength(0);
  const cut = sleepUnlessAborted(60_000, ac.signal);
  ac.abort();
  expect(await cut).toBe(false);
  expect(await sleepUnlessAborted(60_000, ac.signal)).toBe(false); // already aborted: no wait
});
