// Per-file state of a watched manifests directory, and the rule for when a file's content counts.
//
// Writers replace files in several ways: atomic saves (temp file + rename: editors, `sed -i`, GitOps
// syncers), in place (truncate, then write), vim-style (rename the old file away, write a new one).
// A scan can land in the middle of any of them and see a file half-written, empty or missing. So a
// change counts only once it has SETTLED: the content read is the content the file has had, unchanged,
// for `settleMs` (its mtime is that old, or two reads that far apart agree), and the file's stat did
// not move while it was read. Until then the file keeps contributing what it held before.
// An emptied file that used to define objects waits longer (`emptyFileGraceMs`): a slow writer that
// truncated and has not written yet must not withdraw those objects. A vanished file counts as gone
// once it has been missing for `settleMs`. A file refused as a whole (too large, not YAML, a hostile
// document) keeps its last good objects and is reported.
// Unchanged files (same stat signature) are not re-read, so a periodic rescan costs one stat per file.
// Racy reads (git's term): content read within `settleMs` of its mtime is read again later, because
// a second write in the same timestamp tick with the same size would leave the signature unchanged.
// Settled content is decoded by a ManifestDecoder (off the event loop, cached by content hash), and
// the file's state changes only once its decode is back.

import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Rejection } from '../model/index.ts';
import type { ManifestDecoder } from './manifest-decoder.ts';
import { sizeRefusal, type ManifestFileItems } from './manifest-objects.ts';

export interface ManifestFileTrackerOptions {
  readonly dir: string;
  readonly settleMs: number;
  readonly emptyFileGraceMs: number;
  readonly maxBytes: number;
  readonly decoder: ManifestDecoder;
  /** Aborts a refresh waiting for a decode (the source stops; the decode itself finishes and is cached). */
  readonly signal?: AbortSignal;
  readonly now?: () => number;
}

interface TrackedFile {
  /** Stat signature of the content last read ('' before this process read it). */
  sig: string;
  /** SHA-256 of the content last read. */
  hash: string;
  /** The file's objects as last accepted (kept while it is refused, in flux, or briefly missing). */
  items: readonly unknown[] | undefined;
  /** Why the file's current content is refused. */
  problem: string | undefined;
  /** Documents of the accepted content refused alone (the file's other documents are used). */
  docProblems: readonly { readonly document: number; readonly reason: string }[];
  /** Read too soon after its mtime: read again even if the signature is unchanged. */
  racy: boolean;
  /** Seen on disk by this process (files known only from the log are dropped at once when missing). */
  seen: boolean;
  /** A changed content waiting to settle. */
  pending: { sig: string; hash: string; since: number } | undefined;
  missingSince: number | undefined;
}

interface StatSig {
  readonly sig: string;
  readonly size: number;
  readonly mtimeMs: number;
}

async function statSig(path: string): Promise<StatSig | undefined> {
  try {
    const st = await stat(path, { bigint: true });
    return {
      sig: `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`,
      size: Number(st.size),
      mtimeMs: Number(st.mtimeNs / 1_000_000n),
    };
  } catch {
    return undefined;
  }
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

export class ManifestFileTracker {
  private readonly files = new Map<string, TrackedFile>();
  private readonly now: () => number;

  constructor(private readonly options: ManifestFileTrackerOptions) {
    this.now = options.now ?? Date.now;
  }

  /** Starts `file` from what the log says it defined (so a restart diffs against it). */
  seed(file: string, items: readonly unknown[]): void {
    this.files.set(file, {
      sig: '',
      hash: '',
      items,
      problem: undefined,
      docProblems: [],
      racy: false,
      seen: false,
      pending: undefined,
      missingSince: undefined,
    });
  }

  /** Files whose settled content is being decoded right now. */
  decoding = 0;

  /** Files whose latest change has not settled yet. */
  get unsettled(): number {
    let n = 0;
    for (const f of this.files.values()) if (f.pending || f.missingSince !== undefined) n += 1;
    return n;
  }

  /**
   * Brings every file up to date with the disk, given the manifest files present now (relative).
   * Returns in how many ms a file that has not settled should be looked at again, if any.
   */
  async refresh(present: readonly string[]): Promise<number | undefined> {
    let recheck: number | undefined;
    const sooner = (ms: number | undefined) => {
      if (ms !== undefined) recheck = Math.max(1, Math.min(recheck ?? Infinity, ms));
    };
    const here = new Set(present);
    for (const file of present) sooner(await this.check(file));
    for (const file of [...this.files.keys()]) if (!here.has(file)) sooner(this.missing(file));
    this.options.decoder.retain(this.options.dir, new Set(present.map((file) => join(this.options.dir, file))));
    return recheck;
  }

  /** What each file contributes now, in path order. */
  contributions(): ManifestFileItems[] {
    return [...this.files.entries()]
      .filter(([, f]) => f.items !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([file, f]) => ({ file, items: f.items! }));
  }

  /** Files refused as a whole right now, and documents refused alone in the files that are used. */
  problems(): Rejection[] {
    return [...this.files.entries()].flatMap(([file, f]): Rejection[] =>
      f.problem !== undefined
        ? [
            {
              ref: 'file',
              source: file,
              reason: `${f.problem}; ${f.items?.length ? 'keeping its previous objects' : 'none of its objects are used'}`,
            },
          ]
        : f.docProblems.map((d) => ({ ref: `document ${d.document}`, source: file, reason: d.reason })),
    );
  }

  private missing(file: string): number | undefined {
    const f = this.files.get(file)!;
    if (!f.seen) {
      this.files.delete(file); // known only from the log: it was removed while we were not looking
      return undefined;
    }
    const now = this.now();
    f.missingSince ??= now;
    const gone = now - f.missingSince;
    if (gone >= this.options.settleMs) {
      this.files.delete(file);
      return undefined;
    }
    return this.options.settleMs - gone; // maybe a rename-away save: look again before deleting
  }

  private async check(file: string): Promise<number | undefined> {
    const { settleMs, maxBytes } = this.options;
    const path = join(this.options.dir, file);
    const before = await statSig(path);
    if (!before) return this.files.has(file) ? this.missing(file) : undefined;
    let f = this.files.get(file);
    if (!f) {
      f = {
        sig: '',
        hash: '',
        items: undefined,
        problem: undefined,
        docProblems: [],
        racy: false,
        seen: true,
        pending: undefined,
        missingSince: undefined,
      };
      this.files.set(file, f);
    }
    f.seen = true;
    f.missingSince = undefined;
    if (f.sig === before.sig && !f.racy && !f.pending) return undefined;
    if (before.size > maxBytes) return this.refuseWhole(f, before.sig, sizeRefusal(before.size, maxBytes));
    const readAt = this.now();
    const bytes = await readFile(path).catch(() => undefined);
    const after = await statSig(path);
    if (bytes === undefined || after?.sig !== before.sig) {
      f.pending = undefined; // it moved while we read it: being written right now
      return settleMs;
    }
    if (bytes.length > maxBytes) return this.refuseWhole(f, before.sig, sizeRefusal(bytes.length, maxBytes));
    const hash = sha256(bytes);
    const age = readAt - before.mtimeMs;
    if (hash === f.hash) {
      // Same content as accepted (touched, or rewritten identically): nothing to settle.
      f.sig = before.sig;
      f.pending = undefined;
      f.racy = age < settleMs;
      return f.racy ? settleMs - age : undefined;
    }
    const text = bytes.toString('utf8');
    const emptied = text.trim() === '' && (f.items?.length ?? 0) > 0;
    const needMs = emptied ? this.options.emptyFileGraceMs : settleMs;
    const samePending = f.pending !== undefined && f.pending.hash === hash && f.pending.sig === before.sig;
    const stableFor = samePending ? readAt - f.pending!.since : 0;
    if (age < needMs && stableFor < needMs) {
      if (!samePending) f.pending = { sig: before.sig, hash, since: readAt };
      return needMs - Math.max(age, stableFor, 0);
    }
    this.decoding += 1;
    const parsed = await untilAborted(this.options.decoder.decode(path, hash, text), this.options.signal).finally(
      () => (this.decoding -= 1),
    );
    f.sig = before.sig;
    f.hash = hash;
    f.pending = undefined;
    f.racy = age < settleMs;
    if (parsed.ok) {
      // A document that no longer decodes is most often an object edited in place (a typo): keep
      // what the file defined before and its decoded documents no longer name, rather than delete
      // it from every node (as kubectl apply leaves the live object when one document fails).
      const named = parsed.rejected.length > 0 && f.items?.length ? new Set(parsed.items.map(objectKey)) : undefined;
      f.items = named ? [...parsed.items, ...f.items!.filter((i) => !named.has(objectKey(i)))] : parsed.items;
      f.problem = undefined;
      f.docProblems = parsed.rejected;
    } else {
      f.problem = parsed.reason;
    }
    return f.racy ? settleMs : undefined;
  }

  private refuseWhole(f: TrackedFile, sig: string, problem: string): undefined {
    f.sig = sig;
    f.hash = '';
    f.pending = undefined;
    f.racy = false;
    f.problem = problem;
    return undefined;
  }
}

/** Kind, namespace and name of a raw manifest item ('' parts when absent: such items never match a decoded one by chance). */
function objectKey(item: unknown): string {
  const o = (item ?? {}) as { kind?: unknown; metadata?: { namespace?: unknown; name?: unknown } };
  return JSON.stringify([o.kind ?? '', o.metadata?.namespace ?? '', o.metadata?.name ?? '']);
}

/** `p`, or a rejection once `signal` aborts (p still runs to its end). */
function untilAborted<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return p;
  return new Promise<T>((resolve, reject) => {
    const abort = () => reject(signal.reason);
    if (signal.aborted) return abort();
    signal.addEventListener('abort', abort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', abort));
  });
}
