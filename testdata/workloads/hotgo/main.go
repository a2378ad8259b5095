// Command hotgo burns CPU, about 75% of it in hotA and 25% in hotB: both run
// the same dependent multiply-add chain, hotA three times as long.
//
// Usage: hotgo [rounds]   (no argument or 0: run until killed)
// It prints the entry addresses of hotA and hotB first, so that tests can
// check symbolization of (stripped) Go binaries.
package main

import (
	"fmt"
	"os"
	"reflect"
	"strconv"
)

const chunk = 10000000 // ~10 ms per phase: much longer than a sampling period, so sampling cannot alias with the rounds

var sink uint64

//go:noinline
func hotA(n int) {
	x := sink
	for i := 0; i < n; i++ {
		x = x*6364136223846793005 + 1442695040888963407
	}
	sink = x
}

//go:noinline
func hotB(n int) {
	x := sink
	for i := 0; i < n; i++ {
		x = x*2862933555777941757 + 3037000493
	}
	sink = x
}

func main() {
	rounds := 0
	if len(os.Args) > 1 {
		n, err := strconv.Atoi(os.Args[1])
		if err != nil {
			fmt.Fprintln(os.Stderr, "hotgo: rounds:", err)
			os.Exit(2)
		}
		rounds = n
	}
	fmt.Printf("hotA=%#x hotB=%#x\n", reflect.ValueOf(hotA).Pointer(), reflect.ValueOf(hotB).Pointer())
	for r := 0; rounds == 0 || r < rounds; r++ {
		hotA(3 * chunk)
		hotB(chunk)
	}
}
