// An apiserver failure with its HTTP code and, when the server sent one, its Status.

export interface KubeStatusBody {
  kind?: string;
  status?: string;
  message?: string;
  reason?: string;
  code?: number;
  [key: string]: unknown;
}

export class KubeApiError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly status?: KubeStatusBody,
    /** How long the server asked the client to wait (Retry-After header or Status details). */
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
    this.name = 'KubeApiError';
  }

  static fromStatus(httpCode: number, body: unknown, context: string, retryAfterHeader?: string): KubeApiError {
    const status =
      body && typeof body === 'object' && (body as KubeStatusBody).kind === 'Status'
        ? (body as KubeStatusBody)
        : undefined;
    const code = typeof status?.code === 'number' && status.code > 0 ? status.code : httpCode;
    const reason = status?.reason ?? 'Unknown';
    const message = status?.message ?? `HTTP ${httpCode}`;
    const fromDetails = (status?.details as { retryAfterSeconds?: unknown } | undefined)?.retryAfterSeconds;
    const header = retryAfterHeader?.trim();
    // The apiserver sends whole seconds; the HTTP-date form is not used by it and is ignored.
    const retryAfterSeconds =
      header && /^[0-9]+$/.test(header)
        ? Number(header)
        : typeof fromDetails === 'number' && fromDetails > 0
          ? fromDetails
          : undefined;
    return new KubeApiError(code, reason, `${context}: ${code} ${reason}: ${message}`, status, retryAfterSeconds);
  }
}

/**
 * "Too large resource version": the server is behind the RV the client resumes from. Once is a
 * lagging watch cache (one apiserver of an HA pair, catching up in seconds); persisting, the
 * store went back (etcd restored from a backup) and the client's state is of a cluster it can no
 * longer see.
 */
export function isTooLargeResourceVersion(err: unknown): boolean {
  if (!(err instanceof KubeApiError)) return false;
  const causes = (err.status?.details as { causes?: { reason?: unknown }[] } | undefined)?.causes;
  return (
    (Array.isArray(causes) && causes.some((c) => c?.reason === 'ResourceVersionTooLarge')) ||
    /Too large resource version/i.test(err.status?.message ?? '')
  );
}

/** 410 Gone / reason Expired: the RV or continue token is compacted away; relist. */
export function isExpired(err: unknown): boolean {
  return err instanceof KubeApiError && (err.code === 410 || err.reason === 'Expired' || err.reason === 'Gone');
}
