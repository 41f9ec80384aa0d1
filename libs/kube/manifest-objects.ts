// What a manifests directory defines: the parse of one file (hostile bytes refused alone) and the
// one rule that turns files into objects (identity, duplicates). `plan`, `apply --once` and the
// planner's manifests source all go through these functions, so they resolve a directory alike.

import { readKubeObject, splitManifestText, type Rejection } from '../model/index.ts';
import type { RawKubeObject } from './kube-event.ts';
import { isKubeKind, KUBE_KIND_INFO, type KubeKind } from './kube-kind.ts';

/** Default for --max-manifest-bytes: larger files are refused unread (YAML parsing is memory-hungry). */
export const DEFAULT_MAX_MANIFEST_BYTES = 8 * 1024 * 1024;

/**
 * The objects of one file and its documents refused alone (index and why), or why the file as a
 * whole is refused.
 */
export type ManifestFileParse =
  | {
      readonly ok: true;
      readonly items: readonly unknown[];
      readonly rejected: readonly { readonly document: number; readonly reason: string }[];
    }
  | { readonly ok: false; readonly reason: string };

/**
 * Parses one file's text. A file is the unit of editing, so a file with any document that is not
 * YAML (most often a file caught half-written) is refused as a whole, as is a file none of whose
 * documents decodes (an alias bomb): the caller decides what that file then contributes (nothing
 * for `plan`, its last good objects for the planner). A document that is YAML but cannot be
 * decoded while others can (an alias to another document's anchor: anchors do not cross
 * documents) is refused alone and the file's other documents are used, as kubectl would.
 * Never throws.
 */
export function parseManifestFile(text: string): ManifestFileParse {
  try {
    const { items, yamlErrors, decodeErrors, decoded } = splitManifestText(text);
    if (yamlErrors.length > 0) {
      const e = yamlErrors[0]!;
      return { ok: false, reason: `YAML error in document ${e.document}: ${e.message}` };
    }
    if (decodeErrors.length > 0 && decoded === 0)
      return { ok: false, reason: `cannot decode: ${decodeErrors[0]!.message}` };
    return {
      ok: true,
      items,
      rejected: decodeErrors.map((e) => ({ document: e.document, reason: `cannot decode: ${e.message}` })),
    };
  } catch (e) {
    return { ok: false, reason: `cannot decode: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}` };
  }
}

export function sizeRefusal(bytes: number, maxBytes: number): string {
  return `file is ${bytes} bytes, over the limit of ${maxBytes} bytes (--max-manifest-bytes)`;
}

/** One object a manifests directory defines, raw as written, with the file that defines it. */
export interface ManifestObject {
  readonly kind: KubeKind;
  /** kind/namespace/name, the namespace defaulted like the API server does ("default"; "" for Nodes). */
  readonly key: string;
  readonly file: string;
  readonly object: RawKubeObject;
}

export function manifestKey(kind: KubeKind, object: Pick<RawKubeObject, 'metadata'>): string {
  const ns = KUBE_KIND_INFO[kind].namespaced ? object.metadata.namespace || 'default' : '';
  return `${kind}/${ns}/${object.metadata.name}`;
}

function identify(raw: unknown): KubeKind | undefined {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return undefined;
  const o = raw as { kind?: unknown; metadata?: { name?: unknown; namespace?: unknown } };
  if (!isKubeKind(o.kind) || typeof o.metadata !== 'object' || o.metadata === null) return undefined;
  if (typeof o.metadata.name !== 'string' || o.metadata.name === '') return undefined;
  if (o.metadata.namespace !== undefined && typeof o.metadata.namespace !== 'string') return undefined;
  return o.kind;
}

const describeKey = (key: string) => {
  const [kind, ns, name] = key.split('/');
  return ns ? `${kind} ${ns}/${name}` : `${kind} ${name}`;
};

export interface ManifestFileItems {
  readonly file: string;
  readonly items: readonly unknown[];
}

/**
 * The objects that files in sorted path order define. Objects that cannot be named (no known kind,
 * no name) are rejected. When two documents define the same object, the first one (in path order,
 * then document order) is used and the other is rejected naming both files. An object that can be
 * named but is otherwise invalid is kept here: the caller validates it (the planner rejects it
 * alone and keeps its last good state, as it does for watch events).
 */
export function collectManifestObjects(files: readonly ManifestFileItems[]): {
  objects: Map<string, ManifestObject>;
  rejected: Rejection[];
} {
  const objects = new Map<string, ManifestObject>();
  const rejected: Rejection[] = [];
  for (const { file, items } of files) {
    for (const raw of items) {
      const kind = identify(raw);
      if (!kind) {
        const r = readKubeObject(raw, file);
        rejected.push(r.ok ? { ref: 'object', source: file, reason: 'cannot be identified' } : r.rejection);
        continue;
      }
      const object = raw as RawKubeObject;
      const key = manifestKey(kind, object);
      const first = objects.get(key);
      if (first) {
        rejected.push({
          ref: describeKey(key),
          source: file,
          reason:
            first.file === file
              ? 'duplicate: defined earlier in the same file, whose first definition is used'
              : `duplicate: also defined in ${first.file}, which is used`,
        });
        continue;
      }
      objects.set(key, { kind, key, file, object });
    }
  }
  return { objects, rejected };
}
