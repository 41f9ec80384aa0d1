/** Where appliers ask the credential issuer for their node credential (request/reply). */
export const CREDENTIALS_REQUEST_SUBJECT = 'sb.creds.request';
/** Inbox prefix of bootstrap connections; the issuer replies below it. */
export const BOOTSTRAP_INBOX_PREFIX = '_INBOX_bootstrap';
/** Queue group of the issuers (one per planner pod): each request is answered once. */
export const ISSUER_QUEUE = 'sb-credential-issuers';
