// What the generated types must refuse, because docs/API.md refuses it on
// the wire: each value below is one the server answers with a 400 or 422,
// so a typed client should not compile it. Each is preceded by an
// expect-error directive saying what the document must say: when the
// generated types accept the value, tsc reports the directive as unused at
// that line (infra/scripts/web.sh prints the directive's text).
//
// Fields are checked by assigning to the schema's type, so that the field
// itself is the only thing that can fail. openapi-fetch infers a call's
// options as a type parameter, so excess-property checks never reach a
// call's `body`: an unknown field passes a call whatever the document says,
// and is only checked here.
//
// Type-checked only (tsconfig.contract.json); nothing here runs.

import type { Client } from "openapi-fetch";
import type { components, paths } from "../generated/api.js";

type S = components["schemas"];

// §1.1: a required field may not be null ("null counts as missing", a 422
// REQUIRED), so its type must not admit null.
// @ts-expect-error RegisterRequest.name must be string, not nullable
export const registerName: S["RegisterRequest"] = { name: null, email: "a@example.com", password: "password-1" };
// @ts-expect-error RegisterRequest.email must be string, not nullable
export const registerEmail: S["RegisterRequest"] = { name: "Ada", email: null, password: "password-1" };
// @ts-expect-error RegisterRequest.password must be string, not nullable
export const registerPassword: S["RegisterRequest"] = { name: "Ada", email: "a@example.com", password: null };
// @ts-expect-error LoginRequest.password must be string, not nullable
export const loginPassword: S["LoginRequest"] = { email: "a@example.com", password: null };
// @ts-expect-error RefreshRequest.refreshToken must be string, not nullable
export const refreshToken: S["RefreshRequest"] = { refreshToken: null };
// @ts-expect-error CreatePostRequest.title must be string, not nullable
export const postTitle: S["CreatePostRequest"] = { title: null, body: "text" };
// @ts-expect-error CreatePostRequest.body must be string, not nullable
export const postBody: S["CreatePostRequest"] = { title: "t", body: null };
// @ts-expect-error CreateCommentRequest.body must be string, not nullable
export const commentBody: S["CreateCommentRequest"] = { body: null };
// @ts-expect-error PatchPostRequest.version must be an integer, not nullable (§4.4: required)
export const patchVersion: S["PatchPostRequest"] = { version: null };
// @ts-expect-error CreateUploadRequest.size must be an integer, not nullable
export const uploadSize: S["CreateUploadRequest"] = { filename: "a.png", contentType: "image/png", size: null, purpose: "avatar" };

// §4.6 and §4.3: the enums the contract lists (the schemas Purpose, Role and
// UserStatus exist, but the requests do not use them).
// @ts-expect-error CreateUploadRequest.purpose must be Purpose ("avatar" | "post-image")
export const uploadPurpose: S["CreateUploadRequest"] = { filename: "a.png", contentType: "image/png", size: 1, purpose: "banner" };
// @ts-expect-error AdminPatchUserRequest.role must be Role ("user" | "admin")
export const adminRole: S["AdminPatchUserRequest"] = { role: "root" };
// @ts-expect-error AdminPatchUserRequest.status must be UserStatus ("active" | "suspended" | "deleted")
export const adminStatus: S["AdminPatchUserRequest"] = { status: "banned" };

// Refused already; kept so that a document that loosens them fails here.
// @ts-expect-error CreatePostRequest.body is required
export const postNoBody: S["CreatePostRequest"] = { title: "t" };
// @ts-expect-error CreatePostRequest has additionalProperties: false (§1.1: an unknown field is a 400)
export const postUnknown: S["CreatePostRequest"] = { title: "t", body: "b", pinned: true };
// @ts-expect-error Role has no "root"
export const role: S["Role"] = "root";

export async function refusedCalls(api: Client<paths>): Promise<void> {
  // @ts-expect-error GET /api/v1/posts: limit is an integer (§1.2)
  await api.GET("/api/v1/posts", { params: { query: { limit: "20" } } });
  // @ts-expect-error GET /api/v1/posts/{id}: the path parameter id is required
  await api.GET("/api/v1/posts/{id}", {});
  // @ts-expect-error POST /api/v1/posts: a body is required
  await api.POST("/api/v1/posts", {});
  // @ts-expect-error there is no PUT on /api/v1/posts/{id}
  await api.PUT("/api/v1/posts/{id}", { params: { path: { id: "x" } } });
}

// What a reader of a response may rely on (§1, §4.0), checked by
// assignment: each line fails to compile when the type is looser.
export function readsOfTheContract(post: S["Post"], page: S["Pagination"], error: S["ErrorEnvelope"], user: S["UserResponse"]): void {
  const title: string = post.title;
  const tags: string[] = post.tags;
  const version: number = post.version;
  const author: string = post.author.name;
  const hasNext: boolean = page.hasNext;
  const cursor: string | undefined = page.nextCursor;
  const code: "BAD_REQUEST" | "UNAUTHORIZED" | "FORBIDDEN" | "NOT_FOUND" | "METHOD_NOT_ALLOWED" | "CONFLICT" |
    "PAYLOAD_TOO_LARGE" | "UNSUPPORTED_MEDIA_TYPE" | "VALIDATION_ERROR" | "RATE_LIMIT_EXCEEDED" |
    "INTERNAL_ERROR" | "SERVICE_UNAVAILABLE" = error.code;
  const userRole: "user" | "admin" = user.role;
  const status: "active" | "suspended" | "deleted" = user.status;
  void [title, tags, version, author, hasNext, cursor, code, userRole, status];
}
