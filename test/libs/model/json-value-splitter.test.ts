import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { JsonValueSplitter, type JsonPath } from '../../../libs/model/index.ts';

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Feeds `text` cut at `cuts` and returns what the splitter handed over, walking the root and `a`. */
function split(text: string, cuts: readonly number[]): { path: string; element: boolean; value: unknown }[] {
  const out: { path: string; element: boolean; value: unknown }[] = [];
  const s = new JsonValueSplitter({
    descend: (p: JsonPath, kind) => (p.length === 0 && kind === 'object') || (p.join('.') === 'a' && kind === 'array'),
    onValue: (p, element, bytes) => out.push({ path: p.join('.'), element, value: JSON.parse(dec.decode(bytes)) }),
  });
  const bytes = enc.encode(text);
  let at = 0;
  for (const c of [...cuts].sort((x, y) => x - y)) {
    const to = Math.min(c, bytes.length);
    if (to > at) s.push(bytes.slice(at, to));
    at = Math.max(at, to);
  }
  s.push(bytes.slice(at));
  s.end();
  return out;
}

describe('JsonValueSplitter', () => {
  it('hands over the members and walked-array elements JSON.parse sees, wherever the chunks are cut', () => {
    const json = fc.jsonValue({ maxDepth: 3 });
    fc.assert(
      fc.property(
        fc.dictionary(
          fc.string({ maxLength: 6 }).filter((k) => k !== 'a' && k !== '__proto__'),
          json,
          { maxKeys: 4 },
        ),
        fc.array(json, { maxLength: 6 }),
        fc.array(fc.nat(400), { maxLength: 12 }),
        fc.boolean(),
        (rest, a, cuts, spaced) => {
          const doc = { ...rest, a };
          const text = JSON.stringify(doc, null, spaced ? 2 : undefined);
          const got = split(text, cuts);
          const parsed = JSON.parse(text) as Record<string, unknown>;
          expect(got.filter((g) => g.element).map((g) => g.value)).toEqual(parsed.a);
          expect(Object.fromEntries(got.filter((g) => !g.element).map((g) => [g.path, g.value]))).toEqual(
            Object.fromEntries(Object.entries(parsed).filter(([k]) => k !== 'a')),
          );
        },
      ),
    );
  });

  it('keeps strings with escapes, brackets and multi-byte characters whole across cuts', () => {
    const text = JSON.stringify({ a: [{ s: 'x\\"]}{[ "é漢🙂', t: ['\\', '"'] }, 'end\\'], b: '}' });
    for (let cut = 0; cut <= enc.encode(text).length; cut++) {
      expect(split(text, [cut])).toEqual([
        { path: 'a', element: true, value: { s: 'x\\"]}{[ "é漢🙂', t: ['\\', '"'] } },
        { path: 'a', element: true, value: 'end\\' },
        { path: 'b', element: false, value: '}' },
      ]);
    }
  });

  it('throws a SyntaxError on structure it cannot follow, or a document that ends early', () => {
    for (const bad of [
      '{"a" 1}',
      '{"a":[1 2]}',
      '{"a":1}x',
      '{"a":[1,2]',
      '{"a":[{"b":1}',
      '{"a":"x',
      '',
      '{,}',
      '{1:2}',
    ]) {
      expect(() => split(bad, []), bad).toThrow(SyntaxError);
    }
  });

  it('refuses a value longer than its limit', () => {
    const s = new JsonValueSplitter({ descend: (p) => p.length === 0, onValue: () => {}, maxValueBytes: 10 });
    expect(() => s.push(enc.encode('{"a":"0123456789abc"}'))).toThrow(/over 10 bytes/);
  });
});
