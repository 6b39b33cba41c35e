package pipeline

import (
	"fmt"
	"runtime/debug"
)

// PanicError is a panic in a source, a transform or a sink, turned into an
// error: a bug on one split's data fails that split (or stops the run, as
// on_error says) with the panic's value and stack, instead of ending the
// process and a long run with it.
type PanicError struct {
	Where string // "listing splits", "opening", "reading", "transform NAME", "sink", "encoding messages", "segment sender"
	Value any
	Stack []byte
}

func (e *PanicError) Error() string {
	return fmt.Sprintf("%s panicked: %v (a bug in backfill or a plugin: please report it with the stack in the log)", e.Where, e.Value)
}

// Unwrap is the panic's value when it is an error.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}

// Safely runs f, turning a panic into a *PanicError. Plugins that keep
// state across calls use it to put that state right before they return the
// error; the runner calls every plugin through it too.
func Safely(where string, f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &PanicError{Where: where, Value: r, Stack: debug.Stack()}
		}
	}()
	return f()
}
