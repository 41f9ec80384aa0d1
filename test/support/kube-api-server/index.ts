export { KubeApiServer } from './kube-api-server.ts';
export type {
  FailNextOptions,
  KubeApiServerOptions,
  ObjectRef,
  RequestLogEntry,
  RequestVerb,
} from './kube-api-server.ts';
export type { KubeObject } from './object-store.ts';
export { RESOURCES, RESOURCE_KINDS } from './resource-kinds.ts';
export type { ResourceKind } from './resource-kinds.ts';
export { parseLabelSelector, matchesLabels } from './label-selector.ts';
