// Who is signed in (`GET /api/v1/me`) and what they may do.
import { createContext } from "preact";
import { useContext } from "preact/hooks";
import { api, setCsrfToken, type Schema } from "./api";

/** The signed-in caller. */
export type Me = Schema<"Me">;
/** A permission name (`flags.write`, `killswitch`, …). */
export type Permission = Schema<"Permission">;

/** Loads the caller; `null` when not signed in (401). */
export async function loadMe(): Promise<Me | null> {
  const { data, response } = await api.GET("/api/v1/me");
  if (response.status === 401) return null;
  if (!data) throw new Error(`GET /api/v1/me: ${response.status}`);
  setCsrfToken(data.csrfToken);
  return data;
}

/** Whether `me` holds `permission` at the given scope (by keys). */
export function can(me: Me, permission: Permission, org: string, project?: string, env?: string): boolean {
  if (me.isAdmin || me.everywhere.includes(permission)) return true;
  return me.grants.some((g) => {
    if (!g.permissions.includes(permission) || g.org !== org) return false;
    if (g.project && project && g.project !== project) return false;
    if (g.project && !project) return false;
    if (g.environment && env && g.environment !== env) return false;
    if (g.environment && !env) return false;
    return true;
  });
}

export const MeContext = createContext<Me | null>(null);

/** The signed-in caller (inside the app, always set). */
export function useMe(): Me {
  const me = useContext(MeContext);
  if (!me) throw new Error("useMe outside a session");
  return me;
}
