import { createHash } from 'node:crypto';

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

function hash8(key: string): string {
  return createHash('sha256').update(key).digest('base64url').replace(/[-_]/g, 'x').slice(0, 8).toUpperCase();
}

/**
 * `<prefix>-<HASH>-<readable>` as kube-proxy's nftables mode names its chains: the hash makes the
 * name unique whatever the readable part lost to sanitising, the readable part makes
 * `nft list table` reviewable.
 */
export function nftObjectName(prefix: string, key: string, readable: string): string {
  return `${prefix}-${hash8(key)}-${sanitize(readable)}`;
}
