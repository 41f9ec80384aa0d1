import { z } from 'zod';
import {
  MAX_UNKNOWN_FIELD_PATH,
  MAX_UNKNOWN_FIELD_PATHS,
  NodeFactsSchema,
  ServiceEntrySchema,
  type UnknownTargetFields,
} from './wire-schemas.ts';

/**
 * The keys of a version's entries that this release does not know (probe15 U7). An applier keeps
 * entries whole and renders the fields it reads, so one of an older release under a newer planner
 * applies and ACKs a target whose new fields it ignores (a Node's `beingRemoved`, an endpoint's
 * `hintNodes`); refusing them would NACK every version of every planner upgrade, so it notes them
 * instead, and says them in its log, heartbeat and /healthz.
 *
 * What is known is read from the entry schemas (wire-schemas.ts: ServiceEntrySchema,
 * NodeFactsSchema, kept key for key equal to the entry types by the compiler), never a list kept
 * here: a field added to the schema is known from then on. Only known keys are descended into;
 * an unknown key is one path whatever its value holds.
 *
 * Bounded, whatever a target holds: at most MAX_UNKNOWN_FIELD_PATHS distinct paths are named (each
 * key cut to a printable name), the unknown keys at other paths are only counted.
 */
export class UnknownFieldsNote {
  private readonly named: string[] = [];
  private otherKeys = 0;
  /** Every unknown key seen, named or not (tells a caller whether a move found any). */
  private seen = 0;

  constructor(private readonly shapes: ContentShapes = RELEASE_SHAPES) {}

  /** Notes the unknown keys of a version's service entries or node facts (upserted or whole). */
  note(kind: 'services' | 'nodes', entries: readonly unknown[]): void {
    const shape = this.shapes[kind];
    for (const e of entries) walk(shape, e, `${kind}[]`, this.found);
  }

  /** How many unknown keys were seen so far (to tell whether a version brought any). */
  get count(): number {
    return this.seen;
  }

  /** What was noted, or undefined when every key was known. */
  value(): UnknownTargetFields | undefined {
    return this.seen === 0 ? undefined : { paths: [...this.named], otherKeys: this.otherKeys };
  }

  private readonly found = (path: string): void => {
    this.seen++;
    if (this.named.includes(path)) return;
    if (this.named.length < MAX_UNKNOWN_FIELD_PATHS) this.named.push(path);
    else this.otherKeys++;
  };
}

/** What a release knows of entries: the shape of each array's entries. */
export interface ContentShapes {
  readonly services: Shape;
  readonly nodes: Shape;
}

type Shape =
  | { readonly kind: 'object'; readonly fields: ReadonlyMap<string, Shape | undefined> }
  | { readonly kind: 'array'; readonly element: Shape };

/** The shapes of `services` and `nodes` entries as the given schemas (default: this release's) name them. */
export function contentShapes(
  schemas: { readonly services: z.ZodType; readonly nodes: z.ZodType } = {
    services: ServiceEntrySchema,
    nodes: NodeFactsSchema,
  },
): ContentShapes {
  const services = shapeOf(schemas.services);
  const nodes = shapeOf(schemas.nodes);
  if (!services || !nodes) throw new Error('content shapes: entries must be objects');
  return { services, nodes };
}

/** A schema's structure (objects and arrays of them); undefined for a leaf (a string, a number...). */
function shapeOf(s: z.ZodType): Shape | undefined {
  if (s instanceof z.ZodOptional || s instanceof z.ZodNullable || s instanceof z.ZodReadonly)
    return shapeOf(s.unwrap() as z.ZodType);
  if (s instanceof z.ZodArray) {
    const element = shapeOf(s.element as z.ZodType);
    return element && { kind: 'array', element };
  }
  if (s instanceof z.ZodObject)
    return {
      kind: 'object',
      fields: new Map(Object.entries(s.shape as Record<string, z.ZodType>).map(([k, v]) => [k, shapeOf(v)])),
    };
  return undefined;
}

const RELEASE_SHAPES = contentShapes();

function walk(shape: Shape, v: unknown, path: string, found: (path: string) => void): void {
  if (shape.kind === 'array') {
    if (Array.isArray(v)) for (const e of v) walk(shape.element, e, `${path}[]`, found);
    return;
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return; // the content hash protects values
  // own keys as Object.keys gives them, without its array per object (every entry of every delta)
  for (const k in v) {
    if (!Object.hasOwn(v, k)) continue;
    if (!shape.fields.has(k)) {
      found(`${path}.${keyName(k)}`);
      continue;
    }
    const inner = shape.fields.get(k);
    if (inner) walk(inner, (v as Record<string, unknown>)[k], `${path}.${k}`, found);
  }
}

const PLAIN_KEY = /^[A-Za-z_$][\w$-]{0,63}$/;
/** A key as a path names it: as it is when plain, else quoted and cut (one printable line, bounded). */
function keyName(k: string): string {
  if (PLAIN_KEY.test(k)) return k;
  const room = Math.min(64, MAX_UNKNOWN_FIELD_PATH - 100);
  return JSON.stringify(k.length > room ? `${k.slice(0, room)}…` : k);
}
