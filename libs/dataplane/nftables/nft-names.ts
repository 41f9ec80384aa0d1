import crypto, { createHash } from 'node:crypto';

/** The one table Switchboard owns in nftables mode; everything else in the ruleset is foreign. */
export const NFT_TABLE = 'switchboard';
export const NFT_FAMILY = 'inet';

/** Same bit kube-proxy uses, so both proxies agree on what "marked for masquerade" means. */
export const MASQUERADE_MARK = '0x4000';

// nft identifiers: a letter first, then letters, digits and / - _ . (nft's scanner). Chain names
// are capped at 256 bytes by the kernel; a stable hash keeps truncated names unique.
const MAX_READABLE = 160;

function sanitize(text: string): string {
  return text.replace(/[^A-Za-z0-9/_.-]/g, '_').slice(0, MAX_READABLE);
}

// One-shot crypto.hash (node ≥ 20.12) where present: a third of createHash's cost per name, and
// a full load names two objects per service (20k at 10k services). Same digest either way.
const oneShot = crypto.hash as ((algorithm: string, data: string, encoding: 'base64url') => string) | undefined;

function hash8(key: string): string {
  const digest = oneShot ? oneShot('sha256', key, 'base64url') : createHash('sha256').update(key).digest('base64url');
  return digest.replace(/[-_]/g, 'x').slice(0, 8).toUpperCase();
}

/**
 * `<prefix>-<HASH>-<readable>` as kube-proxy's nftables mode names its chains: the hash makes the
 * name unique whatever the readable part lost to sanitising, the readable part makes
 * `nft list table` reviewable.
 */
export function nftObjectName(prefix: string, key: string, readable: string): string {
  return `${prefix}-${hash8(key)}-${sanitize(readable)}`;
}
