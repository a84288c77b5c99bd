// The bearer token lives in sessionStorage only (gone when the tab closes); it is never put in a URL.

const KEY = "ran-twin.token";

export type Role = "viewer" | "operator";

export function savedToken(): string | null {
  return sessionStorage.getItem(KEY);
}

export function saveToken(token: string): void {
  sessionStorage.setItem(KEY, token);
}

export function forgetToken(): void {
  sessionStorage.removeItem(KEY);
}
