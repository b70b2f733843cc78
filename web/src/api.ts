import { BerthClient, BerthError } from '@berth/client';

/** The dashboard's one client: same origin, authenticated by the session cookie. */
export const api = new BerthClient();

/** message turns any failure into a sentence for the page. */
export function message(e: unknown): string {
  if (e instanceof BerthError) {
    if (e.code === 'network') return 'The control plane cannot be reached. Check your connection and try again.';
    if (e.code === 'unavailable') return `The container engine is unreachable right now (${e.message}). Try again in a moment.`;
    return e.message;
  }
  return e instanceof Error ? e.message : String(e);
}
