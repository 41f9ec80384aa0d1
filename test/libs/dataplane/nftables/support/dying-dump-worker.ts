// The real dump worker (nft-dump-worker.ts), made to die of an uncaught exception right after it
// hands its first chunk over: mid-read, its sockets open and dumps in flight. Started by
// test/netns/support/nft-dump-thread-scenarios.ts with startModuleWorker, as the runner starts
// the real one. (Here, beside the lib's tests: only those import its modules by path.)
import { parentPort } from 'node:worker_threads';

if (parentPort) {
  const post = parentPort.postMessage.bind(parentPort);
  parentPort.postMessage = (m: unknown) => {
    post(m);
    if (typeof m === 'object' && m !== null && 'payloads' in m)
      setImmediate(() => {
        throw new Error('worker died mid-read');
      });
  };
}
// after the patch: the worker posts through it
await import('../../../../../libs/dataplane/nftables/nft-dump-worker.ts');
