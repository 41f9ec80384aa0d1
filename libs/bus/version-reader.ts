import type { VersionArtifact } from '../model/index.ts';
import { decodeCheckpoint, decodeDelta } from './artifact-codec.ts';
import { checkpointSubject, deltaSubject, H, VERSIONS_STREAM } from './subjects.ts';

/** The slice of a NATS connection the reader calls (request/reply). */
export interface Requester {
  request(subject: string, payload?: Uint8Array, opts?: { timeout: number }): Promise<ReplyMsg>;
}

export interface ReplyMsg {
  readonly data: Uint8Array;
  readonly headers?: { get(k: string): string; readonly code: number; readonly description: string } | undefined;
}

export type Fetched<T> =
  | { readonly ok: true; readonly value: T; readonly bytes: number; readonly baseCheckpoint: number }
  /** `checkpointOnly`: the version exists but its content is only in its own checkpoint. */
  | { readonly ok: false; readonly missing: boolean; readonly error: string; readonly checkpointOnly?: { readonly hash: string } };

type Delta = VersionArtifact & { form: 'delta' };
type Checkpoint = VersionArtifact & { form: 'checkpoint' };

/**
 * Reads single artifacts from the versions stream with JetStream direct get by subject
 * ($JS.API.DIRECT.GET.<stream>.<subject>): no consumer state on the server, one request per
 * artifact, and a permission that names exactly the subjects a node may read.
 * Every reply is checked against what was asked for, so a misrouted, stale or corrupt reply is
 * reported as an error, never applied.
 */
export class VersionReader {
  private readonly stream: string;
  private readonly timeoutMs: number;

  constructor(private readonly nc: Requester, opts: { stream?: string; timeoutMs?: number } = {}) {
    this.stream = opts.stream ?? VERSIONS_STREAM;
    this.timeoutMs = opts.timeoutMs ?? 5000;
  }

  async delta(version: number): Promise<Fetched<Delta>> {
    const r = await this.getLast(deltaSubject(version), version);
    if (!r.ok) return r;
    if (r.header(H.checkpointOnly) === '1') {
      return { ok: false, missing: true, error: `delta ${version} is published as a checkpoint only`, checkpointOnly: { hash: r.header(H.hash) } };
    }
    const d = decodeDelta(r.data);
    if (!d.ok) return { ok: false, missing: false, error: `delta ${version}: ${d.error}` };
    if (d.value.version !== version) return { ok: false, missing: false, error: `delta ${version}: payload says version ${d.value.version}` };
    const base = Number(r.header(H.checkpoint));
    return { ok: true, value: d.value, bytes: r.data.length, baseCheckpoint: Number.isSafeInteger(base) && base >= 0 ? base : 0 };
  }

  async checkpoint(version: number): Promise<Fetched<Checkpoint>> {
    const first = await this.getLast(checkpointSubject(version, 0), version);
    if (!first.ok) return first;
    const n = Number(first.header(H.chunks));
    if (!Number.isSafeInteger(n) || n < 1 || n > 100_000) return { ok: false, missing: false, error: `checkpoint ${version}: bad chunk count` };
    const chunks = [first.data];
    for (let i = 1; i < n; i++) {
      const c = await this.getLast(checkpointSubject(version, i), version);
      if (!c.ok) return { ok: false, missing: c.missing, error: `checkpoint ${version} chunk ${i}: ${c.error}` };
      chunks.push(c.data);
    }
    const d = decodeCheckpoint(chunks);
    if (!d.ok) return { ok: false, missing: false, error: `checkpoint ${version}: ${d.error}` };
    if (d.value.version !== version) return { ok: false, missing: false, error: `checkpoint ${version}: payload says version ${d.value.version}` };
    return { ok: true, value: d.value, bytes: chunks.reduce((s, c) => s + c.length, 0), baseCheckpoint: version };
  }

  private async getLast(subject: string, version: number): Promise<
    { ok: true; data: Uint8Array; header: (k: string) => string } | { ok: false; missing: boolean; error: string }
  > {
    let m: ReplyMsg;
    try {
      m = await this.nc.request(`$JS.API.DIRECT.GET.${this.stream}.${subject}`, new Uint8Array(0), { timeout: this.timeoutMs });
    } catch (e) {
      return { ok: false, missing: false, error: `${subject}: ${(e as Error).message}` };
    }
    const h = m.headers;
    if (!h) return { ok: false, missing: false, error: `${subject}: reply without headers` };
    if (h.code === 404) return { ok: false, missing: true, error: `${subject}: not found` };
    if (h.code !== 0 && h.code !== 200) return { ok: false, missing: false, error: `${subject}: ${h.code} ${h.description}` };
    if (h.get('Nats-Subject') !== subject || h.get(H.version) !== String(version)) {
      return { ok: false, missing: false, error: `${subject}: reply is for ${h.get('Nats-Subject')} version ${h.get(H.version)}` };
    }
    return { ok: true, data: m.data, header: (k) => h.get(k) };
  }
}
