/** Parses JSON text, answering undefined instead of throwing (upstream answers, feed bodies). */
export function parseJsonOrUndefined(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
