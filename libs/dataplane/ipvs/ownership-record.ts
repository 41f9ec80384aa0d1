import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { indented, listBytes } from './record-list-bytes.ts';

/**
 * What this applier created in one node/netns, so it never touches foreign objects: IPVS services
 * not listed here are someone else's, and so are addresses, sets and chains. Written (as a
 * superset) BEFORE each transaction and trimmed after it, so a crash mid-transaction can leave us
 * believing we own something absent (harmless) but never forgetting something we created.
 */
export interface OwnershipRecord {
  readonly version: 1;
  readonly virtualServers: readonly string[];
  readonly addresses: readonly string[];
  readonly ipsets: readonly string[];
  /** We created the dummy device (so cleanup may delete it). */
  readonly dummyDevice: boolean;
  /** table → our chain names. */
  readonly netfilterChains: Readonly<Record<string, readonly string[]>>;
  /** drainingKey → when draining started (ms since epoch). */
  readonly draining: Readonly<Record<string, number>>;
}

export const EMPTY_RECORD: OwnershipRecord = Object.freeze({
  version: 1,
  virtualServers: [],
  addresses: [],
  ipsets: [],
  dummyDevice: false,
  netfilterChains: {},
  draining: {},
});

export interface OwnershipStore {
  load(): Promise<OwnershipRecord>;
  save(record: OwnershipRecord): Promise<void>;
}

export class MemoryOwnershipStore implements OwnershipStore {
  constructor(public record: OwnershipRecord = EMPTY_RECORD) {}
  async load(): Promise<OwnershipRecord> {
    return this.record;
  }
  async save(record: OwnershipRecord): Promise<void> {
    this.record = record;
  }
}

/** A JSON file per node/netns under the state dir; replaced atomically (write + rename). */
export class FileOwnershipStore implements OwnershipStore {
  constructor(readonly path: string) {}

  async load(): Promise<OwnershipRecord> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return EMPTY_RECORD;
      throw e;
    }
    return parseRecord(text, this.path);
  }

  async save(record: OwnershipRecord): Promise<void> {
    await mkdir(dirname(this.path), { recursive: true });
    const tmp = `${this.path}.${process.pid}.tmp`;
    await writeFile(tmp, recordBytes(record));
    await rename(tmp, this.path);
  }
}

/**
 * The record as the file holds it, `JSON.stringify(record, null, 1)` and a newline, in UTF-8,
 * put together from each list's bytes as last made (record-list-bytes.ts: kept by the list, and
 * for a list edited from another, spliced from that one's): a drain that starts or ends saves the
 * record with only its draining map changed, and serialising and encoding every service and
 * address again for it was most of an endpoint removal at 10k services (~4 of ~5 ms on the host).
 */
export function recordBytes(record: OwnershipRecord): Buffer {
  const parts: Buffer[] = [];
  for (const [key, value] of Object.entries(record)) {
    parts.push(Buffer.from(`${parts.length === 0 ? '{\n' : ',\n'} ${JSON.stringify(key)}: `));
    parts.push(Array.isArray(value) ? listBytes(value) : Buffer.from(indented(value)));
  }
  parts.push(Buffer.from(parts.length === 0 ? '{}\n' : '\n}\n'));
  return Buffer.concat(parts);
}

/** Refuses a record it does not understand rather than guessing (a wrong guess could delete foreign objects). */
export function parseRecord(text: string, where: string): OwnershipRecord {
  const r = JSON.parse(text) as Partial<OwnershipRecord>;
  const strings = (v: unknown) => Array.isArray(v) && v.every((x) => typeof x === 'string');
  if (
    r.version !== 1 ||
    !strings(r.virtualServers) ||
    !strings(r.addresses) ||
    !strings(r.ipsets) ||
    typeof r.dummyDevice !== 'boolean' ||
    typeof r.netfilterChains !== 'object' ||
    typeof r.draining !== 'object'
  ) {
    throw new Error(`${where}: not a switchboard ownership record (version 1)`);
  }
  return r as OwnershipRecord;
}

/** Union of two records (the superset saved before a transaction runs). */
export function mergeRecords(a: OwnershipRecord, b: OwnershipRecord): OwnershipRecord {
  const u = (x: readonly string[], y: readonly string[]) => [...new Set([...x, ...y])].sort();
  const chains: Record<string, readonly string[]> = { ...a.netfilterChains };
  for (const [t, c] of Object.entries(b.netfilterChains)) chains[t] = u(chains[t] ?? [], c);
  return {
    version: 1,
    virtualServers: u(a.virtualServers, b.virtualServers),
    addresses: u(a.addresses, b.addresses),
    ipsets: u(a.ipsets, b.ipsets),
    dummyDevice: a.dummyDevice || b.dummyDevice,
    netfilterChains: chains,
    draining: { ...a.draining, ...b.draining },
  };
}
