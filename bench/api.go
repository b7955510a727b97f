package bench

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// requestTimeout bounds every request the tool makes.
const requestTimeout = 30 * time.Second

// newTransport returns a keep-alive transport that keeps conns idle
// connections per host and refuses to connect anywhere but loopback.
func newTransport(conns int) *http.Transport {
	d := &net.Dialer{
		Timeout:   5 * time.Second,
		KeepAlive: 30 * time.Second,
		Control: func(network, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil || !ap.Addr().Unmap().IsLoopback() {
				return fmt.Errorf("bench: refusing to connect to %s: loopback only", address)
			}
			return nil
		},
	}
	return &http.Transport{
		DialContext:           d.DialContext,
		MaxIdleConns:          conns,
		MaxIdleConnsPerHost:   conns,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: requestTimeout,
		DisableCompression:    true,
	}
}

func newClient(conns int) *http.Client {
	return &http.Client{
		Transport: newTransport(conns),
		Timeout:   requestTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// api talks to the server under test.
type api struct {
	base  string
	admin string
	hc    *http.Client
}

// do sends one request and returns the status and (at most 1 MiB of) body.
func (a *api) do(ctx context.Context, method, path, bearer string, body []byte) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, b, err
}

func (a *api) createShop(ctx context.Context, shop string) (string, error) {
	body, _ := json.Marshal(map[string]string{"shop_id": shop})
	st, b, err := a.do(ctx, http.MethodPost, "/api/v1/admin/shops", a.admin, body)
	if err != nil {
		return "", fmt.Errorf("create shop %s: %w", shop, err)
	}
	if st != http.StatusCreated && st != http.StatusOK {
		return "", fmt.Errorf("create shop %s: status %d: %s", shop, st, snippet(b))
	}
	var out struct {
		APIKey string `json:"api_key"`
	}
	if err := json.Unmarshal(b, &out); err != nil || out.APIKey == "" {
		return "", fmt.Errorf("create shop %s: no api_key in %s", shop, snippet(b))
	}
	return out.APIKey, nil
}

// createWebhook returns the new webhook's secret_key.
func (a *api) createWebhook(ctx context.Context, shop, key, url string) (string, error) {
	body, _ := json.Marshal(map[string]any{"url": url, "events": []string{"order.created"}})
	st, b, err := a.do(ctx, http.MethodPost, "/api/v1/shops/"+shop+"/webhooks", key, body)
	if err != nil {
		return "", fmt.Errorf("create webhook: %w", err)
	}
	if st != http.StatusCreated && st != http.StatusOK {
		return "", fmt.Errorf("create webhook for %s: status %d: %s", shop, st, snippet(b))
	}
	var out struct {
		SecretKey string `json:"secret_key"`
	}
	_ = json.Unmarshal(b, &out)
	return out.SecretKey, nil
}

func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// tsField is the key, inside each event's data, of the publish time (unix ns,
// as a JSON string so that no decoder rounds it).
const tsField = "bench_ts"

// payload builds the ~EventBytes JSON bodies cheaply: a template split around
// the two parts that change, the time stamp and the order number.
type payload struct {
	tail []byte // everything after the order number, closing brace included
}

func newPayload(shop string, size int) *payload {
	fixed := `","shop_id":"` + shop + `","status":"new","currency":"VND","total_price":325000,` +
		`"customer":{"id":"cus_0001","name":"Nguyen Van A","phone":"0900000000","email":"a@example.com"},` +
		`"items":[{"sku":"SKU-001","name":"Banh xeo","quantity":2,"price":45000},` +
		`{"sku":"SKU-002","name":"Ca phe sua da","quantity":3,"price":35000},` +
		`{"sku":"SKU-003","name":"Bun cha","quantity":2,"price":65000}],` +
		`"shipping":{"address":"1 Le Loi, District 1, Ho Chi Minh City","method":"standard"},"note":"`
	// The head is `{"bench_ts":"<19 digits>","order_id":"<up to 12>`.
	head := len(`{"`+tsField+`":"","order_id":"`) + 19 + 8
	pad := size - head - len(fixed) - len(`"}`)
	var b strings.Builder
	b.WriteString(fixed)
	for i := 0; i < pad; i++ {
		b.WriteByte("abcdefghijklmnopqrstuvwxyz"[i%26])
	}
	b.WriteString(`"}`)
	return &payload{tail: []byte(b.String())}
}

// data appends one event's data object to dst.
func (p *payload) data(dst []byte, ts, seq int64) []byte {
	dst = append(dst, `{"`+tsField+`":"`...)
	dst = strconv.AppendInt(dst, ts, 10)
	dst = append(dst, `","order_id":"`...)
	dst = strconv.AppendInt(dst, seq, 10)
	return append(dst, p.tail...)
}

// event appends one publish request body {"event":...,"data":...} to dst.
func (p *payload) event(dst []byte, ts, seq int64) []byte {
	dst = append(dst, `{"event":"order.created","data":`...)
	dst = p.data(dst, ts, seq)
	return append(dst, '}')
}

// batch appends a batch body of n events to dst.
func (p *payload) batch(dst []byte, ts, seq int64, n int) []byte {
	dst = append(dst, `{"events":[`...)
	for i := 0; i < n; i++ {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = p.event(dst, ts, seq+int64(i))
	}
	return append(dst, "]}"...)
}

// envelope appends what the server would POST to a receiver for one event.
func (p *payload) envelope(dst []byte, id, shop string, created time.Time, ts, seq int64) []byte {
	dst = append(dst, `{"id":"`...)
	dst = append(dst, id...)
	dst = append(dst, `","event":"order.created","shop_id":"`...)
	dst = append(dst, shop...)
	dst = append(dst, `","created_at":"`...)
	dst = created.UTC().AppendFormat(dst, "2006-01-02T15:04:05.000Z07:00")
	dst = append(dst, `","data":`...)
	dst = p.data(dst, ts, seq)
	return append(dst, '}')
}

// sign returns a Standard Webhooks webhook-signature value for one message.
func sign(key []byte, id string, ts int64, body []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id))
	m.Write([]byte{'.'})
	m.Write(strconv.AppendInt(nil, ts, 10))
	m.Write([]byte{'.'})
	m.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}
