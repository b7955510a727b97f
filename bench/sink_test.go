package bench

import (
	"bytes"
	"encoding/base64"
	"net/http"
	"strconv"
	"testing"
	"time"
)

func TestRecorderAccounting(t *testing.T) {
	start := time.Unix(1000, 0)
	r := NewRecorder(start, 0)
	s := start.UnixNano()
	ms := int64(time.Millisecond)
	r.record("e1", 0, s+10*ms, s, true)
	r.record("e1", 0, s+20*ms, s, true) // duplicate
	r.record("e1", 1, s+30*ms, s, true)
	r.record("e2", 0, s+15*ms, s+5*ms, false) // bad signature still arrives
	r.record("e2", 1, s+50*ms, -1, true)      // no time stamp
	r.record("e9", 0, s+60*ms, s, true)       // not expected
	r.record("", 0, s+70*ms, s, true)         // no id: counted, not accounted

	a := r.Account([]string{"e1", "e2", "e3", "e1"}, 2)
	want := Accounting{
		Expected:   6, // e1, e2, e3 (e1 answered twice counts once) × 2 webhooks
		Arrived:    4,
		Missing:    2, // e3 at both
		Duplicates: 1,
		Unexpected: 1, // e9
		Total:      7,
		BadSig:     1,
		NoTS:       1,
		NoID:       1,
		LastAt:     50 * ms,
	}
	if a != want {
		t.Errorf("Account =\n%+v, want\n%+v", a, want)
	}
	if r.Distinct() != 5 || r.Total() != 7 {
		t.Errorf("distinct %d total %d", r.Distinct(), r.Total())
	}
	// Fan-out beyond 64 webhooks uses more bitset words.
	r2 := NewRecorder(start, 2)
	for i := range 130 {
		r2.record("e", i, s+int64(i), s, true)
	}
	r2.record("e", 129, s+200, s, true)
	if a := r2.Account([]string{"e"}, 130); a.Arrived != 130 || a.Missing != 0 || a.Duplicates != 1 {
		t.Errorf("wide fan-out: %+v", a)
	}
	if got := len(r2.snapshot()); got != 2 || r2.overflow != 129 {
		t.Errorf("timeline kept %d arrivals, overflow %d: want the bound 2 and 129", got, r2.overflow)
	}
	// Only first arrivals carry the end-to-end latency into the figures.
	arr := r.snapshot()
	if !arr[1].dup || arr[0].dup || arr[0].lat != 10*ms || arr[3].lat != 10*ms || arr[4].lat != -1 {
		t.Errorf("arrivals %+v", arr)
	}
}

func TestJSONStringField(t *testing.T) {
	cases := []struct {
		in, key, want string
		ok            bool
	}{
		{`{"id":"evt_1","data":{"bench_ts":"123"}}`, "bench_ts", "123", true},
		{`{"id": "evt_1", "data": {"bench_ts" : "456"}}`, "bench_ts", "456", true},
		{`{"id":"evt_1","data":{"order_id":"9"}}`, "id", "evt_1", true},
		{`{"data":{"order_id":"9"},"id":"evt_2"}`, "id", "evt_2", true},
		{`{"note":"bench_ts","bench_ts":"77"}`, "bench_ts", "77", true},
		{`{"bench_ts":123}`, "bench_ts", "", false},
		{`{"bench_ts":"1\"2"}`, "bench_ts", "", false},
		{`{"bench_ts":"12`, "bench_ts", "", false},
		{``, "id", "", false},
	}
	for _, c := range cases {
		got := jsonStringField([]byte(c.in), c.key)
		if (got != nil) != c.ok || string(got) != c.want {
			t.Errorf("jsonStringField(%s, %s) = %q, want %q", c.in, c.key, got, c.want)
		}
	}
}

func TestParseHookPath(t *testing.T) {
	if shop, i, ok := parseHookPath("/hook/bench-ab-single/12"); !ok || shop != "bench-ab-single" || i != 12 {
		t.Errorf("got %q %d %v", shop, i, ok)
	}
	for _, p := range []string{"/hook/x", "/hook//1", "/hook/x/-1", "/hook/x/a", "/other/x/1", "/hook/x/99999999"} {
		if _, _, ok := parseHookPath(p); ok {
			t.Errorf("%s accepted", p)
		}
	}
}

func TestSinkOverHTTP(t *testing.T) {
	sink, err := StartSink()
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	key := []byte("0123456789abcdef0123456789abcdef")
	secret := "whsec_" + base64.StdEncoding.EncodeToString(key)
	start := time.Now()
	rec := NewRecorder(start, 0)
	if err := rec.SetSecret(0, secret); err != nil {
		t.Fatal(err)
	}
	sink.Register("s1", rec)
	hc := newClient(4)
	defer hc.CloseIdleConnections()

	p := newPayload("s1", 1024)
	post := func(url, id string, goodSig, header bool) int {
		t.Helper()
		ts := time.Now()
		body := p.envelope(nil, id, "s1", ts, ts.UnixNano(), 1)
		req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		if header {
			req.Header.Set("webhook-id", id)
		}
		req.Header.Set("webhook-timestamp", strconv.FormatInt(ts.Unix(), 10))
		sig := sign(key, id, ts.Unix(), body)
		if !goodSig {
			sig = sign([]byte("wrong"), id, ts.Unix(), body)
		}
		req.Header.Set("webhook-signature", "v1,bm9wZQ== "+sig) // a rotation: two entries
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if st := post(sink.HookURL("s1", 0), "evt_a", true, true); st != 200 {
		t.Errorf("status %d", st)
	}
	post(sink.HookURL("s1", 0), "evt_a", true, false) // id from the body: a duplicate
	post(sink.HookURL("s1", 0), "evt_b", false, true)
	post(sink.HookURL("other", 0), "evt_c", true, true) // stray
	if st := post(sink.URL+"/nothing", "evt_d", true, true); st != 404 {
		t.Errorf("bad path: status %d", st)
	}
	a := rec.Account([]string{"evt_a", "evt_b"}, 1)
	if a.Arrived != 2 || a.Duplicates != 1 || a.BadSig != 1 || a.Total != 3 || a.NoTS != 0 || a.Missing != 0 {
		t.Errorf("accounting %+v", a)
	}
	if sink.Stray() != 1 {
		t.Errorf("stray %d", sink.Stray())
	}
	for _, x := range rec.snapshot() {
		if x.lat < 0 || x.lat > int64(10*time.Second) || x.at < 0 {
			t.Errorf("arrival %+v", x)
		}
	}
	sink.Unregister("s1")
	post(sink.HookURL("s1", 0), "evt_e", true, true)
	if sink.Stray() != 2 || rec.Total() != 3 {
		t.Errorf("after Unregister: stray %d, recorded %d", sink.Stray(), rec.Total())
	}
}

// With a Delay, the sink answers a delivery only after it, and takes the
// arrival's time when the request came, not when it answers.
func TestSinkReceiverDelay(t *testing.T) {
	sink, err := StartSink()
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	const delay = 400 * time.Millisecond
	rec := NewRecorder(time.Now(), 0)
	rec.Delay = delay
	sink.Register("slow", rec)
	p := newPayload("slow", 64)
	ts := time.Now()
	body := p.envelope(nil, "evt_slow", "slow", ts, ts.UnixNano(), 1)
	req, _ := http.NewRequest(http.MethodPost, sink.HookURL("slow", 0), bytes.NewReader(body))
	req.Header.Set("webhook-id", "evt_slow")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	took := time.Since(ts)
	if resp.StatusCode != http.StatusOK || took < delay {
		t.Errorf("answered %d after %v, want 200 after at least %v", resp.StatusCode, took, delay)
	}
	arr := rec.snapshot()
	if len(arr) != 1 || arr[0].lat < 0 || arr[0].lat >= int64(delay) {
		t.Errorf("arrival %+v: want its latency taken when the request came, before the %v wait", arr, delay)
	}
}

func TestPayloadSize(t *testing.T) {
	p := newPayload("bench-abcdef-single", 1024)
	now := time.Now().UnixNano()
	d := p.data(nil, now, 12345)
	if len(d) < 1000 || len(d) > 1050 {
		t.Errorf("data is %d bytes, want about 1024", len(d))
	}
	if v := jsonStringField(d, tsField); string(v) != strconv.FormatInt(now, 10) {
		t.Errorf("time stamp %q", v)
	}
	b := p.batch(nil, now, 0, 3)
	if !bytes.HasPrefix(b, []byte(`{"events":[{"event":"order.created","data":{`)) || !bytes.HasSuffix(b, []byte("}]}")) {
		t.Errorf("batch body %.80s…", b)
	}
}
