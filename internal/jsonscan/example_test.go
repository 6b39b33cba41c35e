package jsonscan_test

import (
	"fmt"

	"github.com/backfillhq/backfill/internal/jsonscan"
)

// Members walks an object's members without decoding them: each one says
// where its key and value are, so a caller can drop, keep or copy members
// as raw bytes.
func ExampleMembers() {
	msg := []byte(`{"type":"track","sentAt":"2024-03-01T12:00:00Z","properties":{"total":9.5},"caf\u00e9":true}`)
	members, isObject, err := jsonscan.Members(msg, nil)
	fmt.Println(isObject, err)
	for _, m := range members {
		fmt.Printf("%s = %s (sentAt: %v)\n", m.Name(), msg[m.Val:m.End], m.KeyIs("sentAt"))
	}
	// Output:
	// true <nil>
	// type = "track" (sentAt: false)
	// sentAt = "2024-03-01T12:00:00Z" (sentAt: true)
	// properties = {"total":9.5} (sentAt: false)
	// café = true (sentAt: false)
}

// Valid checks that a value is JSON and, with UTF8, that its strings are
// valid UTF-8 (Segment's API refuses a body that is not); an error names
// the byte (counted from 1).
func ExampleRules_Valid() {
	strict := jsonscan.Rules{UTF8: true}
	for _, s := range []string{`{"a":[1,2.5e3,"x"]}`, `{"a":1,}`, "\"\xff\""} {
		_, err := strict.Valid([]byte(s))
		fmt.Println(err)
	}
	// Output:
	// <nil>
	// byte 8: expected a key string, got '}'
	// byte 2: invalid UTF-8
}
