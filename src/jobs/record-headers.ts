/** Printable ASCII, no "%": sent in a header as is. Anything else is percent-encoded. */
const HEADER_SAFE = /^[\x20-\x7e]*$/;

/** The header that says X-Bridge-Record-Id (and the record part of Idempotency-Key) is percent-encoded. */
export const RECORD_ID_ENCODING_HEADER = 'x-bridge-record-id-encoding';

/**
 * The headers that let an upstream dedupe a record: job id, record id, and both as one
 * Idempotency-Key. HTTP header values carry bytes, not text, so a record id that is not printable
 * ASCII (CJK, emoji, RTL, combining marks) — or that holds a "%" — is sent percent-encoded as
 * UTF-8 (`encodeURIComponent`), and `X-Bridge-Record-Id-Encoding: percent` says so; an upstream
 * gets the id back with `decodeURIComponent`. The JSON body always carries the id as sent.
 */
export function recordHeaders(jobId: string, recordId: string): Record<string, string> {
  const plain = HEADER_SAFE.test(recordId) && !recordId.includes('%');
  const value = plain ? recordId : encodeURIComponent(recordId);
  return {
    'x-bridge-job-id': jobId,
    'x-bridge-record-id': value,
    'idempotency-key': `${jobId}:${value}`,
    ...(plain ? {} : { [RECORD_ID_ENCODING_HEADER]: 'percent' }),
  };
}

/** Record ids that cannot be sent at all: control characters (C0, DEL, C1) and lone surrogates (not UTF-8). */
export function recordIdProblem(id: string): string | undefined {
  if (/[\u0000-\u001f\u007f-\u009f]/.test(id)) return 'must not contain control characters';
  // With the u flag a surrogate pair is one code point (an emoji); only a lone half matches \p{Cs}.
  if (/\p{Cs}/u.test(id)) return 'must be valid Unicode (it holds a lone surrogate)';
  return undefined;
}
