// Package arrowtest holds what tests of Arrow-handling code share.
package arrowtest

import (
	"testing"

	"github.com/apache/arrow/go/v15/arrow/memory"
)

// CheckedMem is an allocator that fails t if anything allocated from it is
// still held when t ends: every record retained must be released.
func CheckedMem(t testing.TB) *memory.CheckedAllocator {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	t.Cleanup(func() { mem.AssertSize(t, 0) })
	return mem
}
