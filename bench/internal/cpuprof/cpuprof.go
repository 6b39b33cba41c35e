// Package cpuprof starts the benchmark commands' -cpuprofile.
package cpuprof

import (
	"log"
	"os"
	"runtime/pprof"
)

// Start writes a CPU profile to path ("" does nothing) until the returned
// stop is called.
func Start(path string) (stop func()) {
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		log.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		log.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}
