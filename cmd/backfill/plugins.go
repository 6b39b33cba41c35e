package main

// The plugins compiled into the binary register themselves on import.
import _ "github.com/backfillhq/backfill/internal/plugins"
