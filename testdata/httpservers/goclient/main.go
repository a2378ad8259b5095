// Command goclient is a net/http keep-alive load client for the HTTP monitor's
// cost benchmark: -conns goroutines, each on its own keep-alive connection,
// send GET -url one after another.
//
// It prints "ready" and waits for a line on stdin before it starts (so that
// the benchmark can start monitoring it first), runs for -duration, prints
// "requests N errors M", then waits for stdin to close before it exits (so
// that the benchmark can read its CPU time while it still exists).
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	url := flag.String("url", "", "URL to GET")
	conns := flag.Int("conns", 2, "keep-alive connections (one request at a time each)")
	duration := flag.Duration("duration", 5*time.Second, "how long to send requests")
	flag.Parse()
	if *url == "" || *conns < 1 {
		fmt.Fprintln(os.Stderr, "goclient: -url is required and -conns must be ≥ 1")
		os.Exit(2)
	}
	tr := &http.Transport{MaxIdleConnsPerHost: *conns, MaxConnsPerHost: *conns, DisableCompression: true}
	client := &http.Client{Transport: tr}

	in := bufio.NewReader(os.Stdin)
	fmt.Println("ready")
	if _, err := in.ReadString('\n'); err != nil {
		os.Exit(1)
	}
	var requests, errors atomic.Uint64
	deadline := time.Now().Add(*duration)
	var wg sync.WaitGroup
	for range *conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				resp, err := client.Get(*url)
				if err != nil {
					errors.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				requests.Add(1)
			}
		}()
	}
	wg.Wait()
	fmt.Printf("requests %d errors %d\n", requests.Load(), errors.Load())
	_, _ = io.Copy(io.Discard, in)
}
