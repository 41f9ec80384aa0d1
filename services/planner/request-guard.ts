import type { IncomingHttpHeaders } from 'node:http';
import { isIP } from 'node:net';
import { HttpError } from './http-error.ts';

/**
 * Refusals for requests a browser made on behalf of some other web page. Tokens alone do not cover
 * these: without a token file the API is open on loopback, and "only loopback" keeps other hosts
 * out, not the operator's own browser. A page on any site can POST to http://127.0.0.1:PORT (a
 * `text/plain` body needs no CORS preflight, so the operation happens even though the page never
 * sees the answer), and through DNS rebinding (its own name resolving to 127.0.0.1) it can also
 * read the answers. Pure functions of the request's headers; http-api.ts applies them. Bodies
 * are not required to be typed JSON: `curl -d` sends them form-typed, and every browser sends
 * Origin with a POST (Sec-Fetch-Site too), which is what tells a page's request apart.
 */

/** Why a write must be refused (403), or undefined. Checked on every POST, with or without tokens. */
export function crossSiteWrite(headers: IncomingHttpHeaders): string | undefined {
  // Browsers send Sec-Fetch-Site on every request; ctl and curl send none.
  const site = headers['sec-fetch-site'];
  if (site === 'cross-site' || site === 'same-site')
    return `a write from another site's page (Sec-Fetch-Site: ${site}) is refused`;
  // Browsers send Origin on every POST; a page of this API (the console) has the API's own origin.
  const origin = headers.origin;
  if (origin !== undefined) {
    let host: string | undefined;
    try {
      host = new URL(origin).host;
    } catch {
      host = undefined; // "null" (sandboxed frames, file: pages) and garbage
    }
    if (host === undefined || host !== headers.host)
      return `a write from another origin (${truncated(origin)}) is refused; the API's own pages and ctl may write`;
  }
  return undefined;
}

/**
 * Why a request to an open API (no token file, listening on loopback) must be refused (421), or
 * undefined: it must name a loopback host. A name that only resolves to 127.0.0.1 (DNS rebinding:
 * evil.example → 127.0.0.1) is some web page reading the API through the operator's browser.
 */
export function notLoopbackHost(headers: IncomingHttpHeaders): string | undefined {
  const host = headers.host;
  if (host === undefined) return undefined; // HTTP/1.0 without Host: no browser sends that
  if (isLoopbackName(hostname(host))) return undefined;
  return `Host ${truncated(host)} is refused: an API without a token file answers only loopback names (localhost, 127.0.0.1, [::1])`;
}

function hostname(host: string): string {
  if (host.startsWith('[')) return host.slice(1, host.indexOf(']') < 0 ? undefined : host.indexOf(']'));
  const colon = host.lastIndexOf(':');
  return colon < 0 ? host : host.slice(0, colon);
}

function isLoopbackName(name: string): boolean {
  const n = name.toLowerCase().replace(/\.$/, '');
  if (n === 'localhost' || n.endsWith('.localhost')) return true;
  if (isIP(n) === 4) return n.startsWith('127.');
  if (isIP(n) === 6) return n === '::1' || n === '0:0:0:0:0:0:0:1';
  return false;
}

const truncated = (s: string) => JSON.stringify(s.length > 80 ? `${s.slice(0, 79)}…` : s);

/** The checks for one request, as http-api.ts runs them before reading a body. */
export function guardRequest(
  method: string | undefined,
  headers: IncomingHttpHeaders,
  o: { loopbackOnly: boolean },
): void {
  if (o.loopbackOnly) {
    const why = notLoopbackHost(headers);
    if (why) throw new HttpError(421, why);
  }
  if (method !== 'POST') return;
  const cross = crossSiteWrite(headers);
  if (cross) throw new HttpError(403, cross);
}
