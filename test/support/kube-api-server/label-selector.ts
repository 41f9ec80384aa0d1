// Kubernetes label selector parsing and matching, as the apiserver accepts it in
// `?labelSelector=`: `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k`,
// joined by commas (AND). Parse errors throw so the server can answer 400 like a real one.

export type LabelRequirement =
  | { op: 'eq' | 'neq'; key: string; value: string }
  | { op: 'in' | 'notin'; key: string; values: string[] }
  | { op: 'exists' | 'notexists'; key: string };

export type LabelSelector = readonly LabelRequirement[];

const KEY = /^([a-z0-9A-Z]([-a-z0-9A-Z_.]*[a-z0-9A-Z])?\/)?[a-z0-9A-Z]([-a-z0-9A-Z_.]*[a-z0-9A-Z])?$/;
const VALUE = /^([a-z0-9A-Z]([-a-z0-9A-Z_.]*[a-z0-9A-Z])?)?$/;

export class LabelSelectorError extends Error {}

// Splits on commas that are not inside a `(...)` set.
function splitTopLevel(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let current = '';
  for (const ch of text) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (depth < 0) throw new LabelSelectorError(`unbalanced ')' in selector "${text}"`);
    if (ch === ',' && depth === 0) {
      parts.push(current);
      current = '';
    } else {
      current += ch;
    }
  }
  if (depth !== 0) throw new LabelSelectorError(`unbalanced '(' in selector "${text}"`);
  parts.push(current);
  return parts;
}

function checkKey(key: string, whole: string): string {
  if (!KEY.test(key)) throw new LabelSelectorError(`invalid label key "${key}" in selector "${whole}"`);
  return key;
}

function checkValue(value: string, whole: string): string {
  if (!VALUE.test(value)) throw new LabelSelectorError(`invalid label value "${value}" in selector "${whole}"`);
  return value;
}

export function parseLabelSelector(text: string): LabelSelector {
  const trimmed = text.trim();
  if (trimmed === '') return [];
  return splitTopLevel(trimmed).map((raw): LabelRequirement => {
    const part = raw.trim();
    if (part === '') throw new LabelSelectorError(`empty requirement in selector "${text}"`);
    const set = /^(\S+)\s+(in|notin)\s*\((.*)\)$/.exec(part);
    if (set) {
      const values = set[3]!.split(',').map((v) => checkValue(v.trim(), text));
      return { op: set[2] as 'in' | 'notin', key: checkKey(set[1]!, text), values };
    }
    const cmp = /^([^=!\s]+)\s*(==|=|!=)\s*(.*)$/.exec(part);
    if (cmp) {
      const op = cmp[2] === '!=' ? 'neq' : 'eq';
      return { op, key: checkKey(cmp[1]!, text), value: checkValue(cmp[3]!.trim(), text) };
    }
    if (part.startsWith('!')) return { op: 'notexists', key: checkKey(part.slice(1).trim(), text) };
    return { op: 'exists', key: checkKey(part, text) };
  });
}

export function matchesLabels(selector: LabelSelector, labels: Record<string, string> | undefined): boolean {
  const have = labels ?? {};
  // biome-ignore lint/suspicious/useIterableCallbackReturn: the switch is exhaustive over the op union (tsc checks it)
  return selector.every((req) => {
    const present = Object.hasOwn(have, req.key);
    const value = have[req.key];
    switch (req.op) {
      case 'eq':
        return present && value === req.value;
      case 'neq':
        // Like the apiserver: `k!=v` also matches objects without the label.
        return !present || value !== req.value;
      case 'in':
        return present && req.values.includes(value!);
      case 'notin':
        return !present || !req.values.includes(value!);
      case 'exists':
        return present;
      case 'notexists':
        return !present;
    }
  });
}
