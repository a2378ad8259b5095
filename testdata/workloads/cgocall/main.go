// cgocall spends its CPU in C code called from Go through cgo: main.main
// -> main.goCaller -> (cgo) c_mid -> c_leaf. The C code is compiled with
// cgo's default flags (-O2 -g: no frame pointers), and runs on the thread's
// system stack while the Go frames stay on the goroutine stack.
// It prints "ready=0x1" first.
package main

/*
#include <stdint.h>

__attribute__((noinline)) static uint64_t c_leaf(uint64_t n)
{
	uint64_t x = 1;
	for (uint64_t i = 0; i < n; i++)
		x = x * 6364136223846793005ULL + 1442695040888963407ULL;
	return x;
}

__attribute__((noinline)) uint64_t c_mid(uint64_t n)
{
	uint64_t r = c_leaf(n);
	return r ^ (r >> 7);
}
*/
import "C"

import "fmt"

var sink uint64

//go:noinline
func goCaller(n uint64) uint64 {
	return uint64(C.c_mid(C.uint64_t(n)))
}

func main() {
	fmt.Println("ready=0x1")
	for {
		sink += goCaller(20_000_000)
	}
}
