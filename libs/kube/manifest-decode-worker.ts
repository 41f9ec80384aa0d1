// The thread ManifestDecoder (manifest-decoder.ts) runs: the pure parseManifestFile on each text it
// is sent, answered by id. Nothing else lives here, so what a file decodes to is the same whichever
// thread decodes it (`plan` decodes on its own thread with the same function).

import { parentPort } from 'node:worker_threads';
import { parseManifestFile } from './manifest-objects.ts';

parentPort?.on('message', (m: { id: number; text: string }) => {
  parentPort!.postMessage({ id: m.id, parse: parseManifestFile(m.text) });
});
