export { ClusterInformer } from './cluster-informer.ts';
export type { ClusterInformerHealth, ClusterInformerOptions } from './cluster-informer.ts';
export { KindInformer, identityOf } from './kind-informer.ts';
export type { KindInformerHealth, KindInformerOptions } from './kind-informer.ts';
export type { KubeEvent, KubeEventSink, KubeEventType, RawKubeObject } from './kube-event.ts';
export { objectKey } from './kube-event.ts';
export { KUBE_KINDS, KUBE_KIND_INFO, isKubeKind } from './kube-kind.ts';
export type { KubeKind, KubeKindInfo } from './kube-kind.ts';
export type { ResumeStore } from './resume-store.ts';
export { MemoryResumeStore } from './resume-store.ts';
export { Backoff, retryDelayMs } from './backoff.ts';
export type { BackoffOptions } from './backoff.ts';
export { systemClock } from './clock.ts';
export type { Clock } from './clock.ts';
export { KubeApiError, isExpired } from './kube-api-error.ts';
export { kubeHttpFromConfig } from './kube-http.ts';
export type { KubeHttp, KubeRequest } from './kube-http.ts';
export { loadKubeConfig } from './kube-config.ts';
export type { LoadKubeConfigOptions } from './kube-config.ts';
export { relistDiff } from './relist-diff.ts';
export type { RelistChange } from './relist-diff.ts';
export { ManifestsSource, MANIFEST_FILE_ANNOTATION } from './manifests-source.ts';
export type { ManifestsSourceHealth, ManifestsSourceOptions } from './manifests-source.ts';
export { INLINE_MAX_BYTES, ManifestDecoder } from './manifest-decoder.ts';
export type { ManifestDecoderOptions } from './manifest-decoder.ts';
export { isManifestFileName, walkManifestDir } from './manifest-files.ts';
export type { ManifestTree } from './manifest-files.ts';
export {
  collectManifestObjects,
  DEFAULT_MAX_MANIFEST_BYTES,
  manifestKey,
  parseManifestFile,
} from './manifest-objects.ts';
export type { ManifestFileItems, ManifestFileParse, ManifestObject } from './manifest-objects.ts';
export { readManifestDir } from './read-manifest-dir.ts';
export type { ReadManifestDirOptions } from './read-manifest-dir.ts';
export { NO_KNOWN_OBJECTS } from './known-objects.ts';
export type { KnownObjects } from './known-objects.ts';
export { CLUSTER_IDENTITY_PATH, describeCluster, readClusterIdentity } from './cluster-identity.ts';
export type { ClusterIdentity, ReadClusterIdentityOptions } from './cluster-identity.ts';
export { ListPrefetch } from './list-prefetch.ts';
export type { ListPrefetchOptions } from './list-prefetch.ts';
