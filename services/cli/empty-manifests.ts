import { UsageError } from './cli-errors.ts';

/**
 * A manifests directory that yields no Service. For `apply --once` that programs the host with
 * nothing: every service it proxies removed, and the run reported a success with zero counts. A
 * wrong path, a volume not mounted yet, or a directory whose every object was rejected all look
 * exactly like that, so apply refuses it (exit 2, before the kernel is touched) unless told with
 * `--allow-empty`; `switchboard cleanup` is the command that removes everything on purpose.
 * `plan` only reads, so it says so on stderr and prints the (empty) plan.
 */
export function emptyManifestsSentence(manifests: string, services: number, rejected: number): string | undefined {
  if (services > 0) return undefined;
  return `no Service in ${manifests}${rejected > 0 ? ` (${rejected} rejected)` : ''}`;
}

export function refuseEmptyApply(manifests: string, services: number, rejected: number, allowEmpty: boolean): void {
  const empty = emptyManifestsSentence(manifests, services, rejected);
  if (empty === undefined || allowEmpty) return;
  throw new UsageError(
    `${empty}: applying it would remove every service this host proxies; pass --allow-empty to mean that (switchboard cleanup removes everything Switchboard programmed)`,
  );
}
