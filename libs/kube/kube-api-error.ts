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
  ) {
    super(message);
    this.name = 'KubeApiError';
  }

  static fromStatus(httpCode: number, body: unknown, context: string): KubeApiError {
    const status =
      body && typeof body === 'object' && (body as KubeStatusBody).kind === 'Status'
        ? (body as KubeStatusBody)
        : undefined;
    const code = typeof status?.code === 'number' && status.code > 0 ? status.code : httpCode;
    const reason = status?.reason ?? 'Unknown';
    const message = status?.message ?? `HTTP ${httpCode}`;
    return new KubeApiError(code, reason, `${context}: ${code} ${reason}: ${message}`, status);
  }
}

/** 410 Gone / reason Expired: the RV or continue token is compacted away; relist. */
export function isExpired(err: unknown): boolean {
  return err instanceof KubeApiError && (err.code === 410 || err.reason === 'Expired' || err.reason === 'Gone');
}
