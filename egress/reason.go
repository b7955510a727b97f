package egress

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// reason turns a transport error into a short, user-facing FailureReason.
// It never echoes the URL (its query may carry a token): the *url.Error
// wrapper is dropped first and only fixed phrases or short TLS and DNS
// details are used. elapsed is how long the attempt ran.
func (c *Client) reason(ctx context.Context, err error, elapsed time.Duration) string {
	if errors.Is(err, errBlocked) {
		return errBlocked.Error()
	}
	if ctxErr := ctx.Err(); ctxErr != nil { // the caller gave up, not the receiver
		if errors.Is(ctxErr, context.DeadlineExceeded) {
			return "timeout after " + roundDuration(elapsed)
		}
		return "cancelled"
	}
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		err = urlErr.Err
	}
	msg := err.Error()

	var (
		dnsErr      *net.DNSError
		opErr       *net.OpError
		hostErr     x509.HostnameError
		unknownCA   x509.UnknownAuthorityError
		invalidCert x509.CertificateInvalidError
		certErr     *tls.CertificateVerificationError
		recordErr   tls.RecordHeaderError
		netErr      net.Error
	)
	switch {
	case errors.As(err, &dnsErr):
		switch {
		case dnsErr.IsNotFound:
			return "dns lookup failed: no such host"
		case dnsErr.IsTimeout:
			return "dns lookup failed: timeout"
		}
		return "dns lookup failed"

	case errors.As(err, &hostErr):
		return "tls handshake failed: certificate is not valid for this host"
	case errors.As(err, &unknownCA):
		return "tls handshake failed: certificate signed by an unknown authority"
	case errors.As(err, &invalidCert):
		if invalidCert.Reason == x509.Expired {
			return "tls handshake failed: certificate has expired or is not yet valid"
		}
		return "tls handshake failed: invalid certificate"
	case errors.As(err, &certErr):
		return "tls handshake failed: certificate not trusted"
	case errors.As(err, &recordErr):
		return "tls handshake failed: the receiver did not answer with TLS"
	case strings.Contains(msg, "server gave HTTP response to HTTPS client"): // net/http's form of a RecordHeaderError
		return "tls handshake failed: the receiver answered plain HTTP"
	case errors.As(err, &opErr) && (opErr.Op == "remote error" || opErr.Op == "local error"):
		return "tls handshake failed: " + opErr.Op + ": " + short(strings.TrimPrefix(opErr.Err.Error(), "tls: "))
	case strings.Contains(msg, "TLS handshake timeout"): // net/http's unexported tlsHandshakeTimeoutError
		return "tls handshake timeout after " + roundDuration(c.cfg.ConnectTimeout)

	case errors.As(err, &opErr) && opErr.Op == "dial" && opErr.Timeout() && c.cfg.ConnectTimeout < c.cfg.Timeout:
		return "connect timeout after " + roundDuration(c.cfg.ConnectTimeout)
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return "timeout after " + roundDuration(c.cfg.Timeout)

	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "connection reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed by the receiver"
	case errors.Is(err, syscall.EHOSTUNREACH):
		return "host unreachable"
	case errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.EADDRNOTAVAIL):
		return "network unreachable"

	case strings.Contains(msg, "malformed HTTP"):
		return "invalid HTTP response"
	case strings.Contains(msg, "malformed MIME header"), strings.Contains(msg, "missing colon"):
		return "invalid HTTP response: malformed header"
	case strings.Contains(msg, "response headers exceeded"):
		return "response headers too large"
	case strings.Contains(msg, "invalid header field"):
		return "invalid request header"
	case strings.HasPrefix(msg, "tls: "):
		return "tls handshake failed: " + short(strings.TrimPrefix(msg, "tls: "))
	}
	return "request failed"
}

// short keeps a detail to a line.
func short(s string) string {
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = s[:i]
	}
	if len(s) > 80 {
		s = strings.ToValidUTF8(s[:80], "")
	}
	return s
}

// roundDuration prints d the way a user reads it: "15s", "200ms", "2.5s".
func roundDuration(d time.Duration) string {
	switch {
	case d >= time.Second:
		d = d.Round(100 * time.Millisecond)
	case d >= time.Millisecond:
		d = d.Round(time.Millisecond)
	}
	return fmt.Sprint(d)
}
