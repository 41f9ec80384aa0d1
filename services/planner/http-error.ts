/** An HTTP answer other than 200, with the one-line message clients print. */
export class HttpError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

export type Body = Record<string, unknown>;
