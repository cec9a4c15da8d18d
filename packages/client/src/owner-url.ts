/**
 * `directConnect`: asks `GET /v1/route` (with the client's own token) which node owns this user
 * on the hash ring and returns that node's WebSocket URL, with the path and query of `url`. Any
 * failure falls back to `url`, which works behind any balancer.
 */
export async function ownerUrl(url: string, token: string): Promise<string> {
  try {
    const configured = new URL(url);
    const http = new URL('/v1/route', configured.href.replace(/^ws/, 'http'));
    const res = await fetch(http.href, { headers: { authorization: `Bearer ${token}` } });
    if (!res.ok) return url;
    const { url: owner } = (await res.json()) as { url?: string };
    if (typeof owner !== 'string') return url;
    const target = new URL(owner.replace(/^http/, 'ws'));
    target.pathname = configured.pathname;
    target.search = configured.search;
    return target.href;
  } catch {
    return url;
  }
}
