import { HEADLESS_LABEL, SERVICE_PROXY_NAME_LABEL, type KubeObject } from '../model/index.ts';

/*
 * How a release before the kube-proxy parity readings of 2026-12-02 read the log (probe15 U4).
 *
 * Four readings were added without a reading revision (revisions came later, 93030c9), because a
 * log the planner projects (K3, 4466256) holds none of the fields they read: an ingress's `ipMode`
 * (P4, 7eaad5c), the `service-proxy-name`/`headless` labels (P14, e56b46c), an endpoint's
 * `hints.forNodes` (P5, 6bf90a6), a Node's `spec.taints` and `metadata.deletionTimestamp`
 * (f78c342). A release before K3 logged whole objects, which hold them: its versions, read with
 * today's revision-1 rules, rebuild to other hashes, so the new planner refused to start ("rebuilt
 * content of version N has hash …, the log recorded …"), `replay` said `match: false` and
 * `db verify` called a sound log broken. Releases between those readings and revisions wrote
 * revision-1 rows that were read with them, so revision 1 cannot simply drop them: a revision-1
 * version is replayed as now, and only when that misses its recorded hash, again with the fields
 * hidden (the recorded hash decides which reading made it).
 */

/** A logged object as a release before the parity readings saw it: the fields they read removed. */
export function rawBeforeParity(kind: string, object: unknown): unknown {
  if (typeof object !== 'object' || object === null || Array.isArray(object)) return object;
  const o = { ...(object as Record<string, unknown>) };
  if (isRecord(o.metadata)) {
    const meta = { ...o.metadata };
    if (kind === 'Node') delete meta.deletionTimestamp;
    if (isRecord(meta.labels)) meta.labels = withoutOwnerLabels(meta.labels);
    o.metadata = meta;
  }
  if (kind === 'Node' && isRecord(o.spec)) {
    const spec = { ...o.spec };
    delete spec.taints;
    o.spec = spec;
  }
  if (kind === 'Service' && isRecord(o.status) && isRecord(o.status.loadBalancer)) {
    const lb = o.status.loadBalancer;
    if (Array.isArray(lb.ingress))
      o.status = {
        ...o.status,
        loadBalancer: {
          ...lb,
          ingress: lb.ingress.map((g: unknown) => {
            if (!isRecord(g)) return g;
            const { ipMode: _, ...rest } = g;
            return rest;
          }),
        },
      };
  }
  if (kind === 'EndpointSlice' && Array.isArray(o.endpoints))
    o.endpoints = o.endpoints.map((e: unknown) => {
      if (!isRecord(e) || !isRecord(e.hints)) return e;
      const { forNodes: _, ...hints } = e.hints;
      return { ...e, hints };
    });
  return o;
}

/** A checkpoint's object (read by such a release) with the labels it did not act on removed. */
export function objectBeforeParity(o: KubeObject): KubeObject {
  if (o.kind === 'Node') return o.beingRemoved === '' ? o : { ...o, beingRemoved: '' };
  const labels = withoutOwnerLabels(o.meta.labels);
  const cut = o.kind === 'EndpointSlice' && o.endpoints.some((e) => e.hintNodes.length > 0);
  if (labels === o.meta.labels && !cut) return o;
  const meta = { ...o.meta, labels: labels as typeof o.meta.labels };
  if (o.kind === 'EndpointSlice')
    return { ...o, meta, endpoints: o.endpoints.map((e) => (e.hintNodes.length > 0 ? { ...e, hintNodes: [] } : e)) };
  return { ...o, meta };
}

function withoutOwnerLabels<T extends Record<string, unknown>>(labels: T): T {
  if (!Object.hasOwn(labels, SERVICE_PROXY_NAME_LABEL) && !Object.hasOwn(labels, HEADLESS_LABEL)) return labels;
  const copy: Record<string, unknown> = { ...labels };
  delete copy[SERVICE_PROXY_NAME_LABEL];
  delete copy[HEADLESS_LABEL];
  return copy as T;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
