// Every call the page makes: GET on the Gateway's public API (tests/dashboard checks each path
// against the generated public routes), plus /dashboard/session for the anonymous viewer token.
export const API = {
  health: "/v1/gateway/health",
  overview: "/v1/gateway/overview",
  strategies: "/v1/gateway/strategies",
  strategyStatus: "/v1/gateway/strategies/{strategy_id}/status",
  events: "/v1/gateway/events",
  queuesByTag: "/v1/gateway/queues/by-tag",
};
export const SESSION = "/dashboard/session";
const TOKEN_KEY = "qmtl.dashboard.token";

export class Unauthorized extends Error {}

export function storedToken() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

export function storeToken(token) {
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
}

// Anonymous access: the Gateway hands out a short-lived read-only token; fetched again on 401.
export async function anonymousToken() {
  const response = await fetch(SESSION, { headers: { Accept: "application/json" } });
  if (!response.ok) throw new Error(`${SESSION}: HTTP ${response.status}`);
  const body = await response.json();
  storeToken(body.token);
  return body.token;
}

export async function get(path, params) {
  const url = new URL(path, window.location.origin);
  for (const [key, value] of Object.entries(params || {})) {
    for (const item of Array.isArray(value) ? value : [value]) url.searchParams.append(key, item);
  }
  const headers = { Accept: "application/json" };
  const token = storedToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(url, { headers });
  if (response.status === 401) throw new Unauthorized(path);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const message = (body && body.message) || `HTTP ${response.status}`;
    throw new Error(`${path}: ${message}`);
  }
  return body;
}
