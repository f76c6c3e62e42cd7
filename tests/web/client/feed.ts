// The client a TypeScript app would generate from the served /openapi.json
// (openapi-typescript types, openapi-fetch calls), run against a running
// stack: register a fresh user, create posts (one tagged, one with an
// Idempotency-Key, replayed once) and page through GET /api/v1/posts with
// `limit` and `cursor` until `hasNext` is false, three ways (the author's
// posts, one tag, the whole feed). Every value is used as the generated
// types give it, without casts: a wrong type in the document is a compile
// error of this file or is worked around in plain sight (and reported).
//
// Usage: API_BASE=http://127.0.0.1:3000 node build/client/feed.js
// Exits 1 naming every failed check.

import { randomUUID } from "node:crypto";
import createClient, { type Client } from "openapi-fetch";
import type { components, paths } from "../generated/api.js";

type Post = components["schemas"]["Post"];
type Pagination = components["schemas"]["Pagination"];
type ErrorEnvelope = components["schemas"]["ErrorEnvelope"];
type Api = Client<paths>;
type CreatePost = components["schemas"]["CreatePostRequest"];

const base = process.env.API_BASE ?? "http://127.0.0.1:3000";
// Lists are eventually consistent (docs/API.md §1.2): a post created a
// moment ago may take a moment to show. Bounded, so a post that never shows
// fails in seconds.
const SETTLE_TRIES = 20;
const SETTLE_PAUSE_MS = 250;
// The whole feed of a stack the fuzzer has just filled is a few hundred
// posts; a loop that never sees hasNext=false is a bug, not a big feed.
const MAX_PAGES = 1000;

let passed = 0;
const failures: string[] = [];

function check(what: string, ok: boolean, expected: unknown, saw: unknown): boolean {
  if (ok) {
    passed += 1;
  } else {
    failures.push(`${what}: expected ${show(expected)}, saw ${show(saw)}`);
  }
  return ok;
}

function show(value: unknown): string {
  return value === undefined ? "nothing" : typeof value === "string" ? value : JSON.stringify(value);
}

class Fatal extends Error {}

function describeError(status: number, error: ErrorEnvelope): string {
  const fields = (error.errors ?? []).map((e) => `${e.field} ${e.code}`).join(", ");
  return `${status} ${error.code} "${error.message}"${fields ? ` (${fields})` : ""}`;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const runId = `${Date.now().toString(36)}${randomUUID().slice(0, 6)}`;
const api = createClient<paths>({ baseUrl: base });

async function main(): Promise<void> {
  const email = `web-client-${runId}@example.com`;
  const registered = await api.POST("/api/v1/auth/register", {
    body: { name: "Web Client", email, password: "web-client-pass-1" },
  });
  if (registered.error !== undefined) {
    throw new Fatal(`register ${email}: expected 201, saw ${describeError(registered.response.status, registered.error)}`);
  }
  check("register status", registered.response.status === 201, 201, registered.response.status);
  const { accessToken, user } = registered.data.data;
  check("registered user's email", user.email === email, email, user.email);
  check("registered user's role", user.role === "user", "user", user.role);

  const authed = createClient<paths>({
    baseUrl: base,
    headers: { Authorization: `Bearer ${accessToken}` },
  });

  const tag = `web-${runId}`;
  const idempotencyKey = `feed-${runId}`;
  const keyed: CreatePost = { title: `Third ${runId}`, body: "Post sent with an Idempotency-Key." };
  const drafts: CreatePost[] = [
    { title: `First ${runId}`, body: "Plain post from the generated client." },
    { title: `Second ${runId}`, body: "Tagged post.", tags: [tag, "web-client"] },
    keyed,
  ];
  const created: Post[] = [];
  for (const draft of drafts) {
    // A typed header parameter: a document that does not declare
    // Idempotency-Key (docs/API.md §4.4) fails to compile here.
    const params = draft === keyed ? { header: { "Idempotency-Key": idempotencyKey } } : {};
    const res = await authed.POST("/api/v1/posts", { params, body: draft });
    if (res.error !== undefined) {
      throw new Fatal(`create post "${draft.title}": expected 201, saw ${describeError(res.response.status, res.error)}`);
    }
    const post = res.data.data;
    check(`post "${draft.title}" status`, res.response.status === 201, 201, res.response.status);
    check(`post "${draft.title}" title`, post.title === draft.title, draft.title, post.title);
    check(`post "${draft.title}" authorId`, post.authorId === user.id, user.id, post.authorId);
    check(`post "${draft.title}" tags`, sameList(post.tags, draft.tags ?? []), draft.tags ?? [], post.tags);
    check(`post "${draft.title}" version`, post.version === 1, 1, post.version);
    check(`post "${draft.title}" commentCount`, post.commentCount === 0, 0, post.commentCount);
    // §4.0: imageUrl is left out when there is no image (the type allows null).
    check(`post "${draft.title}" has no imageUrl key`, !("imageUrl" in post), "no imageUrl key", post.imageUrl);
    const requestId = res.response.headers.get("x-request-id");
    check(`post "${draft.title}" X-Request-ID = meta.requestId`, requestId === res.data.meta.requestId, res.data.meta.requestId, requestId);
    const remaining = res.response.headers.get("x-ratelimit-remaining");
    check(`post "${draft.title}" X-RateLimit-Remaining`, remaining !== null && /^\d+$/.test(remaining), "a count", remaining);
    created.push(post);
  }

  const replay = await authed.POST("/api/v1/posts", { params: { header: { "Idempotency-Key": idempotencyKey } }, body: keyed });
  if (replay.error !== undefined) {
    throw new Fatal(`replay with Idempotency-Key: expected 201, saw ${describeError(replay.response.status, replay.error)}`);
  }
  const third = created[2];
  check("replay status", replay.response.status === 201, 201, replay.response.status);
  check("replay returns the first post's id", replay.data.data.id === third?.id, third?.id, replay.data.data.id);
  check("replay returns the first post's data", JSON.stringify(replay.data.data) === JSON.stringify(third), third, replay.data.data);

  const createdIds = created.map((p) => p.id);
  const tagged = created[1];

  // The author's posts, two to a page: the three posts, newest first, over
  // two pages.
  const mine = await settle(authed, "authorId feed", { authorId: user.id }, 2, createdIds, (ids) => sameList([...ids].sort(), [...createdIds].sort()));
  check("authorId feed holds exactly the three posts", sameList([...mine.ids].sort(), [...createdIds].sort()), createdIds, mine.ids);
  check("authorId feed pages", mine.pages === 2, 2, mine.pages);
  check("authorId feed is newest first", isNewestFirst(mine.posts), "createdAt non-increasing", mine.posts.map((p) => p.createdAt));

  // One tag, one to a page: the tagged post alone, on one page.
  const byTag = await settle(authed, "tag feed", { tag }, 1, tagged ? [tagged.id] : [], (ids) => ids.length === 1);
  check("tag feed holds only the tagged post", sameList(byTag.ids, tagged ? [tagged.id] : []), [tagged?.id], byTag.ids);
  check("tag feed pages", byTag.pages === 1, 1, byTag.pages);
  const tags = byTag.posts[0]?.tags ?? [];
  check("tag feed post's tags, in order", sameList(tags, [tag, "web-client"]), [tag, "web-client"], tags);

  // The whole feed, whatever else the stack holds.
  const all = await settle(authed, "whole feed", {}, 20, createdIds, () => true);
  check("whole feed has no post twice", new Set(all.ids).size === all.ids.length, `${all.ids.length} distinct`, new Set(all.ids).size);
  check("whole feed is newest first", isNewestFirst(all.posts), "createdAt non-increasing", "out of order");

  console.log(
    `feed: user ${user.id}; posts ${createdIds.join(", ")}; authorId feed ${mine.pages} pages, ` +
      `tag feed ${byTag.pages} page, whole feed ${all.ids.length} posts in ${all.pages} pages`,
  );
}

interface Paged {
  ids: string[];
  posts: Post[];
  pages: number;
}

type Filter = { authorId?: string; tag?: string };

// Pages through the list until every wanted id is seen and `done` holds,
// retrying the whole walk while the list catches up.
async function settle(client: Api, name: string, filter: Filter, limit: number, wanted: string[], done: (ids: string[]) => boolean): Promise<Paged> {
  let last: Paged = { ids: [], posts: [], pages: 0 };
  for (let attempt = 1; attempt <= SETTLE_TRIES; attempt++) {
    last = await walk(client, name, filter, limit);
    if (wanted.every((id) => last.ids.includes(id)) && done(last.ids)) {
      return last;
    }
    await sleep(SETTLE_PAUSE_MS);
  }
  const missing = wanted.filter((id) => !last.ids.includes(id));
  check(`${name} shows the posts created`, missing.length === 0, wanted, `missing ${missing.join(", ")} of ${last.ids.length} seen`);
  return last;
}

async function walk(client: Api, name: string, filter: Filter, limit: number): Promise<Paged> {
  const seen: Paged = { ids: [], posts: [], pages: 0 };
  let cursor: string | undefined;
  while (seen.pages < MAX_PAGES) {
    const query = cursor === undefined ? { ...filter, limit } : { ...filter, limit, cursor };
    const res = await client.GET("/api/v1/posts", { params: { query } });
    if (res.error !== undefined) {
      throw new Fatal(`${name} page ${seen.pages + 1}: expected 200, saw ${describeError(res.response.status, res.error)}`);
    }
    seen.pages += 1;
    const page = `${name} page ${seen.pages}`;
    const { data, pagination } = res.data;
    checkEnvelope(page, res.data.success, pagination, limit, data.length);
    seen.posts.push(...data);
    seen.ids.push(...data.map((p) => p.id));
    if (!pagination.hasNext) {
      return seen;
    }
    if (pagination.nextCursor === undefined) {
      throw new Fatal(`${page}: hasNext is true but nextCursor is missing`);
    }
    cursor = pagination.nextCursor;
  }
  throw new Fatal(`${name}: hasNext still true after ${MAX_PAGES} pages`);
}

function checkEnvelope(page: string, success: boolean, pagination: Pagination, limit: number, count: number): void {
  // The wire value, not the type: a field the server left out would still
  // type-check here.
  const wire: Record<string, unknown> = { ...pagination };
  check(`${page} success`, success === true, true, success);
  check(`${page} pagination.limit`, wire.limit === limit, limit, wire.limit);
  check(`${page} pagination.hasNext is a boolean`, typeof wire.hasNext === "boolean", "boolean", wire.hasNext);
  // §1.2: nextCursor is there exactly when hasNext is true.
  check(`${page} nextCursor iff hasNext`, (typeof wire.nextCursor === "string") === (wire.hasNext === true), `nextCursor present=${String(wire.hasNext)}`, wire.nextCursor ?? "absent");
  check(`${page} size within limit`, count <= limit, `<= ${limit}`, count);
  // hasNext is exact: a page is never empty unless the whole list is.
  check(`${page} is not empty`, count > 0 || (page.endsWith(" 1") && wire.hasNext === false), "at least one post", count);
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((value, i) => value === b[i]);
}

function isNewestFirst(posts: readonly Post[]): boolean {
  return posts.every((post, i) => i === 0 || (posts[i - 1]?.createdAt ?? "") >= post.createdAt);
}

try {
  await main();
} catch (err) {
  failures.push(err instanceof Fatal ? err.message : `unexpected: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
}
if (failures.length > 0) {
  for (const failure of failures) console.error(`FAIL ${failure}`);
  console.error(`feed: ${passed} passed, ${failures.length} failed`);
  process.exit(1);
}
console.log(`feed: ${passed} passed, 0 failed`);
