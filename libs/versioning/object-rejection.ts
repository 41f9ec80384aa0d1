import type { KubeKind, WatchEvent } from '../model/index.ts';
import { watchEventChange, type ObjectChange } from '../planner/index.ts';

/** A logged object the planner refused (malformed); its previous good state stays published. */
export interface ObjectRejection {
  readonly kind: KubeKind;
  readonly namespace: string;
  readonly name: string;
  readonly reason: string;
  readonly seq: number;
}

/** The planner's fold of one logged event: libs/planner's shared rule, with the planner's wording. */
export function eventChange(e: Pick<WatchEvent, 'kind' | 'type' | 'namespace' | 'name' | 'object'>): { change: ObjectChange } | { reason: string } {
  const o = watchEventChange(e);
  return 'change' in o ? { change: o.change } : { reason: o.rejected };
}

export const rejectionKey = (r: Pick<ObjectRejection, 'kind' | 'namespace' | 'name'>): string => `${r.kind}/${r.namespace}/${r.name}`;
