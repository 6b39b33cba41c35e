package pgtest

import (
	"context"
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(Main(m)) }

// A cluster starts, takes connections with its password, gives each test
// its own database, and is gone (its directory too) once stopped.
func TestStartAndStop(t *testing.T) {
	s := Start(t)
	db := s.NewDatabase(t)
	s.Exec(t, db, "CREATE TABLE x (id int)", "INSERT INTO x VALUES (1), (2)")
	c := s.Connect(t, db)
	var n int
	if err := c.QueryRow(context.Background(), "SELECT count(*) FROM x").Scan(&n); err != nil || n != 2 {
		t.Fatalf("count %d, %v", n, err)
	}
	c.Close(context.Background())
	dir := s.Dir
	s.Stop()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("data directory left behind: %v", err)
	}
}

func TestShared(t *testing.T) {
	a, b := Shared(t), Shared(t)
	if a != b {
		t.Fatal("two shared servers")
	}
	s := a.NewDatabase(t)
	a.Exec(t, s, "SELECT 1")
}
