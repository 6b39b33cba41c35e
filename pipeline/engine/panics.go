package engine

import (
	"errors"
	"log/slog"

	"github.com/backfillhq/backfill/pipeline"
)

func isPanic(err error) bool {
	var pe *pipeline.PanicError
	return errors.As(err, &pe)
}

// logPanicStack logs the stack of the panic err holds, if any.
func logPanicStack(log *slog.Logger, err error, args ...any) {
	var pe *pipeline.PanicError
	if errors.As(err, &pe) {
		log.Error("the panic's stack", append(args, "stack", string(pe.Stack))...)
	}
}

// closeSafely runs close where its error has nowhere to go (a deferred
// close, a cleanup after another error) and is ignored, but a panic is
// logged with its stack instead of ending the process.
func closeSafely(log *slog.Logger, what string, close func() error, args ...any) {
	if err := pipeline.Safely(what, close); isPanic(err) {
		log.Error(what+" panicked", append(args, "error", err)...)
		logPanicStack(log, err, args...)
	}
}
