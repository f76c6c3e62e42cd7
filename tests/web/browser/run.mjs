// A real browser (headless Chromium through playwright-core) against a
// running stack, for what only a browser enforces: CORS (preflights, which
// response headers script may read), the WebSocket API from page script,
// and the /docs page rendering with nothing fetched from elsewhere.
//
//   API_BASE=http://127.0.0.1:3000 WS_URL=ws://127.0.0.1:3001 \
//   PAGE_PORT=5173 OTHER_PAGE_PORT=5174 node browser/run.mjs
//
// The stack must have been started with
// CORS_ALLOWED_ORIGINS=http://127.0.0.1:$PAGE_PORT (and not `*`): this
// script serves a blank page on both ports of 127.0.0.1, and the page on
// OTHER_PAGE_PORT is the origin the API must refuse. CHROMIUM names the
// browser binary (default /usr/bin/chromium, Debian's). DOCS_URL overrides
// the page checked as /docs.
//
// Exits 1 naming every failed check, 2 on a usage problem.

import http from 'node:http';
import { chromium } from 'playwright-core';

const usage = (message) => {
  console.error(`browser: ${message}`);
  process.exit(2);
};
const trimSlash = (url) => url.replace(/\/+$/, '');
const API_BASE = trimSlash(process.env.API_BASE ?? 'http://127.0.0.1:3000');
const WS_URL = trimSlash(process.env.WS_URL ?? 'ws://127.0.0.1:3001');
const PAGE_PORT = Number(process.env.PAGE_PORT);
const OTHER_PAGE_PORT = Number(process.env.OTHER_PAGE_PORT);
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const DOCS_URL = process.env.DOCS_URL ?? `${API_BASE}/docs`;
if (!Number.isInteger(PAGE_PORT) || !Number.isInteger(OTHER_PAGE_PORT) || PAGE_PORT === OTHER_PAGE_PORT) {
  usage('PAGE_PORT and OTHER_PAGE_PORT must be two different port numbers');
}
const ALLOWED_ORIGIN = `http://127.0.0.1:${PAGE_PORT}`;
const OTHER_ORIGIN = `http://127.0.0.1:${OTHER_PAGE_PORT}`;
const ALLOWED_SECTION = `allowed origin ${ALLOWED_ORIGIN}`;
const OTHER_SECTION = `not-allowed origin ${OTHER_ORIGIN}`;
const DOCS_SECTION = `docs ${DOCS_URL}`;

// Without the background-networking flags Chromium reaches for Google's
// services at start; this machine (and CI) has no network but 127.0.0.1.
// The resolver rule makes any other host name fail to resolve, so a page
// that needs one fails here as it would offline, instead of hanging.
const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
];
// How long /docs may take to render the operations once its network is
// idle: the renderer is a few MB of script parsed on a busy 2-core machine
// (Scalar's standalone bundle renders in about 2 s here).
const DOCS_IDLE_MS = 10_000;
const DOCS_RENDER_MS = 8_000;
// The share of the document's operations the rendered page must show (by
// summary, or by method and path): renderers collapse some sections.
const DOCS_MIN_SHARE = 0.8;
// Lists are eventually consistent (docs/API.md §1.2).
const FEED_TRIES = 20;
const FEED_PAUSE_MS = 250;
const WS_FRAME_MS = 5_000;

const results = [];
// What was seen that the contract does not decide, printed with the summary.
const notes = [];
const check = (section, what, ok, expected, saw) => {
  results.push({ section, what, ok, expected, saw });
  return ok;
};
const show = (value) => (value === undefined ? 'nothing' : typeof value === 'string' ? value : JSON.stringify(value));
const isLoopback = (url) => {
  try {
    const { protocol, hostname } = new URL(url);
    // data: and blob: URLs have no host and never leave the browser.
    return ['data:', 'blob:', 'about:'].includes(protocol) || hostname === '127.0.0.1';
  } catch {
    return false;
  }
};
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
// DevTools events arrive a moment after the fetch they describe settles.
async function eventually(find, ms = 2_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const found = find();
    if (found !== undefined || Date.now() >= deadline) return found;
    await sleep(50);
  }
}
const runId = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;
const ULID = /^[0-9A-HJKMNP-TV-Z]{26}$/;

// A blank page on each port, so that page script runs with that origin.
function servePages() {
  const page = '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>web test origin</title></head><body></body></html>';
  const servers = [PAGE_PORT, OTHER_PAGE_PORT].map((port) => {
    const server = http.createServer((req, res) => {
      if (req.url === '/') {
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
        res.end(page);
      } else {
        res.writeHead(404).end();
      }
    });
    return new Promise((resolve, reject) => {
      server.once('error', (err) => reject(new Error(`cannot serve the page on 127.0.0.1:${port}: ${err.message}`)));
      server.listen(port, '127.0.0.1', () => resolve(server));
    });
  });
  return Promise.all(servers);
}

// What the network service saw, from the DevTools protocol: Playwright's own
// request events leave out preflights, and do not say why CORS refused a
// request. (page.route is not used on the CORS pages: with interception on,
// Playwright answers every preflight itself with a 204 that allows the
// origin, so the API's refusal is never seen and the request goes out.)
async function networkLog(page) {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Network.enable');
  const requests = new Map();
  const log = { requests: [], failures: [], responses: [] };
  cdp.on('Network.requestWillBeSent', (e) => {
    const entry = { id: e.requestId, url: e.request.url, method: e.request.method, type: e.type };
    requests.set(e.requestId, entry);
    log.requests.push(entry);
  });
  cdp.on('Network.responseReceived', (e) => {
    log.responses.push({ ...requests.get(e.requestId), status: e.response.status, type: e.type, headers: e.response.headers });
  });
  cdp.on('Network.loadingFailed', (e) => {
    log.failures.push({ ...requests.get(e.requestId), errorText: e.errorText, cors: e.corsErrorStatus?.corsError, blocked: e.blockedReason, type: e.type });
  });
  return log;
}

function watchPage(page) {
  const seen = { outside: [], consoleErrors: [], pageErrors: [] };
  page.on('request', (r) => { if (!isLoopback(r.url())) seen.outside.push(r.url()); });
  page.on('websocket', (ws) => { if (!isLoopback(ws.url().replace(/^ws/, 'http'))) seen.outside.push(ws.url()); });
  page.on('console', (m) => { if (m.type() === 'error') seen.consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => seen.pageErrors.push(e.message));
  return seen;
}

// fetch() run by the page itself, so the browser applies CORS. Returns what
// script can read: the status, the JSON body and the headers asked for
// (null when CORS hides one), or the error fetch rejected with.
function pageFetch(page, path, init = {}) {
  return page.evaluate(async ({ url, init }) => {
    try {
      const res = await fetch(url, init);
      const text = await res.text();
      let body = null;
      try { body = JSON.parse(text); } catch { body = text; }
      const header = (name) => res.headers.get(name);
      return {
        rejected: null,
        status: res.status,
        body,
        requestId: header('x-request-id'),
        remaining: header('x-ratelimit-remaining'),
        limit: header('x-ratelimit-limit'),
      };
    } catch (err) {
      return { rejected: `${err.name}: ${err.message}` };
    }
  }, { url: `${API_BASE}${path}`, init });
}

const json = (body, headers = {}) => ({
  method: 'POST',
  headers: { 'Content-Type': 'application/json', ...headers },
  body: JSON.stringify(body),
});
const describe = (res) => (res.rejected ? `fetch rejected (${res.rejected})` : `${res.status} ${show(res.body?.code ?? res.body?.message ?? res.body)}`);

async function register(page, section, label) {
  const email = `web-browser-${label}-${runId}@example.com`;
  const requestId = `web-${runId}-${label}`;
  const res = await pageFetch(page, '/api/v1/auth/register', json(
    { name: `Browser ${label}`, email, password: 'web-browser-pass-1' },
    { 'X-Request-ID': requestId },
  ));
  if (!check(section, `register ${label} (JSON POST, preflighted)`, !res.rejected && res.status === 201, '201', describe(res))) {
    throw new Error(`register ${label} failed: ${describe(res)}`);
  }
  check(section, `register ${label}: X-Request-ID readable and echoed`, res.requestId === requestId, requestId, res.requestId);
  return { email, token: res.body.data.accessToken, user: res.body.data.user, res };
}

async function allowedOrigin(browser) {
  const section = ALLOWED_SECTION;
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    const seen = watchPage(page);
    const net = await networkLog(page);
    await page.goto(`${ALLOWED_ORIGIN}/`);

    const health = await pageFetch(page, '/health');
    check(section, 'GET /health (simple request) readable', !health.rejected && health.status === 200, '200', describe(health));

    const ada = await register(page, section, 'ada');
    const remaining = ada.res.remaining;
    check(section, 'X-RateLimit-Remaining readable (exposed)', remaining !== null && /^\d+$/.test(remaining), 'a count', remaining);
    // §5/§6: sent on every /api/ response but not exposed, so script sees
    // null. Its presence on the wire is checked from Node (below), so a null
    // here means "hidden", not "missing".
    check(section, 'X-RateLimit-Limit hidden from script (not exposed)', ada.res.limit === null, null, ada.res.limit);
    const wire = await fetch(`${API_BASE}/api/v1/posts`, { headers: { Origin: ALLOWED_ORIGIN } });
    check(section, 'X-RateLimit-Limit is sent (seen from Node)', wire.headers.get('x-ratelimit-limit') !== null, 'a header', wire.headers.get('x-ratelimit-limit'));
    check(section, 'Access-Control-Expose-Headers (seen from Node)', /x-ratelimit-remaining/i.test(wire.headers.get('access-control-expose-headers') ?? ''),
      'X-Request-ID, Retry-After, X-RateLimit-Remaining', wire.headers.get('access-control-expose-headers'));

    const auth = { Authorization: `Bearer ${ada.token}` };
    const key = `web-${runId}-post`;
    const draft = { title: `Browser post ${runId}`, body: 'Posted by page script.', tags: ['web-browser'] };
    const first = await pageFetch(page, '/api/v1/posts', json(draft, { ...auth, 'Idempotency-Key': key }));
    check(section, 'POST /api/v1/posts with Authorization and Idempotency-Key', !first.rejected && first.status === 201, '201', describe(first));
    const replay = await pageFetch(page, '/api/v1/posts', json(draft, { ...auth, 'Idempotency-Key': key }));
    check(section, 'replay with the same Idempotency-Key', !replay.rejected && replay.status === 201, '201', describe(replay));
    const postId = first.body?.data?.id;
    check(section, 'replay answers the same post id', ULID.test(postId ?? '') && replay.body?.data?.id === postId, postId, replay.body?.data?.id);
    check(section, 'replay answers the same data', first.body?.data !== undefined && show(replay.body?.data) === show(first.body?.data), first.body?.data, replay.body?.data);
    check(section, 'replay has its own meta.requestId', typeof replay.body?.meta?.requestId === 'string' && replay.body.meta.requestId !== first.body?.meta?.requestId,
      `not ${first.body?.meta?.requestId}`, replay.body?.meta?.requestId);
    const preflights = net.requests.filter((r) => r.method === 'OPTIONS' && r.url === `${API_BASE}/api/v1/posts`);
    const okPreflight = net.responses.find((r) => r.method === 'OPTIONS' && r.url === `${API_BASE}/api/v1/posts` && r.status === 204);
    check(section, 'the POST was preflighted (OPTIONS 204)', preflights.length > 0 && okPreflight !== undefined, 'an OPTIONS 204 before the POST',
      preflights.length ? `${preflights.length} OPTIONS, status ${okPreflight?.status ?? 'none 204'}` : 'no OPTIONS');
    const allowHeaders = Object.entries(okPreflight?.headers ?? {}).find(([name]) => name.toLowerCase() === 'access-control-allow-headers')?.[1] ?? '';
    check(section, 'preflight allows Authorization, Content-Type, Idempotency-Key, X-Request-ID',
      ['authorization', 'content-type', 'idempotency-key', 'x-request-id'].every((h) => allowHeaders.toLowerCase().includes(h)),
      'Authorization, Content-Type, Idempotency-Key, X-Request-ID', allowHeaders);

    let feed;
    for (let attempt = 1; attempt <= FEED_TRIES; attempt++) {
      feed = await pageFetch(page, `/api/v1/posts?authorId=${ada.user.id}&limit=10`, { headers: auth });
      if (feed.rejected || feed.status !== 200 || feed.body?.data?.some((p) => p.id === postId)) break;
      await sleep(FEED_PAUSE_MS);
    }
    check(section, 'GET /api/v1/posts (Authorization, preflighted)', !feed.rejected && feed.status === 200, '200', describe(feed));
    const feedIds = (feed.body?.data ?? []).map((p) => p.id);
    check(section, 'the feed shows the post once', feedIds.length === 1 && feedIds[0] === postId, [postId], feedIds);
    check(section, 'the feed has pagination', feed.body?.pagination?.hasNext === false && feed.body?.pagination?.limit === 10,
      { limit: 10, hasNext: false }, feed.body?.pagination);

    // §6: error responses carry the CORS headers too, so script reads them.
    const noAuth = await pageFetch(page, '/api/v1/posts');
    check(section, '401 readable (errors carry CORS headers)', !noAuth.rejected && noAuth.status === 401 && noAuth.body?.code === 'UNAUTHORIZED', '401 UNAUTHORIZED', describe(noAuth));
    const missing = await pageFetch(page, '/api/v1/posts/01ARZ3NDEKTSV4RRFFQ69G5FAV', { headers: auth });
    check(section, '404 of an unknown post readable (preflighted)', !missing.rejected && missing.status === 404 && missing.body?.code === 'NOT_FOUND', '404 NOT_FOUND', describe(missing));
    const noRoute = await pageFetch(page, '/api/v1/nope');
    check(section, "404 of an unknown route readable (simple request, the gateway's own error)", !noRoute.rejected && noRoute.status === 404 && noRoute.body?.code === 'NOT_FOUND', '404 NOT_FOUND', describe(noRoute));
    // §6 promises a 204 preflight on the paths of routes only; what an
    // unknown path answers decides whether script sees its 404 or a CORS
    // error.
    const unknownPreflight = await fetch(`${API_BASE}/api/v1/nope`, {
      method: 'OPTIONS',
      headers: { Origin: ALLOWED_ORIGIN, 'Access-Control-Request-Method': 'GET', 'Access-Control-Request-Headers': 'authorization' },
    });
    notes.push(`a preflight to an unknown path answers ${unknownPreflight.status}, so script calling an unknown route with Authorization gets ${
      unknownPreflight.ok ? 'the 404 itself' : 'a CORS TypeError, not the 404'}`);

    const grace = await register(page, section, 'grace');
    await chat(page, section, ada, grace);

    const corsComplaints = seen.consoleErrors.filter((m) => /CORS|Content Security Policy/i.test(m));
    check(section, 'no CORS or CSP errors in the console', corsComplaints.length === 0, 'none', corsComplaints);
    check(section, 'no page errors', seen.pageErrors.length === 0, 'none', seen.pageErrors);
    check(section, 'no request outside 127.0.0.1', seen.outside.length === 0, 'none', seen.outside);
  } finally {
    await context.close();
  }
}

// Two users in one room over two sockets: join, the echo to the sender and
// the broadcast to the other member, and the error frames of §7.4.
async function chat(page, section, ada, grace) {
  const room = `web-${runId}`;
  const text = `hello from ${runId}`;
  const ws = await page.evaluate(async ({ wsUrl, tokens, room, text, frameMs }) => {
    const connect = (token) => new Promise((resolve) => {
      const socket = new WebSocket(`${wsUrl}?token=${encodeURIComponent(token)}`);
      const conn = { socket, frames: [], wake: () => {} };
      socket.onmessage = (ev) => {
        try { conn.frames.push(JSON.parse(ev.data)); } catch { conn.frames.push({ unparsable: String(ev.data) }); }
        conn.wake();
      };
      socket.onopen = () => resolve({ conn, opened: true });
      socket.onclose = (ev) => resolve({ conn, opened: false, code: ev.code });
      setTimeout(() => resolve({ conn, opened: false, code: 'no answer' }), frameMs);
    });
    // The first frame matching `want`, taken out of the queue, or a note of
    // what did come.
    const next = (conn, want, what) => new Promise((resolve) => {
      // A settled wait must stop looking, or it would take the next
      // matching frame out of the queue for nobody.
      const done = (value) => {
        clearTimeout(timer);
        conn.wake = () => {};
        resolve(value);
      };
      const look = () => {
        const i = conn.frames.findIndex(want);
        if (i < 0) return false;
        done(conn.frames.splice(i, 1)[0]);
        return true;
      };
      const timer = setTimeout(() => done({ missing: what, had: conn.frames.slice() }), frameMs);
      conn.wake = look;
      look();
    });
    const out = {};
    const a = await connect(tokens.ada);
    const b = await connect(tokens.grace);
    out.openA = a.opened ? true : a.code;
    out.openB = b.opened ? true : b.code;
    if (!a.opened || !b.opened) return out;
    const send = (conn, frame) => conn.socket.send(JSON.stringify(frame));
    send(a.conn, { action: 'ping' });
    out.pong = await next(a.conn, (f) => f.type === 'pong', 'pong');
    send(a.conn, { action: 'chat.join', room });
    out.joinedA = await next(a.conn, (f) => f.type === 'chat.joined', 'chat.joined for ada');
    send(b.conn, { action: 'chat.join', room });
    out.joinedB = await next(b.conn, (f) => f.type === 'chat.joined', 'chat.joined for grace');
    out.joinedBSeenByA = await next(a.conn, (f) => f.type === 'chat.joined', 'chat.joined of grace, to ada');
    send(a.conn, { action: 'chat.send', room, text });
    out.echo = await next(a.conn, (f) => f.type === 'chat.message', 'chat.message echoed to ada');
    out.broadcast = await next(b.conn, (f) => f.type === 'chat.message', 'chat.message broadcast to grace');
    send(b.conn, { action: 'chat.send', room: `${room}-elsewhere`, text });
    out.forbidden = await next(b.conn, (f) => f.type === 'error', 'error frame for a room not joined');
    send(a.conn, { action: 'chat.shout' });
    out.unknown = await next(a.conn, (f) => f.type === 'error', 'error frame for an unknown action');
    a.conn.socket.close(1000);
    b.conn.socket.close(1000);
    const refused = await connect('not-a-token');
    out.badToken = refused.opened ? 'opened' : refused.code;
    return out;
  }, { wsUrl: WS_URL, tokens: { ada: ada.token, grace: grace.token }, room, text, frameMs: WS_FRAME_MS });

  check(section, 'WebSocket opens with ?token= (ada)', ws.openA === true, 'open', ws.openA);
  check(section, 'WebSocket opens with ?token= (grace)', ws.openB === true, 'open', ws.openB);
  if (ws.openA !== true || ws.openB !== true) return;
  check(section, 'ping answered with pong', show(ws.pong) === show({ type: 'pong' }), { type: 'pong' }, ws.pong);
  const joined = (frame, user) => frame?.type === 'chat.joined' && frame.room === room && frame.user?.id === user.id
    && frame.user?.name === user.name && typeof frame.user?.createdAt === 'string' && !('avatarUrl' in (frame.user ?? {}));
  check(section, 'chat.joined to the joiner', joined(ws.joinedA, ada.user), `chat.joined ${room} by ${ada.user.id}`, ws.joinedA);
  check(section, 'chat.joined to grace', joined(ws.joinedB, grace.user), `chat.joined ${room} by ${grace.user.id}`, ws.joinedB);
  check(section, 'chat.joined of grace to ada (a member)', joined(ws.joinedBSeenByA, grace.user), `chat.joined ${room} by ${grace.user.id}`, ws.joinedBSeenByA);
  const message = (frame) => frame?.type === 'chat.message' && frame.room === room && frame.text === text
    && frame.from?.id === ada.user.id && ULID.test(frame.id ?? '') && !Number.isNaN(Date.parse(frame.sentAt ?? ''));
  check(section, 'chat.message echoed to the sender', message(ws.echo), `chat.message "${text}" from ${ada.user.id}`, ws.echo);
  check(section, 'chat.message broadcast to the other member', message(ws.broadcast), `chat.message "${text}" from ${ada.user.id}`, ws.broadcast);
  check(section, 'echo and broadcast are one message (same id)', ws.echo?.id !== undefined && ws.echo?.id === ws.broadcast?.id, ws.echo?.id, ws.broadcast?.id);
  check(section, 'chat.send to a room not joined: FORBIDDEN', ws.forbidden?.code === 'FORBIDDEN', 'error FORBIDDEN', ws.forbidden);
  check(section, 'unknown action: UNKNOWN_ACTION', ws.unknown?.code === 'UNKNOWN_ACTION', 'error UNKNOWN_ACTION', ws.unknown);
  // A refused handshake never opens; the browser reports an abnormal close.
  check(section, 'a bad token is refused at the handshake', ws.badToken === 1006, 'close 1006 without open', ws.badToken);
}

async function otherOrigin(browser) {
  const section = OTHER_SECTION;
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    const seen = watchPage(page);
    const net = await networkLog(page);
    await page.goto(`${OTHER_ORIGIN}/`);

    // A simple request is sent as is; the answer comes without
    // Access-Control-Allow-Origin, so fetch rejects and script reads nothing.
    const simple = await pageFetch(page, '/api/v1/posts');
    check(section, 'simple GET /api/v1/posts rejects', /^TypeError/.test(simple.rejected ?? ''), 'TypeError', simple.rejected ?? describe(simple));
    const health = await pageFetch(page, '/health');
    check(section, 'simple GET /health rejects', /^TypeError/.test(health.rejected ?? ''), 'TypeError', health.rejected ?? describe(health));
    const simpleFailure = await eventually(() => net.failures.find((f) => f.method === 'GET' && f.url === `${API_BASE}/api/v1/posts`));
    check(section, 'the GET reached the API and was answered without Allow-Origin', simpleFailure?.cors === 'MissingAllowOriginHeader',
      'corsError MissingAllowOriginHeader', simpleFailure ? `${simpleFailure.errorText} ${simpleFailure.cors}` : 'no failure recorded');

    // A JSON POST needs a preflight; the preflight is refused, so the POST
    // itself is never sent.
    const email = `web-browser-refused-${runId}@example.com`;
    const post = await pageFetch(page, '/api/v1/auth/register', json({ name: 'Refused', email, password: 'web-browser-pass-1' }));
    check(section, 'JSON POST /api/v1/auth/register rejects', /^TypeError/.test(post.rejected ?? ''), 'TypeError', post.rejected ?? describe(post));
    const postFailure = await eventually(() => net.failures.find((f) => f.url === `${API_BASE}/api/v1/auth/register`));
    check(section, 'the POST was refused at its preflight', /^Preflight/.test(postFailure?.cors ?? ''),
      'corsError Preflight...', postFailure ? `${postFailure.errorText} ${postFailure.cors}` : 'no failure recorded');
    // The API is the judge of "never sent": the address is still free.
    const after = await fetch(`${API_BASE}/api/v1/auth/register`, {
      method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ name: 'Refused', email, password: 'web-browser-pass-1' }),
    });
    check(section, 'the refused POST created nothing (registering the email from Node is a 201)', after.status === 201, 201, after.status);

    const authed = await pageFetch(page, '/api/v1/posts', { headers: { Authorization: 'Bearer x' } });
    check(section, 'GET with Authorization (preflighted) rejects', /^TypeError/.test(authed.rejected ?? ''), 'TypeError', authed.rejected ?? describe(authed));


    // API Gateway applies no CORS to WebSocket handshakes; nothing in §6 or
    // §7 says otherwise, so this is recorded, not judged.
    const reg = await fetch(`${API_BASE}/api/v1/auth/register`, {
      method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ name: 'Other origin', email: `web-browser-other-${runId}@example.com`, password: 'web-browser-pass-1' }),
    });
    const token = (await reg.json())?.data?.accessToken ?? '';
    const opened = await page.evaluate(({ url, ms }) => new Promise((resolve) => {
      const socket = new WebSocket(url);
      socket.onopen = () => { socket.close(1000); resolve('opened'); };
      socket.onclose = (ev) => resolve(`refused (close ${ev.code})`);
      setTimeout(() => resolve('no answer'), ms);
    }), { url: `${WS_URL}?token=${encodeURIComponent(token)}`, ms: WS_FRAME_MS });
    notes.push(`a WebSocket from the not-allowed origin with a valid token: ${opened}`);

    check(section, 'no page errors', seen.pageErrors.length === 0, 'none', seen.pageErrors);
    check(section, 'no request outside 127.0.0.1', seen.outside.length === 0, 'none', seen.outside);
  } finally {
    await context.close();
  }
}

// The operations of the served document, each with what a renderer shows
// of it: its summary, or its method and path.
async function operations() {
  const res = await fetch(`${API_BASE}/openapi.json`);
  if (res.status !== 200) throw new Error(`GET /openapi.json: expected 200, saw ${res.status}`);
  const doc = await res.json();
  const methods = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];
  const ops = Object.entries(doc.paths ?? {}).flatMap(([path, item]) => methods
    .filter((m) => item[m])
    .map((m) => ({ method: m.toUpperCase(), path, summary: item[m].summary ?? null })));
  return { title: doc.info?.title ?? '', ops };
}

async function docs(browser) {
  const section = DOCS_SECTION;
  const { title, ops } = await operations();
  const context = await browser.newContext();
  try {
    // Same-origin only, so no preflight is involved and interception may
    // abort whatever leaves 127.0.0.1 (recorded by watchPage).
    await context.route('**/*', (route) => (isLoopback(route.request().url()) ? route.continue() : route.abort('blockedbyclient')));
    await context.addInitScript(() => {
      window.__cspViolations = [];
      document.addEventListener('securitypolicyviolation', (e) => {
        window.__cspViolations.push(`${e.effectiveDirective} refused ${e.blockedURI || 'inline'}${e.sourceFile ? ` (${e.sourceFile}:${e.lineNumber})` : ''}`);
      });
    });
    const page = await context.newPage();
    const seen = watchPage(page);
    const failedLoads = [];
    page.on('response', (r) => { if (r.status() >= 400) failedLoads.push(`${r.status()} ${r.url()}`); });
    page.on('requestfailed', (r) => { if (isLoopback(r.url())) failedLoads.push(`${r.failure()?.errorText} ${r.url()}`); });

    const response = await page.goto(DOCS_URL, { waitUntil: 'load' });
    check(section, 'status', response?.status() === 200, 200, response?.status());
    check(section, 'content type', /^text\/html/.test(response?.headers()['content-type'] ?? ''), 'text/html', response?.headers()['content-type']);
    const csp = response?.headers()['content-security-policy'] ?? null;
    check(section, 'has a Content-Security-Policy', csp !== null, 'a CSP header', csp);
    // Subresource integrity: the browser refuses a vendored script that is
    // not the pinned file (and says so in the console, checked below).
    const scripts = await page.evaluate(() => [...document.querySelectorAll('script[src]')]
      .map((el) => ({ src: el.getAttribute('src'), integrity: el.getAttribute('integrity') })));
    const unpinned = scripts.filter((el) => !/^sha(256|384|512)-/.test(el.integrity ?? ''));
    check(section, 'every <script src> has an integrity hash', scripts.length > 0 && unpinned.length === 0,
      'integrity="sha384-..." on each', scripts.length ? unpinned.map((el) => el.src) : 'no <script src>');

    await page.waitForLoadState('networkidle', { timeout: DOCS_IDLE_MS }).catch(() => {});
    // innerText is what a reader sees: script text (an inlined document)
    // and hidden elements do not count.
    const deadline = Date.now() + DOCS_RENDER_MS;
    let rendered;
    do {
      rendered = await page.evaluate((ops) => {
        const text = document.body?.innerText ?? '';
        const flat = text.replace(/\s+/g, '').toUpperCase();
        const shown = ops.filter((op) => (op.summary && text.includes(op.summary)) || flat.includes(`${op.method}${op.path}`.toUpperCase()));
        return { text: text.slice(0, 200), shown: shown.length, summaries: ops.filter((op) => op.summary && text.includes(op.summary)).length, missing: ops.filter((op) => !shown.includes(op)).map((op) => `${op.method} ${op.path}`) };
      }, ops);
      if (rendered.shown >= DOCS_MIN_SHARE * ops.length) break;
      // Renderers draw sections as they scroll into view (Scalar does), so
      // read on as a reader would.
      await page.mouse.wheel(0, 1500);
      await sleep(250);
    } while (Date.now() < deadline);
    // Late requests (fonts, a renderer's own telemetry) come after the
    // first paint; give them a moment to show.
    await page.waitForLoadState('networkidle', { timeout: 5_000 }).catch(() => {});
    const pageTitle = await page.evaluate(() => document.body?.innerText ?? '');
    check(section, `renders ${rendered.shown} of the ${ops.length} operations (at least ${Math.round(DOCS_MIN_SHARE * 100)}%)`, rendered.shown >= DOCS_MIN_SHARE * ops.length,
      `>= ${Math.ceil(DOCS_MIN_SHARE * ops.length)} shown`, `${rendered.shown} shown (${rendered.summaries} by summary); missing ${rendered.missing.slice(0, 5).join(', ')}${rendered.missing.length > 5 ? ', ...' : ''}; page text: ${show(rendered.text)}`);
    check(section, 'shows the document title', title !== '' && pageTitle.includes(title), title, pageTitle.slice(0, 80));
    check(section, 'no request outside 127.0.0.1', seen.outside.length === 0, 'none', [...new Set(seen.outside)]);
    check(section, 'no failed load from 127.0.0.1', failedLoads.length === 0, 'none', failedLoads);
    const violations = await page.evaluate(() => window.__cspViolations ?? []);
    check(section, 'no CSP violations', violations.length === 0, 'none', violations);
    // A load this script aborted is reported above, by its URL.
    const consoleErrors = seen.consoleErrors.filter((m) => !m.includes('net::ERR_BLOCKED_BY_CLIENT'));
    check(section, 'no console errors', consoleErrors.length === 0, 'none', consoleErrors.map((m) => m.slice(0, 200)));
    check(section, 'no page errors', seen.pageErrors.length === 0, 'none', seen.pageErrors);
    return { shown: rendered.shown, total: ops.length };
  } finally {
    await context.close();
  }
}

// The stack's CORS_ALLOWED_ORIGINS, as a preflight shows it: the checks
// below mean nothing unless PAGE_PORT's origin is allowed and
// OTHER_PAGE_PORT's is not.
async function stackOrigins() {
  const section = 'stack';
  const allowOrigin = async (origin) => {
    const res = await fetch(`${API_BASE}/api/v1/posts`, {
      method: 'OPTIONS',
      headers: { Origin: origin, 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'content-type' },
    });
    return { status: res.status, allow: res.headers.get('access-control-allow-origin') };
  };
  const mine = await allowOrigin(ALLOWED_ORIGIN);
  check(section, `preflight from ${ALLOWED_ORIGIN} is allowed (CORS_ALLOWED_ORIGINS lists it)`, mine.status === 204 && mine.allow === ALLOWED_ORIGIN,
    `204, Access-Control-Allow-Origin: ${ALLOWED_ORIGIN}`, `${mine.status}, ${mine.allow}`);
  const other = await allowOrigin(OTHER_ORIGIN);
  check(section, `preflight from ${OTHER_ORIGIN} is not allowed (CORS_ALLOWED_ORIGINS is not * and leaves it out)`, other.allow === null,
    'no Access-Control-Allow-Origin', `${other.status}, ${other.allow}`);
}

async function main() {
  const started = Date.now();
  try {
    await stackOrigins();
  } catch (err) {
    console.error(`browser: no API at ${API_BASE}: ${err.cause?.message ?? err.message}`);
    process.exit(1);
  }
  const servers = await servePages();
  let browser;
  try {
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 30_000 });
  } catch (err) {
    servers.forEach((s) => s.close());
    console.error(`browser: cannot start Chromium at ${CHROMIUM} (set CHROMIUM, or \`make chromium\`): ${err.message.split('\n')[0]}`);
    process.exit(1);
  }
  const version = browser.version();
  const timings = [];
  const sections = [[ALLOWED_SECTION, allowedOrigin], [OTHER_SECTION, otherOrigin], [DOCS_SECTION, docs]];
  try {
    for (const [name, run] of sections) {
      const t = Date.now();
      try {
        await run(browser);
      } catch (err) {
        check(name, 'ran to the end', false, 'no exception', err.stack ?? String(err));
      }
      timings.push(`${name.split(' ')[0]} ${((Date.now() - t) / 1000).toFixed(1)} s`);
    }
  } finally {
    await browser.close();
    servers.forEach((s) => s.close());
  }

  let section = '';
  for (const r of results) {
    if (r.section !== section) {
      section = r.section;
      console.log(`browser: ${section}`);
    }
    console.log(`  ${r.ok ? 'ok  ' : 'FAIL'} ${r.what}${r.ok ? '' : `: expected ${show(r.expected)}, saw ${show(r.saw)}`}`);
  }
  for (const note of notes) console.log(`browser: note: ${note}`);
  const failed = results.filter((r) => !r.ok).length;
  console.log(`browser: Chromium ${version}, ${((Date.now() - started) / 1000).toFixed(1)} s (${timings.join(', ')})`);
  console.log(`browser: ${results.length - failed} passed, ${failed} failed`);
  process.exit(failed === 0 ? 0 : 1);
}

await main();
