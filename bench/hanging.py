#!/usr/bin/env python3
# A hanging endpoint beside a healthy one (BENCHMARKS.md, twentieth sitting).
#
# Usage: python3 bench/hanging.py BIN PORT SECONDS RATE
#   e.g. python3 bench/hanging.py /tmp/pw 21200 80 100
#
# Starts BIN serve on 127.0.0.1:PORT (SQLite in a temporary directory) and
# a receiver on PORT+1 with two paths: /hang answers after 40 s (past the
# 15 s attempt timeout), /ok at once. One shop has a webhook of each, for
# order.created and customer.created. Two publishers send RATE events/s of
# each for SECONDS; after a 20 s warm-up, it prints one JSON line: the
# server's CPU seconds, the healthy deliveries, and CPU ms per healthy
# delivery, with the queue gauge at the end. Python 3 standard library
# only; DBG=127.0.0.1:PORT in the environment serves pprof there.
import sys, os, json, shutil, time, threading, subprocess, tempfile, http.server, socketserver, urllib.request, http.client
bin_, port, secs, rate = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
healthy = [0]; lock = threading.Lock()
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        n = int(self.headers.get('Content-Length', 0)); self.rfile.read(n)
        if self.path.startswith('/hang'):
            time.sleep(40)
        else:
            with lock: healthy[0] += 1
        self.send_response(200); self.send_header('Content-Length', '0'); self.end_headers()
    def log_message(self, *a): pass
class TS(socketserver.ThreadingMixIn, http.server.HTTPServer): daemon_threads = True
rs = TS(('127.0.0.1', port+1), H); threading.Thread(target=rs.serve_forever, daemon=True).start()
d = tempfile.mkdtemp()
env = dict(os.environ, PANCAKE_ADMIN_TOKEN='t'*32)
p = subprocess.Popen([bin_, 'serve', '--addr', f'127.0.0.1:{port}', '--db', f'sqlite:{d}/x.db', '--allow-http', '--allow-private-networks', '--log-level', 'error'] + (['--debug-addr', os.environ['DBG']] if os.environ.get('DBG') else []), env=env, stdout=subprocess.DEVNULL, stderr=open(d+'/log','w'))
base = f'127.0.0.1:{port}'
def req(method, path, body, key):
    c = http.client.HTTPConnection(base, timeout=10)
    c.request(method, path, json.dumps(body), {'Authorization': 'Bearer '+key, 'Content-Type': 'application/json'})
    r = c.getresponse(); b = r.read(); c.close(); return r.status, b
for _ in range(100):
    try:
        if urllib.request.urlopen(f'http://{base}/readyz').status == 200: break
    except Exception: time.sleep(0.1)
st, b = req('POST', '/api/v1/admin/shops', {'shop_id': 'a'}, 't'*32); key = json.loads(b)['api_key']
req('POST', '/api/v1/shops/a/webhooks', {'url': f'http://127.0.0.1:{port+1}/hang', 'events': ['order.created']}, key)
req('POST', '/api/v1/shops/a/webhooks', {'url': f'http://127.0.0.1:{port+1}/ok', 'events': ['customer.created']}, key)
def cpu():
    f = open(f'/proc/{p.pid}/stat').read().rsplit(')',1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf('SC_CLK_TCK')
stop = time.time() + secs
def publisher(ev):
    c = http.client.HTTPConnection(base, timeout=10)
    body = json.dumps({'event': ev, 'data': {'x': 'y'*500}})
    hdr = {'Authorization': 'Bearer '+key, 'Content-Type': 'application/json'}
    nxt = time.time()
    while time.time() < stop:
        c.request('POST', '/api/v1/shops/a/events', body, hdr); c.getresponse().read()
        nxt += 1.0/rate; dt = nxt - time.time()
        if dt > 0: time.sleep(dt)
ts = [threading.Thread(target=publisher, args=(e,)) for e in ('order.created', 'customer.created')]
for t in ts: t.start()
time.sleep(20)
c0, h0, t0 = cpu(), healthy[0], time.time()
for t in ts: t.join()
time.sleep(1)
c1, h1, t1 = cpu(), healthy[0], time.time()
m = urllib.request.urlopen(f'http://{base}/metrics').read().decode()
due = [l for l in m.splitlines() if l.startswith(('pancake_queue_due ', 'pancake_queue_claimed '))]
print(json.dumps({'bin': bin_, 'cpu_s': round(c1-c0,2), 'healthy': h1-h0, 'wall_s': round(t1-t0,1), 'ms_cpu_per_healthy': round(1000*(c1-c0)/max(h1-h0,1),3), 'due': due}))
p.terminate(); p.wait(timeout=60)
shutil.rmtree(d, ignore_errors=True)
