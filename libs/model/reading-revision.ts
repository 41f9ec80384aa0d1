/**
 * The reading revision: which rules turn logged watch events into cluster data (the readers in
 * kube-readers.ts and the service entry builder in libs/planner). The log promises that any
 * version replays bit for bit, so a rule that changes what an old event means never replaces the
 * old rule: it becomes a new revision, each version records the revision it was made under
 * (versions.reading_revision, as each checkpoint does), and replay reads with that version's
 * revision. Rows written before revisions existed carry none and are revision 1. A planner always
 * reads new events with the latest revision; its first version after an upgrade says so in its
 * reason (libs/versioning/data-axis.ts). docs/versioning.md, "Reading revisions".
 */
export type ReadingRevision = 1 | 2 | 3 | 4;

export const LATEST_READING_REVISION: ReadingRevision = 4;

/** What each revision changed, for the reason of the first version made under it. */
export const READING_REVISION_CHANGES: Readonly<Record<ReadingRevision, string>> = {
  1: 'the first rules',
  2:
    'kube-proxy parity (probe6 P9-P11): an endpoint without conditions.serving is serving; an EndpointSlice ' +
    'port without a name or a number is skipped instead of refusing the slice; of the same ip:port in two ' +
    'slices a non-terminating copy wins',
  3:
    'API server validation (probe10 H5): a Service whose spec.externalIPs or LoadBalancer ingress IP is ' +
    'unspecified, loopback, link-local, multicast or broadcast is rejected; so is one with two spec.ports of ' +
    'the same port (or nodePort) and protocol (probe10 H6)',
  4: 'API server validation (probe10 H9): an EndpointSlice with more than 1000 endpoints is rejected',
};

/** The revision a stored row records: NULL (rows older than revisions) is revision 1. */
export function readingRevisionOf(stored: number | null | undefined, what: string): ReadingRevision {
  if (stored === null || stored === undefined) return 1;
  if (stored === 1 || stored === 2 || stored === 3 || stored === 4) return stored;
  throw new Error(
    `${what} was read with reading revision ${stored}, newer than this release's ${LATEST_READING_REVISION}: replay it with the release that wrote it or a newer one`,
  );
}

/** Who reads what, as of `revision` (the readers' and the entry builder's branches, named). */
export const readsServingNilAsTrue = (revision: ReadingRevision): boolean => revision >= 2;
export const skipsEndpointPortsWithoutNameOrNumber = (revision: ReadingRevision): boolean => revision >= 2;
export const prefersNonTerminatingDuplicate = (revision: ReadingRevision): boolean => revision >= 2;
export const refusesSpecialServiceIps = (revision: ReadingRevision): boolean => revision >= 3;
export const refusesDuplicateServicePorts = (revision: ReadingRevision): boolean => revision >= 3;
export const refusesOversizedEndpointSlices = (revision: ReadingRevision): boolean => revision >= 4;
