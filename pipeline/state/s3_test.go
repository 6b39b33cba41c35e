package state_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/backfillhq/backfill/internal/testkit/s3test"
	"github.com/backfillhq/backfill/pipeline/state"
)

func TestCheckpointStoreOnS3(t *testing.T) {
	srv := s3test.Start(t)
	srv.CreateBucket(t, "state")
	srv.SetCredentialsEnv(t)
	ctx := context.Background()
	url := "s3://state/backfills?endpoint=" + srv.Endpoint + "&path_style=true&region=us-east-1"

	a, err := state.OpenS3(ctx, url, "orders", 1, 4)
	if err != nil {
		t.Fatal(err)
	}
	if a.Location() != "s3://state/backfills/orders/checkpoint-shard-1-of-4.json" {
		t.Fatalf("location %s", a.Location())
	}
	if c, err := a.Load(ctx); err != nil || c != nil {
		t.Fatalf("empty store: %v %v", c, err)
	}
	cp := &state.Checkpoint{Version: 1, Name: "orders", Splits: map[string]state.SplitState{"s3://b/k": {Offset: 42}}}
	if err := a.Save(ctx, cp); err != nil {
		t.Fatal(err)
	}
	cp.Splits["s3://b/k"] = state.SplitState{Offset: 100, Done: true}
	if err := a.Save(ctx, cp); err != nil {
		t.Fatal(err)
	}

	// A second run of the same shard reads the progress...
	b, _ := state.OpenS3(ctx, url, "orders", 1, 4)
	got, err := b.Load(ctx)
	if err != nil || got.Splits["s3://b/k"] != (state.SplitState{Offset: 100, Done: true}) {
		t.Fatalf("loaded %+v, %v", got, err)
	}
	// ...and once it has written, the first run may not overwrite it.
	got.Splits["s3://b/other"] = state.SplitState{Offset: 7}
	if err := b.Save(ctx, got); err != nil {
		t.Fatal(err)
	}
	err = a.Save(ctx, cp)
	// state.ErrConflict: the runner stops at once on it, where it
	// retries other failed saves.
	if !errors.Is(err, state.ErrConflict) || !strings.Contains(err.Error(), "another run") {
		t.Fatalf("concurrent writer not detected: %v", err)
	}

	if _, err := state.OpenS3(ctx, "s3://state/x?endpont=y", "orders", 0, 1); err == nil ||
		!strings.Contains(err.Error(), `unknown option "endpont"`) {
		t.Fatalf("bad option: %v", err)
	}
}

// A save whose PUT landed while its response was lost is not taken for
// another run's write: the SDK's retry (same body) and the next save (new
// body) both meet a 412 on the ETag the store last knew, and find the
// object is what this store sent.
func TestCheckpointSaveSurvivesALostResponse(t *testing.T) {
	srv := s3test.Start(t)
	srv.CreateBucket(t, "lost")
	srv.SetCredentialsEnv(t)
	proxy := srv.Counting(t)
	ctx := context.Background()
	url := "s3://lost/b?endpoint=" + proxy.URL + "&path_style=true&region=us-east-1"
	st, err := state.OpenS3(ctx, url, "orders", 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Load(ctx); err != nil {
		t.Fatal(err)
	}
	cp := &state.Checkpoint{Version: 1, Name: "orders", Splits: map[string]state.SplitState{"a": {Offset: 1}}}
	if err := st.Save(ctx, cp); err != nil {
		t.Fatal(err)
	}

	// The first attempt lands and answers 500; the SDK retries the same
	// body on the old ETag.
	cp.Splits["a"] = state.SplitState{Offset: 2}
	proxy.FailNextPuts(1)
	if err := st.Save(ctx, cp); err != nil {
		t.Fatalf("a retried PUT that had landed: %v", err)
	}

	// Every attempt answers 500 (the first landed): the save fails, and
	// the next one, with a new body, must still go through.
	cp.Splits["a"] = state.SplitState{Offset: 3}
	proxy.FailNextPuts(100)
	if err := st.Save(ctx, cp); err == nil || errors.Is(err, state.ErrConflict) {
		t.Fatalf("a save that saw only 500s: %v", err)
	}
	proxy.FailNextPuts(0)
	cp.Splits["a"] = state.SplitState{Offset: 4, Done: true}
	if err := st.Save(ctx, cp); err != nil {
		t.Fatalf("the save after a PUT in doubt: %v", err)
	}
	got, err := st.Load(ctx)
	if err != nil || got.Splits["a"] != (state.SplitState{Offset: 4, Done: true}) {
		t.Fatalf("stored %+v, %v", got, err)
	}

	// Another run's write is still a conflict.
	other, _ := state.OpenS3(ctx, url, "orders", 0, 1)
	if _, err := other.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if err := other.Save(ctx, &state.Checkpoint{Version: 1, Name: "orders"}); err != nil {
		t.Fatal(err)
	}
	if err := st.Save(ctx, cp); !errors.Is(err, state.ErrConflict) {
		t.Fatalf("another run's write: %v", err)
	}
}
