// Command receiver runs the Segment-compatible test receiver in its own
// process, so the client's CPU and memory can be measured apart from it. It
// prints its base URL on stdout; GET /stats returns its counters as JSON.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"

	"github.com/backfillhq/backfill/bench/internal/cpuprof"
	"github.com/backfillhq/backfill/internal/testkit/segmenttest"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	validate := flag.Bool("validate", false, "decode and validate every message (more receiver CPU)")
	prof := flag.String("cpuprofile", "", "write a CPU profile here until SIGINT")
	flag.Parse()
	if *prof != "" {
		stop := cpuprof.Start(*prof)
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt)
		go func() { <-sig; stop(); os.Exit(0) }()
	}
	rcv := segmenttest.NewHandler(segmenttest.Options{CountOnly: true, SkipValidation: !*validate})
	mux := http.NewServeMux()
	mux.Handle("/v1/", rcv)
	mux.HandleFunc("/stats", func(w http.ResponseWriter, _ *http.Request) {
		json.NewEncoder(w).Encode(rcv.Stats())
	})
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Fprintf(os.Stdout, "http://%s\n", ln.Addr())
	os.Stdout.Sync()
	log.Fatal(http.Serve(ln, mux))
}
