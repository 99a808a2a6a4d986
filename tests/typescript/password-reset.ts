// The SPA's password reset, as README "Building the SPA on this API" shows it. Written against
// POST /api/auth/password-reset {email} -> 202 and POST /api/auth/password-reset/confirm
// {token, password} -> 204: tests/test_typed_clients.py type-checks it once /api/openapi.json
// has those routes (PENDING_ROUTES there).
import { ApiError, type Api } from "./spa";

/** "Forgot your password?": always 202, whether or not the account exists (nobody can tell). */
export async function requestPasswordReset(api: Api, email: string): Promise<void> {
  const { error } = await api.POST("/api/auth/password-reset", { body: { email } });
  if (error) throw new ApiError(error); // 429 when asked too often, for this client or this account
}

/** The page the emailed link opens (the token is in its URL): single use, valid 30 minutes. */
export async function resetPassword(api: Api, token: string, password: string): Promise<void> {
  const { error } = await api.POST("/api/auth/password-reset/confirm", { body: { token, password } });
  if (error) throw new ApiError(error); // a used, expired or unknown token is refused
  // 204: the password is set and every session has ended: log in with the new password.
}
