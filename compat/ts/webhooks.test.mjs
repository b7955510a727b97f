// Compatibility test: every method of the webhooks module of the published
// TypeScript SDK pancake-client-sdk@1.0.2, unchanged but for client.baseUrl,
// against a running Pancake Webhooks server. Asserts the shapes that the
// SDK's dist/types/webhook.d.ts declares and the semantics of
// /work/shared/spec/api-contract.md. Run through compat/ts/run.sh, which
// provides:
//
//   PANCAKE_COMPAT_BASE_URL     http://127.0.0.1:<port>/api/v1
//   PANCAKE_COMPAT_API_KEY      the API key of PANCAKE_COMPAT_SHOP_ID
//   PANCAKE_COMPAT_SHOP_ID      a fresh shop with no webhooks
//   PANCAKE_COMPAT_ADMIN_TOKEN  the server's admin token
//   PANCAKE_COMPAT_SDK_DIR      a copy of the SDK's dist/ marked commonjs
//
// The tests run in order and share state (one shop's story); a later test
// that needs what an earlier one failed to make says so.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { createHmac, randomBytes } from 'node:crypto';
import http from 'node:http';
import path from 'node:path';

function env(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run this test through compat/ts/run.sh`);
  return v;
}

const BASE_URL = env('PANCAKE_COMPAT_BASE_URL');
const API_KEY = env('PANCAKE_COMPAT_API_KEY');
const SHOP_ID = env('PANCAKE_COMPAT_SHOP_ID');
const ADMIN_TOKEN = env('PANCAKE_COMPAT_ADMIN_TOKEN');
const SDK_DIR = env('PANCAKE_COMPAT_SDK_DIR');
const ORIGIN = new URL(BASE_URL).origin;

const require = createRequire(import.meta.url);
const { PancakeClient } = require(path.join(SDK_DIR, 'index.js'));
// The Standard Webhooks reference library for JavaScript, as a receiver
// would use it: a foreign check of every signature beside our own.
const { Webhook: StandardWebhook } = require('standardwebhooks');

// newClient builds an SDK client exactly as a user would, changing only
// baseUrl.
function newClient(apiKey, shopId) {
  const client = new PancakeClient(apiKey, shopId);
  client.baseUrl = BASE_URL;
  return client;
}

const client = newClient(API_KEY, SHOP_ID);
const webhooks = client.webhooks;

// ---------------------------------------------------------------------------
// Shapes, after dist/types/webhook.d.ts and the contract.

const EVENTS = [
  'order.created', 'order.updated', 'order.status_changed', 'order.cancelled',
  'customer.created', 'customer.updated', 'inventory.updated', 'product.created',
  'product.updated', 'product.deleted', 'transaction.created',
  'loyalty.points_earned', 'loyalty.points_redeemed',
];
// RFC 3339 in UTC with milliseconds: 2026-11-26T20:31:05.123Z.
const TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const SECRET = /^whsec_[A-Za-z0-9+/]+={0,2}$/;

function isObject(v) {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function assertTimestamp(v, what) {
  assert.equal(typeof v, 'string', `${what}: want an RFC 3339 string, got ${JSON.stringify(v)}`);
  assert.match(v, TIMESTAMP, `${what}: want RFC 3339 UTC with milliseconds (2026-11-26T20:31:05.123Z)`);
  assert.ok(!Number.isNaN(Date.parse(v)), `${what}: ${v} does not parse`);
}

// assertOptional checks a field declared `name?: T`: absent, or of type T.
function assertOptional(obj, name, check, what) {
  if (!(name in obj)) return;
  assert.notEqual(obj[name], null, `${what}.${name}: declared optional (${name}?), so absent or a value, not null`);
  check(obj[name], `${what}.${name}`);
}

function assertString(v, what) {
  assert.equal(typeof v, 'string', `${what}: want a string, got ${JSON.stringify(v)}`);
}

function assertSecret(v, what) {
  assertString(v, what);
  assert.match(v, SECRET, `${what}: want whsec_ + base64`);
  assert.equal(Buffer.from(v.slice('whsec_'.length), 'base64').length, 32, `${what}: want 32 random bytes after whsec_`);
}

// assertWebhook checks the Webhook interface. secret: 'required', 'absent'.
function assertWebhook(w, { secret }, what = 'Webhook') {
  assert.ok(isObject(w), `${what}: want an object, got ${JSON.stringify(w)}`);
  assertString(w.id, `${what}.id`);
  assert.match(w.id, /^wh_/, `${what}.id`);
  assertString(w.url, `${what}.url`);
  assert.ok(Array.isArray(w.events), `${what}.events: want an array`);
  for (const e of w.events) assert.ok(EVENTS.includes(e), `${what}.events: unknown event ${e}`);
  assert.equal(typeof w.is_active, 'boolean', `${what}.is_active`);
  if (secret === 'required') assertSecret(w.secret_key, `${what}.secret_key`);
  if (secret === 'absent') assert.ok(!('secret_key' in w), `${what}: secret_key must be left out of the list response`);
  assertOptional(w, 'description', assertString, what);
  assertTimestamp(w.created_at, `${what}.created_at`);
  assertTimestamp(w.updated_at, `${what}.updated_at`);
  assertOptional(w, 'last_triggered_at', assertTimestamp, what);
  const h = w.health_status;
  assert.ok(isObject(h), `${what}.health_status: want an object, got ${JSON.stringify(h)}`);
  assert.ok(['healthy', 'warning', 'error'].includes(h.status), `${what}.health_status.status: ${JSON.stringify(h.status)}`);
  assert.equal(typeof h.success_rate, 'number', `${what}.health_status.success_rate`);
  assert.ok(h.success_rate >= 0 && h.success_rate <= 100, `${what}.health_status.success_rate: ${h.success_rate} not in 0..100`);
  assertOptional(h, 'last_failure_reason', assertString, `${what}.health_status`);
  assertOptional(h, 'last_success_at', assertTimestamp, `${what}.health_status`);
  assertOptional(h, 'last_failure_at', assertTimestamp, `${what}.health_status`);
}

// assertDelivery checks the WebhookDelivery interface (status 'pending' is
// the contract's extension, allowed only where pending says so).
function assertDelivery(d, { pending = false } = {}, what = 'WebhookDelivery') {
  assert.ok(isObject(d), `${what}: want an object, got ${JSON.stringify(d)}`);
  assertString(d.id, `${what}.id`);
  assert.match(d.id, /^dlv_/, `${what}.id`);
  assertString(d.webhook_id, `${what}.webhook_id`);
  assert.match(d.webhook_id, /^wh_/, `${what}.webhook_id`);
  assert.ok(EVENTS.includes(d.event), `${what}.event: ${JSON.stringify(d.event)}`);
  assert.ok(isObject(d.payload), `${what}.payload: want an object`);
  if (pending) {
    assert.equal(d.status, 'pending', `${what}.status`);
  } else {
    assert.ok(['success', 'failed'].includes(d.status), `${what}.status: ${JSON.stringify(d.status)}`);
  }
  // response is required by the SDK type; a queued row has none yet.
  const r = d.response;
  if (pending && r === undefined) return;
  assert.ok(isObject(r), `${what}.response: want an object, got ${JSON.stringify(r)}`);
  assert.equal(typeof r.status_code, 'number', `${what}.response.status_code`);
  assert.ok(isObject(r.headers), `${what}.response.headers: want an object, got ${JSON.stringify(r.headers)}`);
  for (const [k, v] of Object.entries(r.headers)) assertString(v, `${what}.response.headers[${k}]`);
  assertOptional(r, 'body', assertString, `${what}.response`);
  assertOptional(d, 'failure_reason', assertString, what);
  assertTimestamp(d.created_at, `${what}.created_at`);
  assert.equal(typeof d.duration_ms, 'number', `${what}.duration_ms`);
  assert.ok(d.duration_ms >= 0, `${what}.duration_ms: ${d.duration_ms}`);
  if (d.status === 'success') {
    assert.ok(r.status_code >= 200 && r.status_code < 300, `${what}: a success has a 2xx status_code, got ${r.status_code}`);
  }
  if (d.status === 'failed') {
    assertString(d.failure_reason, `${what}.failure_reason (on a failed attempt)`);
  }
}

// assertAttemptResult checks the result of test() and retryDelivery().
function assertAttemptResult(res, what) {
  assert.ok(isObject(res), `${what}: want an object, got ${JSON.stringify(res)}`);
  assertString(res.delivery_id, `${what}.delivery_id`);
  assert.match(res.delivery_id, /^dlv_/, `${what}.delivery_id`);
  assert.ok(['success', 'failed'].includes(res.status), `${what}.status: ${JSON.stringify(res.status)}`);
  assertOptional(res, 'response', (r, w) => {
    assert.ok(isObject(r), `${w}: want an object`);
    assert.equal(typeof r.status_code, 'number', `${w}.status_code`);
    assertOptional(r, 'body', assertString, w);
  }, what);
  assertOptional(res, 'failure_reason', assertString, what);
}

function assertPage(page, what) {
  assert.ok(isObject(page), `${what}: want an object, got ${JSON.stringify(page)}`);
  assert.ok(Array.isArray(page.data), `${what}.data: want an array`);
  for (const k of ['total', 'page_number', 'page_size', 'total_pages']) {
    assert.ok(Number.isInteger(page[k]) && page[k] >= 0, `${what}.${k}: want an integer, got ${JSON.stringify(page[k])}`);
  }
  assert.equal(page.total_pages, Math.ceil(page.total / page.page_size), `${what}.total_pages: ceil(total/page_size)`);
}

function assertStats(s, what = 'WebhookStats') {
  assert.ok(isObject(s), `${what}: want an object, got ${JSON.stringify(s)}`);
  for (const k of ['total_deliveries', 'success_count', 'failure_count']) {
    assert.ok(Number.isInteger(s[k]) && s[k] >= 0, `${what}.${k}: want an integer, got ${JSON.stringify(s[k])}`);
  }
  assert.equal(typeof s.average_duration_ms, 'number', `${what}.average_duration_ms`);
  assert.ok(s.average_duration_ms >= 0, `${what}.average_duration_ms`);
  assert.equal(s.success_count + s.failure_count, s.total_deliveries, `${what}: success_count + failure_count = total_deliveries`);
  assert.ok(isObject(s.event_counts), `${what}.event_counts: want an object`);
  let events = 0;
  for (const [e, n] of Object.entries(s.event_counts)) {
    assert.ok(EVENTS.includes(e), `${what}.event_counts: unknown event ${e}`);
    assert.ok(Number.isInteger(n) && n > 0, `${what}.event_counts[${e}]: ${n}`);
    events += n;
  }
  assert.equal(events, s.total_deliveries, `${what}: event_counts sum to total_deliveries`);
  assert.ok(Array.isArray(s.hourly_stats), `${what}.hourly_stats: want an array`);
  let total = 0;
  let prev = '';
  for (const [i, h] of s.hourly_stats.entries()) {
    const w = `${what}.hourly_stats[${i}]`;
    assertTimestamp(h.hour, `${w}.hour`);
    assert.match(h.hour, /T\d{2}:00:00\.000Z$/, `${w}.hour: the start of an hour`);
    assert.ok(h.hour > prev, `${what}.hourly_stats: oldest first, one entry per hour`);
    prev = h.hour;
    for (const k of ['total', 'success', 'failed']) assert.ok(Number.isInteger(h[k]) && h[k] >= 0, `${w}.${k}`);
    assert.equal(h.success + h.failed, h.total, `${w}: success + failed = total`);
    assert.ok(h.total > 0, `${w}: only hours with attempts`);
    total += h.total;
  }
  assert.equal(total, s.total_deliveries, `${what}: hourly_stats totals sum to total_deliveries`);
}

// rejectsWith asserts that an SDK call rejects with the SDK's error for status.
async function rejectsWith(promise, status, what) {
  await assert.rejects(promise, (err) => {
    assert.equal(err.message, `HTTP error! status: ${status}`, `${what}: want the SDK to throw for ${status}`);
    return true;
  }, what);
}

// raw makes a request outside the SDK (for what the SDK hides: statuses,
// headers, error bodies, and publishing, which is not in the SDK).
async function raw(method, pathAndQuery, { body, headers = {} } = {}) {
  const res = await fetch(`${ORIGIN}${pathAndQuery}`, {
    method,
    headers: body === undefined ? headers : { 'Content-Type': 'application/json', ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

function assertErrorEnvelope(res, status, code, what) {
  assert.equal(res.status, status, `${what}: status (body ${res.text.slice(0, 300)})`);
  assert.match(res.headers.get('content-type') ?? '', /^application\/json/, `${what}: Content-Type`);
  assert.ok(isObject(res.json), `${what}: want a JSON error body, got ${res.text.slice(0, 300)}`);
  assert.equal(res.json.success, false, `${what}: error body success`);
  assert.ok(isObject(res.json.error), `${what}: error body .error`);
  assert.equal(res.json.error.code, code, `${what}: error code`);
  assertString(res.json.error.message, `${what}: error message`);
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

// waitFor polls fn until it returns a truthy value, for at most ms.
async function waitFor(fn, ms, what) {
  const deadline = Date.now() + ms;
  let lastErr;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      lastErr = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${ms} ms waiting for ${what}${lastErr ? ` (last error: ${lastErr.message})` : ''}`);
    }
    await sleep(100);
  }
}

function utcDay(offsetDays = 0, from = new Date()) {
  return new Date(from.getTime() + offsetDays * 86400000).toISOString().slice(0, 10);
}

// ---------------------------------------------------------------------------
// The receiver: records every request; /ok/... answers 200, /fail/...
// answers 500.

const received = [];
let receiverURL;
const receiver = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const rawBody = Buffer.concat(chunks);
    let json;
    try {
      json = JSON.parse(rawBody.toString('utf8'));
    } catch {
      json = undefined;
    }
    received.push({ method: req.method, path: req.url, headers: req.headers, rawBody, json, at: Date.now() });
    if (req.url.startsWith('/fail/')) {
      res.writeHead(500, { 'Content-Type': 'text/plain' });
      res.end('receiver says no');
    } else {
      res.writeHead(200, { 'Content-Type': 'application/json', 'X-Receiver': 'compat' });
      res.end('{"received":true}');
    }
  });
});

function receivedAt(p) {
  return received.filter((r) => r.path === p);
}

// expectedSignature is the Standard Webhooks v1 signature of one request.
function expectedSignature(secret, id, timestamp, rawBody) {
  const key = Buffer.from(secret.slice('whsec_'.length), 'base64');
  const mac = createHmac('sha256', key);
  mac.update(`${id}.${timestamp}.`);
  mac.update(rawBody);
  return `v1,${mac.digest('base64')}`;
}

// assertSignedRequest checks one received request against the contract's
// "What a receiver gets"; each of secrets must have signed it.
function assertSignedRequest(r, secrets, { event, deliveryId, test: isTest = false }, what) {
  assert.equal(r.method, 'POST', `${what}: method`);
  assert.match(r.headers['content-type'] ?? '', /^application\/json/, `${what}: Content-Type`);
  assert.match(r.headers['user-agent'] ?? '', /^PancakeWebhooks\/v?\d+\.\d+\.\d+\S*$/, `${what}: User-Agent is PancakeWebhooks/<version>`);
  const id = r.headers['webhook-id'];
  const ts = r.headers['webhook-timestamp'];
  const sig = r.headers['webhook-signature'];
  assertString(id, `${what}: webhook-id header`);
  assert.match(ts ?? '', /^\d+$/, `${what}: webhook-timestamp header, Unix seconds`);
  assert.ok(Math.abs(Number(ts) - r.at / 1000) < 300, `${what}: webhook-timestamp ${ts} is not now`);
  assertString(sig, `${what}: webhook-signature header`);
  const entries = sig.split(' ');
  for (const e of entries) assert.match(e, /^v1,[A-Za-z0-9+/]+={0,2}$/, `${what}: webhook-signature entry ${e}`);
  assert.equal(entries.length, secrets.length, `${what}: want ${secrets.length} signature(s), got "${sig}"`);
  for (const [i, s] of secrets.entries()) {
    assert.ok(entries.includes(expectedSignature(s, id, ts, r.rawBody)), `${what}: no signature matches secret #${i + 1} (header "${sig}")`);
    let verified;
    assert.doesNotThrow(() => { verified = new StandardWebhook(s).verify(r.rawBody, r.headers); },
      `${what}: the standardwebhooks library rejects the request with secret #${i + 1}`);
    assert.deepEqual(verified, r.json, `${what}: the standardwebhooks library's payload`);
    const tampered = Buffer.concat([r.rawBody, Buffer.from(' ')]);
    assert.throws(() => new StandardWebhook(s).verify(tampered, r.headers), /No matching signature/,
      `${what}: the standardwebhooks library accepts a tampered body`);
  }
  assert.equal(r.headers['x-pancake-event'], event, `${what}: X-Pancake-Event`);
  assert.equal(r.headers['x-pancake-shop'], SHOP_ID, `${what}: X-Pancake-Shop`);
  if (deliveryId) assert.equal(r.headers['x-pancake-delivery'], deliveryId, `${what}: X-Pancake-Delivery`);
  const env = r.json;
  assert.ok(isObject(env), `${what}: body is not a JSON object: ${r.rawBody.toString().slice(0, 200)}`);
  assert.equal(env.id, id, `${what}: envelope id = webhook-id`);
  assert.match(env.id, /^evt_/, `${what}: envelope id`);
  assert.equal(env.event, event, `${what}: envelope event`);
  assert.equal(env.shop_id, SHOP_ID, `${what}: envelope shop_id`);
  assertTimestamp(env.created_at, `${what}: envelope created_at`);
  assert.ok(isObject(env.data), `${what}: envelope data`);
  if (isTest) assert.equal(env.test, true, `${what}: envelope test`);
  else assert.ok(!('test' in env) || env.test === false, `${what}: envelope test only on a test send`);
  return env;
}

// ---------------------------------------------------------------------------

const state = {};
function need(name) {
  assert.ok(state[name] !== undefined, `needs ${name}, which an earlier test failed to make`);
  return state[name];
}

before(async () => {
  await new Promise((resolve, reject) => {
    receiver.once('error', reject);
    receiver.listen(0, '127.0.0.1', resolve);
  });
  receiverURL = `http://127.0.0.1:${receiver.address().port}`;
});

after(async () => {
  receiver.closeAllConnections?.();
  await new Promise((resolve) => receiver.close(resolve));
});

test('list: a new shop has no webhooks', async () => {
  const res = await webhooks.list();
  assert.ok(isObject(res), 'list: an object');
  assert.deepEqual(res.data, [], 'list.data');
  assert.equal(res.total, 0, 'list.total');
});

test('create: 201 and a Webhook with its whsec_ secret, healthy, active by default', async () => {
  const before = Date.now();
  const w = await webhooks.create({
    url: `${receiverURL}/ok/main`,
    events: ['order.created', 'customer.created'],
    description: 'compat main',
  });
  assertWebhook(w, { secret: 'required' }, 'create');
  assert.equal(w.url, `${receiverURL}/ok/main`);
  assert.deepEqual([...w.events].sort(), ['customer.created', 'order.created']);
  assert.equal(w.description, 'compat main');
  assert.equal(w.is_active, true, 'is_active defaults to true');
  assert.equal(w.health_status.status, 'healthy');
  assert.equal(w.health_status.success_rate, 100, 'success_rate is 100 with no attempts');
  assert.ok(!('last_triggered_at' in w), 'no attempt yet: no last_triggered_at');
  assert.ok(Math.abs(Date.parse(w.created_at) - before) < 60000, 'created_at is now');
  assert.equal(w.updated_at, w.created_at, 'a new webhook: updated_at = created_at');
  state.main = w;
  state.mainSecret = w.secret_key;

  // What the SDK does not show: the status and the media type.
  const r = await raw('POST', `/api/v1/shops/${SHOP_ID}/webhooks?api_key=${API_KEY}`, {
    body: { url: `${receiverURL}/ok/second`, events: ['order.updated', 'order.updated'], is_active: false },
  });
  assert.equal(r.status, 201, `POST /webhooks: want 201 (body ${r.text.slice(0, 300)})`);
  assert.match(r.headers.get('content-type') ?? '', /^application\/json/, 'POST /webhooks: Content-Type');
  assertWebhook(r.json, { secret: 'required' }, 'create (raw)');
  assert.deepEqual(r.json.events, ['order.updated'], 'duplicate events are folded');
  assert.equal(r.json.is_active, false);
  assert.notEqual(r.json.secret_key, w.secret_key, 'each webhook has its own secret');
  state.second = r.json;
});

test('create: an unknown event type or a bad url rejects with 400', async () => {
  await rejectsWith(webhooks.create({ url: `${receiverURL}/ok/x`, events: ['order.exploded'] }), 400, 'unknown event');
  await rejectsWith(webhooks.create({ url: `${receiverURL}/ok/x`, events: [] }), 400, 'empty events');
  await rejectsWith(webhooks.create({ url: 'not a url', events: ['order.created'] }), 400, 'bad url');
  const r = await raw('POST', `/api/v1/shops/${SHOP_ID}/webhooks?api_key=${API_KEY}`, {
    body: { url: `${receiverURL}/ok/x`, events: ['order.exploded'] },
  });
  assertErrorEnvelope(r, 400, 'validation_failed', 'unknown event');
});

test('list: {data, total}, oldest first, without secret_key', async () => {
  const main = need('main');
  const second = need('second');
  const res = await webhooks.list();
  assert.ok(isObject(res), 'list: an object');
  assert.equal(res.total, 2);
  assert.deepEqual(res.data.map((w) => w.id), [main.id, second.id], 'oldest first');
  for (const [i, w] of res.data.entries()) assertWebhook(w, { secret: 'absent' }, `list.data[${i}]`);
  const { secret_key: _, ...mainWithoutSecret } = main;
  assert.deepEqual(res.data[0], mainWithoutSecret, 'the listed webhook is the created one, less its secret');
});

test('getById: the Webhook with its secret', async () => {
  const main = need('main');
  const w = await webhooks.getById(main.id);
  assertWebhook(w, { secret: 'required' }, 'getById');
  assert.deepEqual(w, main);
});

test('update: a partial update keeps the other fields', async () => {
  const main = need('main');
  await sleep(5); // so that updated_at can move
  const w = await webhooks.update(main.id, { description: 'compat main, renamed' });
  assertWebhook(w, { secret: 'required' }, 'update');
  assert.equal(w.description, 'compat main, renamed');
  assert.equal(w.url, main.url, 'url kept');
  assert.deepEqual(w.events, main.events, 'events kept');
  assert.equal(w.is_active, true, 'is_active kept');
  assert.equal(w.secret_key, main.secret_key, 'secret kept');
  assert.equal(w.created_at, main.created_at, 'created_at kept');
  assert.ok(w.updated_at > main.updated_at, `updated_at moves: ${main.updated_at} -> ${w.updated_at}`);

  const w2 = await webhooks.update(main.id, { events: ['order.created', 'customer.created', 'order.cancelled'] });
  assert.deepEqual([...w2.events].sort(), ['customer.created', 'order.cancelled', 'order.created']);
  assert.equal(w2.description, 'compat main, renamed', 'description kept');
  assert.deepEqual(await webhooks.getById(main.id), w2, 'getById shows the update');
  await rejectsWith(webhooks.update(main.id, { events: ['nope.nope'] }), 400, 'update with an unknown event');
  state.main = w2;
});

test('setActive: false then true', async () => {
  const main = need('main');
  const off = await webhooks.setActive(main.id, false);
  assertWebhook(off, { secret: 'required' }, 'setActive(false)');
  assert.equal(off.is_active, false);
  assert.equal(off.url, main.url);
  assert.equal((await webhooks.getById(main.id)).is_active, false, 'getById after setActive(false)');
  const on = await webhooks.setActive(main.id, true);
  assertWebhook(on, { secret: 'required' }, 'setActive(true)');
  assert.equal(on.is_active, true);
  assert.equal((await webhooks.getById(main.id)).is_active, true, 'getById after setActive(true)');
  const second = need('second');
  const second2 = await webhooks.setActive(second.id, true);
  assert.equal(second2.is_active, true);
});

test('test: a receiver answering 200 gives status success, delivered signed', async () => {
  const main = need('main');
  const payload = { order_id: 'compat-1', total_amount: 250000, note: 'xin chào' };
  // The attempts first, so that a failed assertion below does not change
  // what the later tests count.
  const res = await webhooks.test(main.id, 'order.created', payload);
  const res2 = await webhooks.test(main.id, 'customer.created'); // no payload: the SDK sends {}
  state.testDeliveryId = res.delivery_id;

  assertAttemptResult(res, 'test');
  assert.equal(res.status, 'success');
  assert.ok(!('failure_reason' in res), 'no failure_reason on success');
  assert.equal(res.response?.status_code, 200, 'response.status_code');
  assert.equal(res.response?.body ?? '{"received":true}', '{"received":true}', 'response.body is what the receiver said');

  const got = receivedAt('/ok/main');
  assert.equal(got.length, 2, 'the receiver got one request per test send, synchronously');
  const env = assertSignedRequest(got[0], [state.mainSecret], { event: 'order.created', deliveryId: res.delivery_id, test: true }, 'test delivery');
  assert.deepEqual(env.data, payload, 'envelope data is the test payload');

  const d = await webhooks.getDeliveryById(res.delivery_id);
  assertDelivery(d, {}, 'getDeliveryById(test)');
  assert.equal(d.id, res.delivery_id);
  assert.equal(d.webhook_id, main.id);
  assert.equal(d.event, 'order.created');
  assert.equal(d.status, 'success');
  assert.equal(d.response.status_code, 200);
  assert.equal(d.response.body, '{"received":true}', 'response.body recorded');
  assert.equal(d.response.headers['x-receiver'] ?? d.response.headers['X-Receiver'], 'compat', 'response.headers recorded');
  assert.deepEqual(d.payload, env, 'payload is the envelope that was POSTed');
  assert.equal(d.trigger, 'test', 'extension trigger');
  assert.equal(d.attempt, 1, 'extension attempt');
  assert.equal(d.event_id, env.id, 'extension event_id');

  assertAttemptResult(res2, 'test (no payload)');
  assert.equal(res2.status, 'success');
  const env2 = assertSignedRequest(got[1], [state.mainSecret], { event: 'customer.created', deliveryId: res2.delivery_id, test: true }, 'test delivery without payload');
  assert.deepEqual(env2.data, {});
  assert.notEqual(env2.id, env.id, 'each test send is its own event');

  const w = await webhooks.getById(main.id);
  assertTimestamp(w.last_triggered_at, 'last_triggered_at after a test');
  assertTimestamp(w.health_status.last_success_at, 'health_status.last_success_at after a test');
});

test('test: a receiver answering 500 gives status failed with a failure_reason', async () => {
  const main = need('main');
  await webhooks.update(main.id, { url: `${receiverURL}/fail/main` });
  let res;
  try {
    res = await webhooks.test(main.id, 'order.created', { order_id: 'compat-2' });
  } finally {
    const back = await webhooks.update(main.id, { url: `${receiverURL}/ok/main` });
    assert.equal(back.url, `${receiverURL}/ok/main`);
  }
  state.failedDeliveryId = res.delivery_id;

  assertAttemptResult(res, 'test (500)');
  assert.equal(res.status, 'failed');
  assertString(res.failure_reason, 'failure_reason');
  assert.ok(res.failure_reason.length > 0, 'failure_reason not empty');
  if ('response' in res) assert.equal(res.response.status_code, 500, 'response.status_code');
  const got = receivedAt('/fail/main');
  assert.equal(got.length, 1, 'the failing receiver got one request');
  assertSignedRequest(got[0], [state.mainSecret], { event: 'order.created', deliveryId: res.delivery_id, test: true }, 'failed test delivery');

  const d = await webhooks.getDeliveryById(res.delivery_id);
  assertDelivery(d, {}, 'getDeliveryById(failed test)');
  assert.equal(d.status, 'failed');
  assert.equal(d.response.status_code, 500);
  assert.equal(d.response.body, 'receiver says no');
  assertString(d.failure_reason, 'failure_reason');

  // Never retried: the test send stays one attempt.
  await sleep(300);
  assert.equal(receivedAt('/fail/main').length, 1, 'a test send is never retried');

  const w = await webhooks.getById(main.id);
  assertString(w.health_status.last_failure_reason, 'health_status.last_failure_reason after a failure');
  assertTimestamp(w.health_status.last_failure_at, 'health_status.last_failure_at after a failure');
});

test('test: an inactive webhook can still be tested, but gets no retry', async () => {
  const second = need('second');
  await webhooks.setActive(second.id, false);
  const res = await webhooks.test(second.id, 'order.updated', { n: 1 });
  assert.equal(res.status, 'success');
  assert.equal(receivedAt('/ok/second').length, 1);
  // No new delivery is made for a disabled webhook: a manual retry is a 409.
  await rejectsWith(webhooks.retryDelivery(res.delivery_id), 409, 'retryDelivery(disabled webhook)');
  const r = await raw('POST', `/api/v1/shops/${SHOP_ID}/webhook-deliveries/${res.delivery_id}/retry?api_key=${API_KEY}`, { body: {} });
  assertErrorEnvelope(r, 409, 'conflict', 'retry to a disabled webhook');
  assert.equal(receivedAt('/ok/second').length, 1, 'the refused retries sent nothing');
  await webhooks.setActive(second.id, true);
});

test('rotateSecret: a new secret; the next delivery is signed with both', async () => {
  const main = need('main');
  const res = await webhooks.rotateSecret(main.id);
  const t = await webhooks.test(main.id, 'order.created', { order_id: 'compat-3' });
  state.oldSecret = state.mainSecret;
  state.mainSecret = res?.secret_key;

  assert.ok(isObject(res), 'rotateSecret: an object');
  assertSecret(res.secret_key, 'rotateSecret.secret_key');
  assert.notEqual(res.secret_key, state.oldSecret, 'a new secret');
  const w = await webhooks.getById(main.id);
  assert.equal(w.secret_key, res.secret_key, 'getById shows the new secret');

  assert.equal(t.status, 'success');
  const got = receivedAt('/ok/main');
  assertSignedRequest(got.at(-1), [res.secret_key, state.oldSecret], { event: 'order.created', deliveryId: t.delivery_id, test: true }, 'delivery after rotation');
});

test('retryDelivery: a new delivery of the same event, made now', async () => {
  const main = need('main');
  const failed = await webhooks.getDeliveryById(need('failedDeliveryId'));
  const before = receivedAt('/ok/main').length;

  // The endpoint is fixed (back to /ok): retrying the failed one succeeds.
  // A successful delivery can be retried too.
  const res = await webhooks.retryDelivery(failed.id);
  const got = receivedAt('/ok/main');
  const res2 = await webhooks.retryDelivery(need('testDeliveryId'));

  assertAttemptResult(res, 'retryDelivery');
  assert.notEqual(res.delivery_id, failed.id, 'a new delivery id');
  assert.equal(res.status, 'success');
  assert.equal(res.response?.status_code, 200);
  assert.equal(got.length, before + 1, 'the receiver got the retry synchronously');
  const env = assertSignedRequest(got.at(-1), [state.mainSecret, state.oldSecret], { event: 'order.created', deliveryId: res.delivery_id, test: true }, 'manual retry');
  assert.equal(env.id, failed.payload.id, 'webhook-id: the same event id on every attempt');
  assert.deepEqual(env.data, failed.payload.data, 'the same event data');

  const d = await webhooks.getDeliveryById(res.delivery_id);
  assertDelivery(d, {}, 'getDeliveryById(retry)');
  assert.equal(d.webhook_id, main.id);
  assert.equal(d.status, 'success');
  assert.equal(d.trigger, 'manual_retry', 'extension trigger');
  assert.equal(d.retry_of, failed.id, 'extension retry_of');
  // Extension request.headers: what the receiver got, under the names the
  // contract gives them.
  const sent = got.at(-1).headers;
  for (const h of ['webhook-id', 'webhook-timestamp', 'webhook-signature', 'X-Pancake-Event', 'X-Pancake-Delivery', 'X-Pancake-Shop']) {
    assert.equal(d.request?.headers?.[h], sent[h.toLowerCase()], `request.headers['${h}'] is what the receiver got`);
  }
  const orig = await webhooks.getDeliveryById(failed.id);
  assert.equal(orig.status, 'failed', 'the original attempt stays as it was');

  assertAttemptResult(res2, 'retryDelivery(success)');
  assert.equal(res2.status, 'success');
  assert.notEqual(res2.delivery_id, res.delivery_id);

  await rejectsWith(webhooks.retryDelivery('dlv_01JCOMPATUNKNOWN000000000'), 404, 'retryDelivery(unknown)');
});

test('listDeliveries: paginated, newest first, with every filter', async () => {
  const main = need('main');
  // On main: test(order.created) ok, test(customer.created) ok,
  // test(order.created) 500, test(order.created) ok after rotation, and two
  // manual retries of order.created, both ok.
  const all = await webhooks.listDeliveries({ webhook_id: main.id });
  assertPage(all, 'listDeliveries');
  assert.equal(all.page_number, 1, 'page_number defaults to 1');
  assert.equal(all.page_size, 20, 'page_size defaults to 20');
  assert.equal(all.total, 6, `6 attempts on the webhook, got ${all.total}`);
  assert.equal(all.data.length, 6);
  for (const [i, d] of all.data.entries()) {
    assertDelivery(d, {}, `listDeliveries.data[${i}]`);
    assert.equal(d.webhook_id, main.id);
  }
  for (let i = 1; i < all.data.length; i++) {
    assert.ok(all.data[i - 1].created_at >= all.data[i].created_at, 'newest first (created_at)');
    assert.ok(all.data[i - 1].id > all.data[i].id, 'newest first (ids sort by creation)');
  }
  assert.equal(all.data.filter((d) => d.status === 'failed').length, 1);
  state.mainDeliveries = all.data;

  const failed = await webhooks.listDeliveries({ webhook_id: main.id, status: 'failed' });
  assertPage(failed, 'listDeliveries(status=failed)');
  assert.equal(failed.total, 1);
  assert.equal(failed.data[0].id, need('failedDeliveryId'));
  const ok = await webhooks.listDeliveries({ webhook_id: main.id, status: 'success' });
  assert.equal(ok.total, 5);
  assert.ok(ok.data.every((d) => d.status === 'success'));

  const cust = await webhooks.listDeliveries({ webhook_id: main.id, event: 'customer.created' });
  assert.equal(cust.total, 1);
  assert.equal(cust.data[0].event, 'customer.created');
  const none = await webhooks.listDeliveries({ webhook_id: main.id, event: 'product.deleted' });
  assert.equal(none.total, 0);
  assert.deepEqual(none.data, []);

  const p1 = await webhooks.listDeliveries({ webhook_id: main.id, page_size: 4, page_number: 1 });
  const p2 = await webhooks.listDeliveries({ webhook_id: main.id, page_size: 4, page_number: 2 });
  const p3 = await webhooks.listDeliveries({ webhook_id: main.id, page_size: 4, page_number: 3 });
  for (const [p, n] of [[p1, 1], [p2, 2], [p3, 3]]) {
    assertPage(p, `listDeliveries(page ${n})`);
    assert.equal(p.page_number, n);
    assert.equal(p.page_size, 4);
    assert.equal(p.total, 6);
    assert.equal(p.total_pages, 2);
  }
  assert.deepEqual([...p1.data, ...p2.data].map((d) => d.id), all.data.map((d) => d.id), 'pages tile the list');
  assert.deepEqual(p3.data, [], 'past the last page: empty');

  const day = all.data.at(-1).created_at.slice(0, 10);
  const sameDay = await webhooks.listDeliveries({ webhook_id: main.id, from_date: day, to_date: all.data[0].created_at.slice(0, 10) });
  assert.equal(sameDay.total, 6, 'from_date/to_date inclusive of whole days');
  const later = await webhooks.listDeliveries({ webhook_id: main.id, from_date: utcDay(2) });
  assert.equal(later.total, 0, 'from_date after every attempt');
  const earlier = await webhooks.listDeliveries({ webhook_id: main.id, to_date: utcDay(-2) });
  assert.equal(earlier.total, 0, 'to_date before every attempt');

  // Without webhook_id: the shop's attempts (main and second).
  const shop = await webhooks.listDeliveries();
  assertPage(shop, 'listDeliveries()');
  assert.equal(shop.total, 7);
  assert.ok(shop.data.every((d) => [main.id, need('second').id].includes(d.webhook_id)));

  // The product document's own example filters by 'webhook-id': no such
  // webhook, so nothing, not an error.
  const docExample = await webhooks.listDeliveries({ webhook_id: 'webhook-id', status: 'failed', page_size: 10 });
  assertPage(docExample, "listDeliveries({webhook_id: 'webhook-id'})");
  assert.equal(docExample.total, 0);
  assert.deepEqual(docExample.data, []);

  // A base URL that ends in '/' (the SDK then asks for /api/v1//shops/…).
  const slashed = new PancakeClient(API_KEY, SHOP_ID);
  slashed.baseUrl = `${BASE_URL}/`;
  const viaSlash = await slashed.webhooks.listDeliveries({ webhook_id: main.id });
  assert.equal(viaSlash.total, 6, 'the same list through a base URL ending in /');

  await rejectsWith(webhooks.listDeliveries({ status: 'ok' }), 400, 'listDeliveries(status=ok)');
  await rejectsWith(webhooks.listDeliveries({ page_size: 'abc' }), 400, 'listDeliveries(page_size=abc)');
  await rejectsWith(webhooks.listDeliveries({ from_date: '2024-13-01' }), 400, 'listDeliveries(from_date=2024-13-01)');
  // page_size is at most 100: refused, or capped.
  const big = await webhooks.listDeliveries({ page_size: 101 }).catch((err) => err);
  if (!(big instanceof Error)) assert.ok(big.page_size <= 100, `page_size=101 answered page_size ${big.page_size}`);
  else assert.equal(big.message, 'HTTP error! status: 400');
});

test('getDeliveryById: the same record as listed; unknown id is 404', async () => {
  const listed = need('mainDeliveries');
  for (const l of listed) {
    const d = await webhooks.getDeliveryById(l.id);
    assertDelivery(d, {}, 'getDeliveryById');
    assert.deepEqual(d, l, 'getDeliveryById = the listed record');
  }
  await rejectsWith(webhooks.getDeliveryById('dlv_01JCOMPATUNKNOWN000000000'), 404, 'getDeliveryById(unknown)');
});

test('getStats: shape and counts consistent with the attempts made', async () => {
  const main = need('main');
  const deliveries = need('mainDeliveries');
  const durations = deliveries.map((d) => d.duration_ms);
  const check = (s, what) => {
    assertStats(s, what);
    assert.equal(s.total_deliveries, 6, `${what}: total_deliveries`);
    assert.equal(s.success_count, 5, `${what}: success_count`);
    assert.equal(s.failure_count, 1, `${what}: failure_count`);
    assert.deepEqual(s.event_counts, { 'order.created': 5, 'customer.created': 1 }, `${what}: event_counts`);
    const avg = durations.reduce((a, b) => a + b, 0) / durations.length;
    assert.ok(Math.abs(s.average_duration_ms - avg) <= 1, `${what}: average_duration_ms ${s.average_duration_ms}, the deliveries say ${avg}`);
    const hours = new Set(deliveries.map((d) => `${d.created_at.slice(0, 13)}:00:00.000Z`));
    assert.deepEqual(s.hourly_stats.map((h) => h.hour), [...hours].sort(), `${what}: hours`);
  };
  const first = deliveries.at(-1).created_at.slice(0, 10);
  const last = deliveries[0].created_at.slice(0, 10);
  check(await webhooks.getStats(main.id, { from_date: first, to_date: last }), 'getStats(range)');
  check(await webhooks.getStats(main.id), 'getStats() (default: the last 7 days)');
  const empty = await webhooks.getStats(main.id, { from_date: utcDay(2), to_date: utcDay(3) });
  assertStats(empty, 'getStats(future)');
  assert.equal(empty.total_deliveries, 0);
  assert.deepEqual(empty.event_counts, {});
  assert.deepEqual(empty.hourly_stats, []);
  await rejectsWith(webhooks.getStats(main.id, { from_date: last, to_date: utcDay(-1, new Date(last)) }), 400, 'getStats(to_date before from_date)');
  await rejectsWith(webhooks.getStats('wh_01JCOMPATUNKNOWN000000000', {}), 404, 'getStats(unknown)');
});

test('health_status follows the recorded attempts', async () => {
  const main = need('main');
  const deliveries = need('mainDeliveries'); // newest first, all within 24 h
  const w = await webhooks.getById(main.id);
  assertWebhook(w, { secret: 'required' }, 'getById');
  const ok = deliveries.filter((d) => d.status === 'success').length;
  const rate = (100 * ok) / deliveries.length;
  assert.ok(Math.abs(w.health_status.success_rate - rate) < 1, `success_rate ${w.health_status.success_rate}, want ${rate}`);
  const lastFailed = (n) => deliveries.slice(0, n).every((d) => d.status === 'failed');
  let want = 'healthy';
  if (lastFailed(5) || rate < 80) want = 'error';
  else if (rate < 95 || lastFailed(2)) want = 'warning';
  assert.equal(w.health_status.status, want, `status for ${ok}/${deliveries.length} successes`);
  assertTimestamp(w.last_triggered_at, 'last_triggered_at');
  const lag = Date.parse(w.last_triggered_at) - Date.parse(deliveries[0].created_at);
  assert.ok(Math.abs(lag) < 2000, `last_triggered_at ${w.last_triggered_at}: the last attempt was at ${deliveries[0].created_at}`);
});

test('publish: an event reaches the receiver signed and is listed', async () => {
  const pub = await webhooks.create({ url: `${receiverURL}/ok/pub`, events: ['product.created'] });
  state.pub = pub;
  const data = { product_id: 'compat-p1', name: 'Bánh xèo', price: 45000 };
  const listed = await webhooks.list();
  const subscribed = listed.data.filter((w) => w.is_active && w.events.includes('product.created')).length;
  const r = await raw('POST', `/api/v1/shops/${SHOP_ID}/events?api_key=${API_KEY}`, { body: { event: 'product.created', data } });
  assert.equal(r.status, 202, `publish: want 202 (body ${r.text.slice(0, 300)})`);
  assert.ok(isObject(r.json), 'publish: a JSON object');
  assertString(r.json.event_id, 'publish.event_id');
  assert.match(r.json.event_id, /^evt_/);
  assert.equal(r.json.deliveries, subscribed, 'publish.deliveries: the active subscribed webhooks');

  const req = await waitFor(() => receivedAt('/ok/pub').find((x) => x.headers['webhook-id'] === r.json.event_id), 15000, 'the published event at the receiver');
  const env = assertSignedRequest(req, [pub.secret_key], { event: 'product.created' }, 'published event');
  assert.deepEqual(env.data, data);

  const d = await waitFor(async () => {
    const page = await webhooks.listDeliveries({ webhook_id: pub.id });
    return page.data.find((x) => x.payload?.id === r.json.event_id && x.status === 'success');
  }, 10000, 'the successful delivery in listDeliveries');
  assertDelivery(d, {}, 'published delivery');
  assert.equal(d.event, 'product.created');
  assert.equal(req.headers['x-pancake-delivery'], d.id, 'X-Pancake-Delivery');
  assert.deepEqual(d.payload, env, 'payload is the envelope');
  assert.equal(d.trigger, 'event', 'extension trigger');
  assert.equal(d.attempt, 1, 'extension attempt');
  assert.equal(d.event_id, r.json.event_id, 'extension event_id');
  assert.equal(receivedAt('/ok/pub').length, 1, 'delivered once');
});

test('getPendingDeliveries: a failing receiver leaves a queued retry; setActive(false) cancels it', async () => {
  const shape = await webhooks.getPendingDeliveries();
  assert.ok(isObject(shape), 'getPendingDeliveries: an object');
  assert.ok(Number.isInteger(shape.total_count), 'total_count: an integer');
  assert.ok(Array.isArray(shape.deliveries), 'deliveries: an array');

  const w = await webhooks.create({ url: `${receiverURL}/fail/pending`, events: ['inventory.updated'] });
  state.pending = w;
  const r = await raw('POST', `/api/v1/shops/${SHOP_ID}/events?api_key=${API_KEY}`, {
    body: { event: 'inventory.updated', data: { sku: 'compat-sku', qty: 3 } },
  });
  assert.equal(r.status, 202, `publish: want 202 (body ${r.text.slice(0, 300)})`);
  assert.equal(r.json.deliveries, 1);
  await waitFor(() => receivedAt('/fail/pending').length >= 1, 15000, 'the first attempt at the failing receiver');
  assertSignedRequest(receivedAt('/fail/pending')[0], [w.secret_key], { event: 'inventory.updated' }, 'failing delivery');

  // The attempt is recorded shortly after the receiver answered; until then
  // the delivery is still queued (in flight), not yet its retry.
  const firstAttempt = await waitFor(async () => {
    const l = await webhooks.listDeliveries({ webhook_id: w.id, status: 'failed' });
    return l.total >= 1 && l;
  }, 5000, 'the failed attempt in listDeliveries');
  const queued = await waitFor(async () => {
    const p = await webhooks.getPendingDeliveries();
    return p.deliveries.find((d) => d.webhook_id === w.id);
  }, 5000, 'a queued retry in getPendingDeliveries');
  const p = await webhooks.getPendingDeliveries();
  assert.equal(p.total_count, p.deliveries.length, 'total_count: all of them (fewer than a page)');
  for (const [i, d] of p.deliveries.entries()) assertDelivery(d, { pending: true }, `getPendingDeliveries.deliveries[${i}]`);
  assert.equal(queued.event, 'inventory.updated');
  assert.equal(queued.payload.id, r.json.event_id, 'the queued retry carries the event');
  assertTimestamp(queued.scheduled_at, 'extension scheduled_at');
  assert.ok(Date.parse(queued.scheduled_at) > Date.now() - 2000, 'scheduled_at: due in the future (5 s retry)');

  assert.ok(firstAttempt.data.every((d) => d.status === 'failed'));
  assert.ok(firstAttempt.data.every((d) => d.response.status_code === 500));
  assertTimestamp(firstAttempt.data.at(-1).next_retry_at, 'extension next_retry_at on a failed attempt with tries left');
  const onlyListed = await webhooks.listDeliveries({ webhook_id: w.id });
  assert.ok(onlyListed.data.every((d) => d.status !== 'pending'), 'listDeliveries shows attempts made, not queued ones');

  // clear-history removes finished attempts only: the queued retry stays.
  const cleared = await webhooks.clearDeliveryHistory(w.id);
  assert.ok(Number.isInteger(cleared?.deleted_count) && cleared.deleted_count >= 1, `clearDeliveryHistory: ${JSON.stringify(cleared)}`);
  const stillQueued = await webhooks.getPendingDeliveries();
  assert.ok(stillQueued.deliveries.some((d) => d.id === queued.id), 'clearDeliveryHistory leaves queued deliveries alone');

  const off = await webhooks.setActive(w.id, false);
  assert.equal(off.is_active, false);
  const after = await webhooks.getPendingDeliveries();
  assert.ok(!after.deliveries.some((d) => d.webhook_id === w.id), 'setActive(false) cancels the queued deliveries');
  const cancelled = await webhooks.listDeliveries({ webhook_id: w.id, status: 'failed' });
  assert.ok(cancelled.data.some((d) => /webhook disabled/.test(d.failure_reason ?? '')),
    `a cancelled delivery is recorded as failed with "webhook disabled": ${JSON.stringify(cancelled.data.map((d) => d.failure_reason))}`);

  const r2 = await raw('POST', `/api/v1/shops/${SHOP_ID}/events?api_key=${API_KEY}`, {
    body: { event: 'inventory.updated', data: { sku: 'compat-sku', qty: 2 } },
  });
  assert.equal(r2.status, 202);
  assert.equal(r2.json.deliveries, 0, 'an inactive webhook gets no new deliveries');
});

test('clearDeliveryHistory: {deleted_count}, by status and before_date; then fewer listed', async () => {
  const main = need('main');
  const before = await webhooks.listDeliveries({ webhook_id: main.id });
  assert.equal(before.total, 6);
  const firstDay = before.data.at(-1).created_at.slice(0, 10);

  const none = await webhooks.clearDeliveryHistory(main.id, { before_date: firstDay });
  assert.equal(none?.deleted_count, 0, 'before_date = the day of the first attempt: nothing older');
  const failed = await webhooks.clearDeliveryHistory(main.id, { status: 'failed' });
  assert.equal(failed?.deleted_count, 1, 'status=failed: the one failed attempt');
  const mid = await webhooks.listDeliveries({ webhook_id: main.id });
  assert.equal(mid.total, 5);
  assert.ok(mid.data.every((d) => d.status === 'success'));
  const stats = await webhooks.getStats(main.id);
  assert.equal(stats.total_deliveries, 5, 'stats count the attempts still recorded');

  const rest = await webhooks.clearDeliveryHistory(main.id);
  assert.equal(rest?.deleted_count, 5, 'no filter: the rest');
  const empty = await webhooks.listDeliveries({ webhook_id: main.id });
  assert.equal(empty.total, 0);
  assert.deepEqual(empty.data, []);
  assert.equal((await webhooks.listDeliveries({ webhook_id: need('second').id })).total, 1, 'other webhooks keep their history');
});

test('delete: resolves to {success: true}; the webhook and its history are gone', async () => {
  const second = need('second');
  const secondDeliveries = await webhooks.listDeliveries({ webhook_id: second.id });
  assert.equal(secondDeliveries.total, 1);
  const res = await webhooks.delete(second.id);
  assert.deepEqual(res, { success: true });
  await rejectsWith(webhooks.getById(second.id), 404, 'getById(deleted)');
  await rejectsWith(webhooks.delete(second.id), 404, 'delete(deleted)');
  await rejectsWith(webhooks.getDeliveryById(secondDeliveries.data[0].id), 404, 'getDeliveryById of a deleted webhook');
  await rejectsWith(webhooks.retryDelivery(secondDeliveries.data[0].id), 404, 'retryDelivery of a deleted webhook');
  const list = await webhooks.list();
  assert.ok(!list.data.some((w) => w.id === second.id), 'not listed');
  assert.equal(list.total, list.data.length);

  for (const name of ['main', 'pub', 'pending']) {
    if (state[name]) assert.deepEqual(await webhooks.delete(state[name].id), { success: true }, `delete(${name})`);
  }
  const left = await webhooks.list();
  assert.deepEqual([left.data, left.total], [[], 0], 'all deleted');
  const pending = await webhooks.getPendingDeliveries();
  assert.equal(pending.total_count, 0, 'no queued deliveries left');
});

test('errors: unknown id 404, wrong key 401, another shop 403', async () => {
  await rejectsWith(webhooks.getById('wh_01JCOMPATUNKNOWN000000000'), 404, 'getById(unknown)');
  await rejectsWith(webhooks.getById('nonsense'), 404, 'getById(malformed)');
  await rejectsWith(webhooks.update('wh_01JCOMPATUNKNOWN000000000', { description: 'x' }), 404, 'update(unknown)');
  await rejectsWith(webhooks.setActive('wh_01JCOMPATUNKNOWN000000000', true), 404, 'setActive(unknown)');
  await rejectsWith(webhooks.test('wh_01JCOMPATUNKNOWN000000000', 'order.created'), 404, 'test(unknown)');
  await rejectsWith(webhooks.rotateSecret('wh_01JCOMPATUNKNOWN000000000'), 404, 'rotateSecret(unknown)');
  await rejectsWith(webhooks.clearDeliveryHistory('wh_01JCOMPATUNKNOWN000000000'), 404, 'clearDeliveryHistory(unknown)');
  const nf = await raw('GET', `/api/v1/shops/${SHOP_ID}/webhooks/wh_01JCOMPATUNKNOWN000000000?api_key=${API_KEY}`);
  assertErrorEnvelope(nf, 404, 'not_found', 'GET unknown webhook');

  const wrongKey = `pk_${randomBytes(16).toString('hex')}`;
  const bad = newClient(wrongKey, SHOP_ID).webhooks;
  await rejectsWith(bad.list(), 401, 'list with a wrong key');
  await rejectsWith(bad.create({ url: `${receiverURL}/ok/x`, events: ['order.created'] }), 401, 'create with a wrong key');
  await rejectsWith(bad.listDeliveries(), 401, 'listDeliveries with a wrong key');
  const unauth = await raw('GET', `/api/v1/shops/${SHOP_ID}/webhooks?api_key=${wrongKey}`);
  assertErrorEnvelope(unauth, 401, 'unauthorized', 'wrong key');
  assert.ok(!unauth.text.includes(wrongKey), 'the key does not appear in the error');
  const noKey = await raw('GET', `/api/v1/shops/${SHOP_ID}/webhooks`);
  assertErrorEnvelope(noKey, 401, 'unauthorized', 'no key');

  // A second shop, through the admin API.
  const other = await raw('POST', '/api/v1/admin/shops', {
    body: { shop_id: 'compat-other', name: 'Compat Other' },
    headers: { Authorization: `Bearer ${ADMIN_TOKEN}` },
  });
  assert.equal(other.status, 201, `admin create shop: want 201 (body ${other.text.slice(0, 300)})`);
  assert.equal(other.json.shop_id, 'compat-other');
  assertString(other.json.api_key, 'admin create shop: api_key');
  const otherKey = other.json.api_key;
  const adminNoToken = await raw('POST', '/api/v1/admin/shops', { body: { shop_id: 'compat-third' } });
  assertErrorEnvelope(adminNoToken, 401, 'unauthorized', 'admin API without the token');

  // Our key on the other shop's path, and the other way round: 403.
  const cross = newClient(API_KEY, 'compat-other').webhooks;
  await rejectsWith(cross.list(), 403, 'list on another shop');
  await rejectsWith(cross.create({ url: `${receiverURL}/ok/x`, events: ['order.created'] }), 403, 'create on another shop');
  await rejectsWith(cross.listDeliveries(), 403, 'listDeliveries on another shop');
  await rejectsWith(cross.getPendingDeliveries(), 403, 'getPendingDeliveries on another shop');
  const forbidden = await raw('GET', `/api/v1/shops/compat-other/webhooks?api_key=${API_KEY}`);
  assertErrorEnvelope(forbidden, 403, 'forbidden', 'another shop');
  await rejectsWith(newClient(otherKey, SHOP_ID).webhooks.list(), 403, "the other shop's key on our path");

  // Isolation: the other shop sees only its own webhooks and deliveries.
  const otherHooks = newClient(otherKey, 'compat-other').webhooks;
  const mine = await webhooks.create({ url: `${receiverURL}/ok/isolation`, events: ['order.created'] });
  const theirList = await otherHooks.list();
  assert.deepEqual([theirList.data, theirList.total], [[], 0], 'the other shop sees none of ours');
  await rejectsWith(otherHooks.getById(mine.id), 404, "getById of another shop's webhook");
  await rejectsWith(otherHooks.delete(mine.id), 404, "delete of another shop's webhook");
  const theirs = await otherHooks.create({ url: `${receiverURL}/ok/other`, events: ['order.created'] });
  assertWebhook(theirs, { secret: 'required' }, 'create in the other shop');
  const t = await otherHooks.test(theirs.id, 'order.created', { x: 1 });
  assert.equal(t.status, 'success');
  await rejectsWith(webhooks.getDeliveryById(t.delivery_id), 404, "getDeliveryById of another shop's delivery");
  await rejectsWith(webhooks.retryDelivery(t.delivery_id), 404, "retryDelivery of another shop's delivery");
  assert.equal((await otherHooks.listDeliveries()).total, 1);
  assert.deepEqual((await webhooks.list()).data.map((w) => w.id), [mine.id]);
  assert.deepEqual(await webhooks.delete(mine.id), { success: true });
  assert.deepEqual(await otherHooks.delete(theirs.id), { success: true });
});
