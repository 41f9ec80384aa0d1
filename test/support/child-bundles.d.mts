// Types of child-bundles.mjs (a plain node script: scripts/test-vm.sh runs it before tsx is needed).
export const CHILD_ENTRIES: string[];
export function buildChildBundles(outDir: string, entries?: string[]): Promise<void>;
