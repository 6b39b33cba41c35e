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

// A message as the segment sink encodes it: what the test receiver skips
// over to split a batch.
var benchMessage = []byte(`{"type":"track","event":"Payment Info Entered","userId":"u3198486","anonymousId":"ae3779b97f4",` +
	`"timestamp":"2023-01-01T00:00:31.000Z","properties":{"orderId":"o1","revenue":984.86,"currency":"GBP","quantity":9,` +
	`"coupon":"WELCOME"},"context":{"ip":"10.124.74.22","page":{"path":"/checkout/98486"},` +
	`"library":{"name":"backfill","version":"0.4.0"}},"messageId":"b616ce7e-d78c-544a-8940-4f7856c8b8c7"}`)

func BenchmarkSkip(b *testing.B) {
	b.SetBytes(int64(len(benchMessage)))
	for i := 0; i < b.N; i++ {
		if end, ok := Skip(benchMessage, 0); !ok || end != len(benchMessage) {
			b.Fatal(end, ok)
		}
	}
}
