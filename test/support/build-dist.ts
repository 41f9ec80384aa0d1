import { execFileSync } from 'node:child_process';
import path from 'node:path';

/**
 * Vitest globalSetup: builds dist/ before any test runs when it is absent or older than a source
 * file (scripts/build.mjs --if-stale, ~0.3 s), so tests that spawn bin/switchboard run the
 * compiled code of the sources under test. Inside the VM the tree is read-only: scripts/test-vm.sh
 * builds on the host before booting, and this finds dist/ current.
 */
export default function buildDist(): void {
  const root = path.resolve(import.meta.dirname, '../..');
  execFileSync(process.execPath, [path.join(root, 'scripts/build.mjs'), '--if-stale'], {
    cwd: root,
    stdio: ['ignore', 'inherit', 'inherit'],
  });
}
