// `Status` objects in the shape the apiserver returns them (metav1.Status), used both as
// HTTP error bodies and as the object of ERROR watch events.

export interface KubeStatus {
  kind: 'Status';
  apiVersion: 'v1';
  metadata: Record<string, never>;
  status: 'Failure';
  message: string;
  reason: string;
  code: number;
  details?: Record<string, unknown>;
}

export function kubeStatus(
  code: number,
  reason: string,
  message: string,
  details?: Record<string, unknown>,
): KubeStatus {
  const status: KubeStatus = {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message,
    reason,
    code,
  };
  if (details) status.details = details;
  return status;
}

/** Error thrown by the store; carries the Status the HTTP layer should answer with. */
export class KubeStatusError extends Error {
  constructor(readonly status: KubeStatus) {
    super(status.message);
    this.name = 'KubeStatusError';
  }
}

export function expiredStatus(message: string): KubeStatus {
  return kubeStatus(410, 'Expired', message);
}
