import { describe, expect, it } from 'vitest';
import { LabelSelectorError, matchesLabelSelector, parseLabelSelector } from '../../../libs/model/label-selector.ts';

// The selector grammar of `kubectl -l` (k8s.io/apimachinery/pkg/labels): what parses, what it
// means, and that everything else is refused with a line naming the selector.

const linux = { 'kubernetes.io/os': 'linux', 'node-role.kubernetes.io/worker': '', tier: '3' };
const windows = { 'kubernetes.io/os': 'windows', tier: 'x' };
const bare = {};

const selects = (text: string) => {
  const s = parseLabelSelector(text);
  return [linux, windows, bare].map((labels) => matchesLabelSelector(s, labels));
};

describe('parseLabelSelector + matchesLabelSelector', () => {
  it.each([
    // [selector, matches linux, windows, no labels]
    ['', [true, true, true]],
    ['   ', [true, true, true]],
    ['kubernetes.io/os=linux', [true, false, false]],
    ['kubernetes.io/os==linux', [true, false, false]],
    ['kubernetes.io/os = linux', [true, false, false]],
    ['kubernetes.io/os!=windows', [true, false, true]], // != also holds without the label
    ['kubernetes.io/os in (linux, freebsd)', [true, false, false]],
    ['kubernetes.io/os notin (windows)', [true, false, true]],
    ['kubernetes.io/os', [true, true, false]],
    ['!kubernetes.io/os', [false, false, true]],
    ['node-role.kubernetes.io/worker', [true, false, false]],
    ['node-role.kubernetes.io/worker=', [true, false, false]], // the empty value
    ['kubernetes.io/os=linux,tier', [true, false, false]],
    ['kubernetes.io/os,!node-role.kubernetes.io/worker', [false, true, false]],
    ['tier>2', [true, false, false]], // integers only: "x" is no number
    ['tier<3', [false, false, false]],
    ['kubernetes.io/os in (linux,)', [true, false, false]],
    ['kubernetes.io/os=in', [false, false, false]], // `in` is a value here
  ])('%j selects [linux, windows, unlabelled] = %j', (text, expected) => {
    expect(selects(text)).toEqual(expected);
  });

  it('keeps a canonical text: requirements sorted by key, sets sorted', () => {
    expect(parseLabelSelector(' tier>2 , kubernetes.io/os in (b,a,b),!x ').text).toBe(
      'kubernetes.io/os in (a,b),tier>2,!x',
    );
    expect(parseLabelSelector('a==b').text).toBe('a=b');
    expect(parseLabelSelector('').text).toBe('');
    // the canonical text parses to the same selector
    const s = parseLabelSelector('z notin (q),a!=b,k');
    expect(parseLabelSelector(s.text)).toEqual(s);
  });

  it.each([
    ['a=b=c', /expected ',' between requirements/],
    ['a,', /expected a label key, found the end/],
    [',a', /expected a label key, found ','/],
    ['!a=b', /'!a' takes no operator/],
    ['a in ()', /'in' needs at least one value for a/],
    ['a in (b', /expected ',' or '\)' in the set of a, found the end/],
    ['a in b', /expected '\(' after 'in'/],
    ['a in (b c)', /expected ',' or '\)'/],
    ['a>b', /'a>' needs a whole number/],
    ['a b', /expected an operator/],
    ['-a=b', /label key "-a": the name must be/],
    ['Example.com/a=b', /label key "Example.com\/a": the prefix must be a DNS subdomain/],
    ['/a=b', /the prefix must be a DNS subdomain/],
    [`${'a'.repeat(64)}=b`, /the name must be 1-63 characters/],
    [`a=${'b'.repeat(64)}`, /label value "b{64}": at most 63 characters/],
    ['a=b-', /label value "b-"/],
    ['a=(b)', /expected a value after '=' for a, found '\('/],
  ])('refuses %j', (text, why) => {
    expect(() => parseLabelSelector(text)).toThrow(LabelSelectorError);
    expect(() => parseLabelSelector(text)).toThrow(why);
    expect(() => parseLabelSelector(text)).toThrow(`label selector ${JSON.stringify(text)}: `);
  });

  it('a label value is compared whole, and an own property only', () => {
    const s = parseLabelSelector('constructor');
    expect(matchesLabelSelector(s, {})).toBe(false);
    expect(matchesLabelSelector(parseLabelSelector('a in (linux)'), { a: 'linu' })).toBe(false);
  });
});
