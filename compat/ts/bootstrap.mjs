// Bootstrap for run.sh: waits until the server answers GET /readyz with 200
// (bounded), then creates the test shop through the admin API and prints its
// API key on stdout. Exits non-zero with one clear line on stderr otherwise.
//
// usage: node bootstrap.mjs <origin> <admin-token> <shop-id> <server-pid> <timeout-seconds>

const [origin, adminToken, shopId, serverPid, timeoutSeconds] = process.argv.slice(2);
if (!origin || !adminToken || !shopId || !serverPid || !timeoutSeconds) {
  console.error('usage: node bootstrap.mjs <origin> <admin-token> <shop-id> <server-pid> <timeout-seconds>');
  process.exit(2);
}

function serverAlive() {
  try {
    process.kill(Number(serverPid), 0);
    return true;
  } catch {
    return false;
  }
}

const deadline = Date.now() + Number(timeoutSeconds) * 1000;
let last = 'no answer yet';
for (;;) {
  if (!serverAlive()) {
    console.error(`compat: the server (pid ${serverPid}) exited before ${origin}/readyz answered 200`);
    process.exit(1);
  }
  try {
    const res = await fetch(`${origin}/readyz`, { signal: AbortSignal.timeout(2000) });
    if (res.status === 200) break;
    last = `status ${res.status}: ${(await res.text()).slice(0, 200)}`;
  } catch (err) {
    last = err.cause?.code || err.cause?.message || err.message;
  }
  if (Date.now() > deadline) {
    console.error(`compat: ${origin}/readyz did not answer 200 within ${timeoutSeconds}s (last: ${last})`);
    process.exit(1);
  }
  await new Promise((r) => setTimeout(r, 200));
}

const res = await fetch(`${origin}/api/v1/admin/shops`, {
  method: 'POST',
  headers: { Authorization: `Bearer ${adminToken}`, 'Content-Type': 'application/json' },
  body: JSON.stringify({ shop_id: shopId, name: 'Compat' }),
});
const text = await res.text();
let body;
try {
  body = JSON.parse(text);
} catch {
  body = undefined;
}
if (res.status !== 201 || typeof body?.api_key !== 'string' || body.api_key === '' || body.shop_id !== shopId) {
  console.error(`compat: POST /api/v1/admin/shops {"shop_id":"${shopId}"} answered ${res.status} ${text.slice(0, 500)}; want 201 {"shop_id":"${shopId}","api_key":"..."}`);
  process.exit(1);
}
process.stdout.write(body.api_key);
