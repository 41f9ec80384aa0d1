import { describe, expect, it } from 'vitest';
import { crossSiteWrite, guardRequest, notLoopbackHost } from '../../../services/planner/request-guard.ts';

describe('request guard (writes from other web pages, DNS rebinding)', () => {
  it('an open loopback API answers loopback names only', () => {
    for (const host of [
      '127.0.0.1:9440',
      'localhost:9440',
      'LOCALHOST.:1',
      '[::1]:9440',
      '127.0.0.2:1',
      'a.localhost:1',
      '127.0.0.1',
    ])
      expect(notLoopbackHost({ host }), host).toBeUndefined();
    for (const host of [
      'evil.example:9440',
      '10.0.0.1:9440',
      '[::2]:1',
      '127.0.0.1.evil.example:1',
      'localhost.evil:1',
    ])
      expect(notLoopbackHost({ host }), host).toMatch(
        /^Host ".*" is refused: an API without a token file answers only loopback names/,
      );
    expect(notLoopbackHost({})).toBeUndefined();
  });

  it("a write carrying another origin or a cross-site fetch mark is refused; ctl, curl and the API's own pages are not", () => {
    const host = '127.0.0.1:9440';
    expect(crossSiteWrite({ host })).toBeUndefined();
    expect(crossSiteWrite({ host, origin: 'http://127.0.0.1:9440', 'sec-fetch-site': 'same-origin' })).toBeUndefined();
    expect(crossSiteWrite({ host, 'sec-fetch-site': 'none' })).toBeUndefined(); // typed into the address bar
    expect(crossSiteWrite({ host, origin: 'http://127.0.0.1:9441' })).toMatch(
      /another origin \("http:\/\/127\.0\.0\.1:9441"\)/,
    );
    expect(crossSiteWrite({ host, origin: 'null' })).toMatch(/another origin/);
    expect(crossSiteWrite({ host, 'sec-fetch-site': 'same-site' })).toMatch(/Sec-Fetch-Site: same-site/);
    // reads are not refused for their origin (a page cannot read the answer without CORS anyway)
    expect(() => guardRequest('GET', { host, origin: 'http://evil.example' }, { loopbackOnly: true })).not.toThrow();
    expect(() => guardRequest('POST', { host, origin: 'http://evil.example' }, { loopbackOnly: false })).toThrow(
      /another origin/,
    );
    expect(() => guardRequest('GET', { host: 'evil.example:9440' }, { loopbackOnly: false })).not.toThrow(); // tokens guard it
  });
});
