import type { Endpoint, EndpointSliceObject } from '../model/index.ts';

/**
 * An EndpointSlice as ClusterState keeps it once its service's entry is built: its endpoints in
 * one flat array of four cells each, rather than three heap objects each (the endpoint, its
 * address list and that list's backing store, ~150 bytes). The entries built from the slices are
 * what the planner reads per event; the slices themselves are read again only to rebuild a
 * service one of them changed, and for checkpoints of the object state, so they are unpacked
 * then, on demand. At the scalability envelope (2.5 million endpoints) that is ~0.3 GB less heap
 * (docs/scale.md: 1.32 → 1.03 GB by its line) and 7.5 million fewer objects for V8 to mark.
 *
 * Unpacking gives back an equal object: the same fields in the same order (a checkpoint stores
 * `JSON.stringify` of it), the same values. Only a slice whose every endpoint has the shape the
 * reader makes (readEndpoint's fields in its order) is packed; any other one (an object of an old
 * checkpoint, or one a test wrote by hand, in another order) is kept as it came.
 *
 * Cells of endpoint i: [4i] its address, or its list when it has several; [4i+1] nodeName;
 * [4i+2] zone; [4i+3] its conditions as bits, or a Hinted when it has hints.
 */
export class PackedSlice {
  private constructor(
    /** The slice with no endpoints: its other fields, in their order, shared by every unpack. */
    readonly head: EndpointSliceObject,
    private readonly cells: readonly unknown[],
  ) {}

  /** The slice packed, or undefined when an endpoint is not of the reader's shape (kept as is). */
  static pack(slice: EndpointSliceObject): PackedSlice | undefined {
    const endpoints = slice.endpoints;
    const cells = new Array<unknown>(endpoints.length * 4);
    for (let i = 0; i < endpoints.length; i++) {
      const e = endpoints[i]!;
      if (!readersShape(e)) return undefined;
      const bits = (e.ready ? READY : 0) | (e.serving ? SERVING : 0) | (e.terminating ? TERMINATING : 0);
      cells[i * 4] = e.addresses.length === 1 ? e.addresses[0] : Object.freeze([...e.addresses]);
      cells[i * 4 + 1] = e.nodeName;
      cells[i * 4 + 2] = e.zone;
      cells[i * 4 + 3] =
        e.hintZones.length === 0 && e.hintNodes.length === 0
          ? bits
          : new Hinted(bits, Object.freeze([...e.hintZones]), Object.freeze([...e.hintNodes]));
    }
    return new PackedSlice({ ...slice, endpoints: NO_ENDPOINTS }, cells);
  }

  get endpointCount(): number {
    return this.cells.length / 4;
  }

  /** The slice as it was packed (a new object each time; its lists are shared and frozen). */
  unpack(): EndpointSliceObject {
    const cells = this.cells;
    const endpoints = new Array<Endpoint>(cells.length / 4);
    for (let i = 0; i < endpoints.length; i++) {
      const address = cells[i * 4] as string | readonly string[];
      const last = cells[i * 4 + 3] as number | Hinted;
      const bits = typeof last === 'number' ? last : last.bits;
      // readEndpoint's fields in readEndpoint's order
      endpoints[i] = {
        addresses: typeof address === 'string' ? [address] : address,
        ready: (bits & READY) !== 0,
        serving: (bits & SERVING) !== 0,
        terminating: (bits & TERMINATING) !== 0,
        nodeName: cells[i * 4 + 1] as string,
        zone: cells[i * 4 + 2] as string,
        hintZones: typeof last === 'number' ? NO_HINTS : last.hintZones,
        hintNodes: typeof last === 'number' ? NO_HINTS : last.hintNodes,
      };
    }
    return { ...this.head, endpoints };
  }
}

/** A slice as kept: packed once its service is built, as it came until then (or when it cannot be). */
export type KeptSlice = EndpointSliceObject | PackedSlice;

export const unpackSlice = (s: KeptSlice): EndpointSliceObject => (s instanceof PackedSlice ? s.unpack() : s);

/** The slice's fields other than its endpoints (no unpacking). */
export const sliceHead = (s: KeptSlice): EndpointSliceObject => (s instanceof PackedSlice ? s.head : s);

class Hinted {
  constructor(
    readonly bits: number,
    readonly hintZones: readonly string[],
    readonly hintNodes: readonly string[],
  ) {}
}

const READY = 1;
const SERVING = 2;
const TERMINATING = 4;
const NO_HINTS: readonly string[] = Object.freeze([]);
const NO_ENDPOINTS: readonly Endpoint[] = Object.freeze([]);

/** The fields readEndpoint (libs/model/kube-readers.ts) makes, in its order. */
const ENDPOINT_FIELDS = [
  'addresses',
  'ready',
  'serving',
  'terminating',
  'nodeName',
  'zone',
  'hintZones',
  'hintNodes',
] as const;

/**
 * Whether unpacking would give this endpoint back as it is: exactly readEndpoint's fields, in its
 * order, of its types. A for-in over a reader-made object walks V8's enum cache: no allocation.
 */
function readersShape(e: Endpoint): boolean {
  if (Object.getPrototypeOf(e) !== Object.prototype) return false;
  let n = 0;
  for (const k in e) if (k !== ENDPOINT_FIELDS[n++]) return false;
  return (
    n === ENDPOINT_FIELDS.length &&
    strings(e.addresses) &&
    e.addresses.length > 0 &&
    typeof e.ready === 'boolean' &&
    typeof e.serving === 'boolean' &&
    typeof e.terminating === 'boolean' &&
    typeof e.nodeName === 'string' &&
    typeof e.zone === 'string' &&
    strings(e.hintZones) &&
    strings(e.hintNodes)
  );
}

function strings(xs: unknown): boolean {
  if (!Array.isArray(xs)) return false;
  for (let i = 0; i < xs.length; i++) if (typeof xs[i] !== 'string') return false;
  return true;
}
