package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/backfillhq/backfill/internal/testkit/s3test"
	"github.com/backfillhq/backfill/pipeline/state"
)

// A ledger on S3 is written as one object per part beside nothing else,
// readable by any Parquet reader; a resumed run removes the parts past
// its checkpoint's.
func TestLedgerOnS3(t *testing.T) {
	srv := s3test.Start(t)
	srv.CreateBucket(t, "acme")
	srv.SetCredentialsEnv(t)
	dir := t.TempDir()
	writeOrderFiles(t, dir, 2, 1000)
	opts := "?endpoint=" + srv.Endpoint + "&path_style=true&region=" + s3test.Region
	cfg := filepath.Join(dir, "p.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`name: ons3
source: {file: {path: %s/*.parquet}}
transforms:
%s
sink: {file: {path: %s/out.ndjson}}
state: s3://acme/state%s
dead_letter: %s/dead-letters.ndjson
ledger: s3://acme/ledgers%s
`, dir, ordersMap, dir, opts, dir, opts)), 0o644)
	code, _, stderr := runCLI(t, "", "run", "--progress", "none", cfg)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	ctx := context.Background()
	list := func() []string {
		out, err := srv.Client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("acme"), Prefix: aws.String("ledgers/")})
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, o := range out.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
		sort.Strings(keys)
		return keys
	}
	keys := list()
	if len(keys) == 0 || !strings.HasPrefix(keys[0], "ledgers/ons3/") || !strings.HasSuffix(keys[0], "/part-000001.parquet") {
		t.Fatalf("ledger objects %v", keys)
	}
	if !strings.Contains(stderr, "ledger     2000 rows -> s3://acme/ledgers/ons3/") {
		t.Errorf("summary:\n%s", stderr)
	}
	var rows []state.LedgerRow
	for _, k := range keys {
		obj, err := srv.Client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("acme"), Key: aws.String(k)})
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(obj.Body)
		obj.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		got, err := state.ReadLedgerPart(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		rows = append(rows, got...)
	}
	ids := map[string]bool{}
	for _, m := range messages(t, filepath.Join(dir, "out.ndjson")) {
		ids[m["messageId"].(string)] = true
	}
	for _, r := range rows {
		if r.Fate != state.FateDelivered || !ids[r.MessageID] {
			t.Fatalf("ledger row %+v", r)
		}
	}
	if len(rows) != 2000 || distinctRows(rows) != 2000 {
		t.Fatalf("%d ledger rows, %d distinct; want 2000", len(rows), distinctRows(rows))
	}

	// A part past the checkpoint's (a killed run's last) goes when the
	// run resumes.
	orphan := keys[0][:strings.LastIndex(keys[0], "/")+1] + "part-000099.parquet"
	srv.Put(t, "acme", orphan, []byte("a part no checkpoint counts"))
	if code, _, stderr := runCLI(t, "", "run", "--progress", "none", cfg); code != 0 {
		t.Fatalf("second run: exit %d\n%s", code, stderr)
	}
	if after := list(); strings.Join(after, ",") != strings.Join(keys, ",") {
		t.Fatalf("after resuming: %v, want %v", after, keys)
	}
}
