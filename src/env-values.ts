import { z } from 'zod';

/** Readers of one environment variable each: a default when unset, one line naming the problem when wrong. */

export const bool = (fallback: boolean) =>
  z
    .string()
    .trim()
    .toLowerCase()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v === '') return fallback;
      if (['1', 'true', 'yes', 'on'].includes(v)) return true;
      if (['0', 'false', 'no', 'off'].includes(v)) return false;
      ctx.addIssue({ code: 'custom', message: `expected true or false, got "${v}"` });
      return z.NEVER;
    });

export const int = (fallback: number, min: number, max: number) =>
  z
    .string()
    .trim()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v === '') return fallback;
      const n = Number(v);
      if (!Number.isInteger(n) || n < min || n > max) {
        ctx.addIssue({ code: 'custom', message: `expected a whole number from ${min} to ${max}, got "${v}"` });
        return z.NEVER;
      }
      return n;
    });

/** A whole number whose default depends on other variables: undefined when unset. */
export const optionalInt = (min: number, max: number) => int(Number.NaN, min, max).transform((n) => (Number.isNaN(n) ? undefined : n));

export const optionalString = z
  .string()
  .trim()
  .optional()
  .transform((v) => (v ? v : undefined));

export const list = (fallback: string[]) =>
  z
    .string()
    .optional()
    .transform((v) => {
      if (v === undefined || v.trim() === '') return fallback;
      return v
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);
    });

export const httpUrl = (fallback?: string) =>
  z
    .string()
    .trim()
    .optional()
    .transform((v, ctx) => {
      const value = v || fallback;
      if (!value) return undefined;
      try {
        const url = new URL(value);
        if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error('scheme');
        return value.replace(/\/+$/, '');
      } catch {
        ctx.addIssue({ code: 'custom', message: `expected an http(s) URL, got "${v}"` });
        return z.NEVER;
      }
    });

/**
 * A Sentry DSN as Sentry's project settings show it: https://<public key>@<host>/<project id>.
 * The value is never echoed: the key lets anyone send events to the project.
 */
export const sentryDsn = optionalString.transform((v, ctx) => {
  if (v === undefined) return undefined;
  let url: URL | undefined;
  try {
    url = new URL(v);
  } catch {
    url = undefined;
  }
  const projectId = url?.pathname.split('/').pop() ?? '';
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:') || !url.username || !/^\d+$/.test(projectId)) {
    ctx.addIssue({ code: 'custom', message: 'expected a DSN such as https://<public key>@o0.ingest.sentry.io/<project id> (Sentry: Project settings → Client Keys)' });
    return z.NEVER;
  }
  return v;
});
