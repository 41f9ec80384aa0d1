/**
 * Kubernetes label selectors in their text form, the one `kubectl -l` and `?labelSelector=` take
 * (k8s.io/apimachinery/pkg/labels, selector.go): requirements joined by commas (all must hold),
 * each one of
 *
 *   key=value  key==value  key!=value   key in (a,b)  key notin (a,b)   key  !key   key>3  key<3
 *
 * with the same validation (a key is a qualified name: an optional DNS subdomain prefix and `/`,
 * then a name of at most 63 characters; a value is at most 63 characters, possibly empty) and the
 * same meaning: `!=` and `notin` also hold for an object without the label, `>`/`<` compare
 * integers and never hold for a label that is not one. No library in node_modules parses them
 * (@kubernetes/client-node passes the text to the API server), hence this small parser; its tests
 * are test/libs/model/label-selector.test.ts. Pure: no I/O.
 */

export type LabelRequirement =
  | { readonly op: '=' | '!='; readonly key: string; readonly value: string }
  | { readonly op: 'in' | 'notin'; readonly key: string; readonly values: readonly string[] }
  | { readonly op: 'exists' | '!exists'; readonly key: string }
  | { readonly op: '>' | '<'; readonly key: string; readonly value: number };

export interface LabelSelector {
  readonly requirements: readonly LabelRequirement[];
  /** The selector in canonical text (requirements sorted by key, as the API server prints them); '' selects everything. */
  readonly text: string;
}

/** A selector text that does not parse; the message names the selector and what is wrong. */
export class LabelSelectorError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LabelSelectorError';
  }
}

const NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

type Token =
  | { readonly t: 'id'; readonly v: string }
  | { readonly t: '!' | '!=' | '=' | '==' | '>' | '<' | '(' | ')' | ',' | 'in' | 'notin' | 'end' };

/** Splits like the apiserver's lexer: identifiers run until whitespace or one of `!=(),<>`. */
function tokens(text: string, fail: (why: string) => never): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    const two = text.slice(i, i + 2);
    if (two === '!=' || two === '==') {
      out.push({ t: two });
      i += 2;
      continue;
    }
    if ('!=(),<>'.includes(c)) {
      out.push({ t: c as '!' | '=' | '(' | ')' | ',' | '<' | '>' });
      i++;
      continue;
    }
    let j = i;
    while (j < text.length && !/\s/.test(text[j]!) && !'!=(),<>'.includes(text[j]!)) j++;
    const word = text.slice(i, j);
    if (word === 'in' || word === 'notin') out.push({ t: word });
    else out.push({ t: 'id', v: word });
    i = j;
  }
  if (out.length === 0 && text.trim() !== '') fail('nothing to parse');
  out.push({ t: 'end' });
  return out;
}

function checkKey(key: string, fail: (why: string) => never): string {
  const slash = key.lastIndexOf('/');
  const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  if (prefix !== undefined && (prefix.length === 0 || prefix.length > 253 || !DNS_SUBDOMAIN.test(prefix)))
    fail(`label key ${JSON.stringify(key)}: the prefix must be a DNS subdomain (lower case, at most 253 characters)`);
  if (name.length === 0 || name.length > 63 || !NAME.test(name))
    fail(
      `label key ${JSON.stringify(key)}: the name must be 1-63 characters, alphanumeric at both ends, with - _ . inside`,
    );
  return key;
}

function checkValue(value: string, fail: (why: string) => never): string {
  if (value.length > 63 || (value !== '' && !NAME.test(value)))
    fail(`label value ${JSON.stringify(value)}: at most 63 characters, alphanumeric at both ends, with - _ . inside`);
  return value;
}

/**
 * Parses a selector's text; throws LabelSelectorError naming the selector and what is wrong. An
 * empty (or all-blank) text selects everything, as the API server takes it.
 */
export function parseLabelSelector(text: string): LabelSelector {
  const fail = (why: string): never => {
    throw new LabelSelectorError(`label selector ${JSON.stringify(text)}: ${why}`);
  };
  const toks = tokens(text, fail);
  let at = 0;
  const peek = () => toks[at]!;
  const next = () => toks[at++]!;
  const show = (t: Token) => (t.t === 'id' ? JSON.stringify(t.v) : t.t === 'end' ? 'the end' : `'${t.t}'`);
  // Where a value is expected, `in` and `notin` are values (`zone=in`), as the apiserver's parser reads them.
  const valueText = (t: Token) => (t.t === 'id' ? t.v : t.t === 'in' || t.t === 'notin' ? t.t : undefined);
  const requirements: LabelRequirement[] = [];
  if (peek().t === 'end') return { requirements, text: '' };
  for (;;) {
    let negated = false;
    if (peek().t === '!') {
      next();
      negated = true;
    }
    const k = next();
    if (k.t !== 'id') fail(`expected a label key, found ${show(k)}`);
    const key = checkKey((k as { v: string }).v, fail);
    const op = peek();
    if (negated) {
      if (op.t !== ',' && op.t !== 'end') fail(`'!${key}' takes no operator, found ${show(op)}`);
      requirements.push({ op: '!exists', key });
    } else if (op.t === ',' || op.t === 'end') {
      requirements.push({ op: 'exists', key });
    } else if (op.t === '=' || op.t === '==' || op.t === '!=') {
      next();
      const v = peek();
      let value = valueText(v);
      if (value !== undefined) next();
      // `key=` compares with the empty value, as the apiserver reads it
      else if (v.t === ',' || v.t === 'end') value = '';
      else fail(`expected a value after '${op.t}' for ${key}, found ${show(v)}`);
      requirements.push({ op: op.t === '!=' ? '!=' : '=', key, value: checkValue(value!, fail) });
    } else if (op.t === '>' || op.t === '<') {
      next();
      const v = next();
      const n = v.t === 'id' && /^-?\d+$/.test(v.v) ? Number(v.v) : Number.NaN;
      if (!Number.isSafeInteger(n)) fail(`'${key}${op.t}' needs a whole number, found ${show(v)}`);
      requirements.push({ op: op.t, key, value: n });
    } else if (op.t === 'in' || op.t === 'notin') {
      next();
      if (next().t !== '(') fail(`expected '(' after '${op.t}' for ${key}`);
      const values: string[] = [];
      for (;;) {
        const v = peek();
        const value = valueText(v);
        if (value !== undefined) {
          next();
          values.push(checkValue(value, fail));
        } else if (v.t === ',' || v.t === ')')
          values.push(''); // `(a,)`: the empty value
        else fail(`expected a value or ')' in the set of ${key}, found ${show(v)}`);
        const sep = next();
        if (sep.t === ')') break;
        if (sep.t !== ',') fail(`expected ',' or ')' in the set of ${key}, found ${show(sep)}`);
      }
      // `key in ()` holds for nothing: the apiserver refuses it
      if (values.length === 1 && values[0] === '' && toks[at - 2]!.t === '(')
        fail(`'${op.t}' needs at least one value for ${key}`);
      requirements.push({ op: op.t, key, values: [...new Set(values)].sort() });
    } else {
      fail(`expected an operator (=, ==, !=, in, notin, >, <) or ',' after ${key}, found ${show(op)}`);
    }
    const sep = next();
    if (sep.t === 'end') break;
    if (sep.t !== ',') fail(`expected ',' between requirements, found ${show(sep)}`);
  }
  // Sorted by key (stable), as the apiserver keeps them: one selector, one form, one text.
  const sorted = requirements.sort((a, b) => byCodeUnit(a.key, b.key));
  return Object.freeze({ requirements: Object.freeze(sorted), text: sorted.map(requirementText).join(',') });
}

function requirementText(r: LabelRequirement): string {
  switch (r.op) {
    case 'exists':
      return r.key;
    case '!exists':
      return `!${r.key}`;
    case 'in':
    case 'notin':
      return `${r.key} ${r.op} (${r.values.join(',')})`;
    default:
      return `${r.key}${r.op}${r.value}`;
  }
}

const byCodeUnit = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** Whether an object with these labels is selected: every requirement holds. */
export function matchesLabelSelector(
  selector: LabelSelector,
  labels: Readonly<Record<string, string>> | undefined,
): boolean {
  const have = labels ?? {};
  for (const r of selector.requirements) {
    const present = Object.hasOwn(have, r.key);
    const value = present ? have[r.key]! : undefined;
    let holds: boolean;
    switch (r.op) {
      case 'exists':
        holds = present;
        break;
      case '!exists':
        holds = !present;
        break;
      case '=':
        holds = value === r.value;
        break;
      case '!=':
        holds = value !== r.value; // an object without the label has no other value: it holds
        break;
      case 'in':
        holds = value !== undefined && r.values.includes(value);
        break;
      case 'notin':
        holds = value === undefined || !r.values.includes(value);
        break;
      case '>':
      case '<': {
        const n = value !== undefined && /^-?\d+$/.test(value) ? Number(value) : Number.NaN;
        holds = Number.isSafeInteger(n) && (r.op === '>' ? n > r.value : n < r.value);
        break;
      }
    }
    if (!holds) return false;
  }
  return true;
}
