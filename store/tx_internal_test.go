package store

import "testing"

func TestAnonymousParams(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4)`, `INSERT INTO t (a, b) VALUES (?, ?), (?, ?)`},
		{`SELECT x FROM t WHERE a = 'cost $1' AND b = $1`, `SELECT x FROM t WHERE a = 'cost $1' AND b = ?`},
		{`SELECT x FROM t WHERE a <= $2 AND b = $1`, `SELECT x FROM t WHERE a <= $2 AND b = $1`}, // out of order
		{`SELECT x FROM t WHERE a <= $1 OR b <= $1`, `SELECT x FROM t WHERE a <= $1 OR b <= $1`}, // used twice
		{`SELECT 1`, `SELECT 1`},
		{`SELECT $`, `SELECT $`},
		{`VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`, `VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`},
	} {
		if got := anonymousParams(tc.in); got != tc.want {
			t.Errorf("anonymousParams(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
