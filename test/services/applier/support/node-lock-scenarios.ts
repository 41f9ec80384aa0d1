// Runs inside a netns (TestNetns.run): an in-process nftables applier whose start fails after it
// took the node's lock (its --http port is taken) must hold nothing afterwards.
import { connect, createServer } from 'node:net';
import pino from 'pino';
import { startApplierService } from '../../../../services/applier/applier-service.ts';
import { NAMESPACE_CLAIM, nodeLockFile } from '../../../../services/applier/node-lock.ts';
import { claimAbstractName, tryProcessLock } from '../../../../libs/locks/index.ts';

export async function failedStartHoldsNothing(stateDir: string): Promise<{
  failure: string;
  freeAfterFailure: boolean;
  heldWhileRunning: string;
  claimedWhileRunning: string;
  freeAfterStop: boolean;
}> {
  const busy = createServer();
  const port = await new Promise<number>((resolve) =>
    busy.listen(0, '127.0.0.1', () => resolve((busy.address() as { port: number }).port)),
  );
  const base = {
    node: 'n1',
    nats: 'nats://127.0.0.1:1',
    mode: 'nftables' as const,
    stateDir,
    logger: pino({ level: 'silent' }),
    checkKubeProxyLeftovers: false,
  };
  const file = nodeLockFile(stateDir, 'n1');
  // the node's lock file, and the namespace's claim (node-lock.ts)
  const free = async () => {
    const a = tryProcessLock(file, 'the test');
    if ('lock' in a) a.lock.release();
    const c = await claimAbstractName(NAMESPACE_CLAIM, 'the test');
    if ('lock' in c) c.lock.release();
    return 'lock' in a && 'lock' in c;
  };
  const failure = await startApplierService({ ...base, http: `127.0.0.1:${port}` }).then(
    async (svc) => {
      await svc.stop();
      return 'started';
    },
    (e: Error) => e.message,
  );
  busy.close();
  const freeAfterFailure = await free();
  const svc = await startApplierService({ ...base, http: '127.0.0.1:0' });
  const held = tryProcessLock(file, 'the test');
  const heldWhileRunning = 'heldBy' in held ? held.heldBy : 'not held';
  if ('lock' in held) held.lock.release();
  const claim = await claimAbstractName(NAMESPACE_CLAIM, 'the test');
  const claimedWhileRunning = 'heldBy' in claim ? claim.heldBy : 'not held';
  if ('lock' in claim) claim.lock.release();
  await svc.stop();
  return { failure, freeAfterFailure, heldWhileRunning, claimedWhileRunning, freeAfterStop: await free() };
}

/** Whether something listens on 127.0.0.1:port. */
const listening = (port: number) =>
  new Promise<boolean>((resolve) => {
    const c = connect(port, '127.0.0.1');
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });

/**
 * A start that fails late (its health address refused, after its --http server listens) closes what
 * it opened and frees the lock: nothing listens on its port afterwards.
 */
export async function lateFailureClosesWhatItOpened(
  stateDir: string,
): Promise<{ failure: string; listeningAfter: boolean; lockFree: boolean }> {
  const probe = createServer();
  const port = await new Promise<number>((resolve) =>
    probe.listen(0, '127.0.0.1', () => resolve((probe.address() as { port: number }).port)),
  );
  await new Promise((r) => probe.close(r));
  const failure = await startApplierService({
    node: 'n2',
    nats: 'nats://127.0.0.1:1',
    mode: 'nftables',
    stateDir,
    logger: pino({ level: 'silent' }),
    checkKubeProxyLeftovers: false,
    http: `127.0.0.1:${port}`,
    healthzBindAddress: 'no address',
  }).then(
    async (svc) => {
      await svc.stop();
      return 'started';
    },
    (e: Error) => e.message,
  );
  const a = tryProcessLock(nodeLockFile(stateDir, 'n2'), 'the test');
  if ('lock' in a) a.lock.release();
  return { failure, listeningAfter: await listening(port), lockFree: 'lock' in a };
}
