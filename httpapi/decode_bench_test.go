package httpapi_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/pancake-pos/pancake-webhooks/httpapi"
)

// benchOrder is about 1 KiB of order data, shaped like the load tool's.
func benchOrder(i int) string {
	return `{"order_id":"ord_` + strconv.Itoa(i) + `","status":"new","currency":"VND","total_price":325000,` +
		`"customer":{"id":"cus_0001","name":"Nguyen Van A","phone":"0900000000","email":"a@example.com"},` +
		`"items":[{"sku":"SKU-001","name":"Banh xeo","quantity":2,"price":45000},` +
		`{"sku":"SKU-002","name":"Ca phe sua da","quantity":3,"price":35000}],` +
		`"shipping":{"address":"1 Le Loi, District 1, Ho Chi Minh City","method":"standard"},"note":"` +
		strings.Repeat("abcdefghijklmnopqrstuvwxyz", 27) + `"}`
}

// BenchmarkDecodePublish decodes a single publish body, and a batch of 100,
// as POST /events and /events/batch do before anything is stored.
func BenchmarkDecodePublish(b *testing.B) {
	single := []byte(`{"event":"order.created","data":` + benchOrder(1) + `}`)
	var sb strings.Builder
	sb.WriteString(`{"events":[`)
	for i := range 100 {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(`{"event":"order.created","id":"k` + strconv.Itoa(i) + `","data":` + benchOrder(i) + `}`)
	}
	sb.WriteString(`]}`)
	batch := []byte(sb.String())
	b.Run("Single", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(single)))
		for b.Loop() {
			if _, err := httpapi.DecodePublish(single); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Batch100", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(batch)))
		for b.Loop() {
			ins, err := httpapi.DecodePublishBatch(batch)
			if err != nil || len(ins) != 100 {
				b.Fatal(len(ins), err)
			}
		}
	})
}
