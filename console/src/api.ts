// The console's only way to the origin: the public /api/v1, typed from
// docs/openapi.json (src/gen/openapi.d.ts), authenticated by the browser's
// session cookie. Writes carry the session's CSRF token (from GET /me).
import createClient, { type Middleware } from "openapi-fetch";
import type { components, paths } from "./gen/openapi";

/** Schemas of the API, by name (`Schema<"FlagRecord">`). */
export type Schema<K extends keyof components["schemas"]> = components["schemas"][K];

/** One validation problem of a 422 (`ProblemBody`). */
export type Problem = Schema<"ProblemBody">;

let csrfToken: string | null = null;

/** Sets the CSRF token sent with every write (from `GET /me`). */
export function setCsrfToken(token: string | null | undefined) {
  csrfToken = token ?? null;
}

const csrf: Middleware = {
  onRequest({ request }) {
    if (request.method !== "GET" && request.method !== "HEAD" && csrfToken) {
      request.headers.set("X-CSRF-Token", csrfToken);
    }
    return request;
  },
};

// A session that ended (expired, signed out elsewhere) answers 401: the page
// reloads, and the app, finding no session, shows where to sign in.
const signedOut: Middleware = {
  onResponse({ request, response }) {
    if (response.status === 401 && !new URL(request.url).pathname.endsWith("/api/v1/me")) {
      location.reload();
    }
    return response;
  },
};

/** The typed client. Paths are the API's (`/api/v1/orgs/{org}/…`). */
export const api = createClient<paths>({ baseUrl: "", credentials: "same-origin" });
api.use(csrf, signedOut);

/** An error answer of the API, with what the console needs to show it where it happened. */
export class ApiError extends Error {
  constructor(
    /** The HTTP status (0: the request did not reach the origin). */
    readonly status: number,
    /** The machine-readable code (`invalid`, `conflict`, `not_found`, …). */
    readonly code: string,
    message: string,
    /** Every validation problem of a 422. */
    readonly problems: Problem[] = [],
    /** A 412's current ETag of the entity. */
    readonly currentEtag: string | null = null,
  ) {
    super(message);
  }

  /** Whether someone else changed the entity since it was read (412). */
  get stale(): boolean {
    return this.status === 412;
  }

  /** The problems about one field (`key`, `rules[0].condition`, …), by prefix. */
  problemsAt(field: string): Problem[] {
    return this.problems.filter((p) => fieldOf(p) === field || fieldOf(p).startsWith(`${field}.`) || fieldOf(p).startsWith(`${field}[`));
  }
}

/** The field a problem is about: the located field, else its path without the position. */
export function fieldOf(p: Problem): string {
  return p.location?.field ?? p.path.replace(/\s*\(line \d+, column \d+\)$/, "");
}

type Answer<T> = { data?: T; error?: unknown; response: Response };

/** The data of a successful answer, or an `ApiError` thrown. */
export function must<T>(answer: Answer<T>): T {
  if (answer.error !== undefined || !answer.response.ok) {
    throw toApiError(answer.response, answer.error);
  }
  return answer.data as T;
}

/** The data and the ETag of a successful answer (for `If-Match` on the next write). */
export function withEtag<T>(answer: Answer<T>): { data: T; etag: string } {
  const data = must(answer);
  return { data, etag: answer.response.headers.get("ETag") ?? "" };
}

function toApiError(response: Response, body: unknown): ApiError {
  const detail = (body as { error?: Schema<"ErrorDetail"> } | undefined)?.error;
  if (detail) {
    return new ApiError(response.status, detail.code, detail.message, detail.problems ?? [], detail.currentEtag ?? null);
  }
  return new ApiError(response.status, "http", `${response.status} ${response.statusText}`);
}

/** Turns anything thrown by a request into an `ApiError`. */
export function asApiError(e: unknown): ApiError {
  if (e instanceof ApiError) return e;
  return new ApiError(0, "network", e instanceof Error ? e.message : String(e));
}
