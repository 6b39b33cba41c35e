package jsonscan

import "testing"

// A Segment-like properties object: what the encoder validates per row.
var benchObject = []byte(`{"orderId":"o123456","revenue":984.86,"currency":"GBP","quantity":9,"coupon":"WELCOME",` +
	`"products":[{"sku":"sku-1","name":"Blue \"Denim\" Jacket","price":79.5},{"sku":"sku-2","name":"Socks","price":5}],` +
	`"page":{"path":"/checkout/98486","title":"Checkout – step 2"}}`)

func BenchmarkValid(b *testing.B) {
	b.SetBytes(int64(len(benchObject)))
	for i := 0; i < b.N; i++ {
		if _, err := Strict.Valid(benchObject); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMembers(b *testing.B) {
	b.SetBytes(int64(len(benchObject)))
	buf := make([]Member, 0, 16)
	for i := 0; i < b.N; i++ {
		var err error
		if buf, _, err = Members(benchObject, buf[:0]); err != nil {
			b.Fatal(err)
		}
	}
}
