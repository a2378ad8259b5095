// Command goinline is the symbolizer's test of Go inlining: hot (kept out
// of line) calls middle, which the compiler inlines into hot, and middle
// calls leaf (in leaf.go, inlined too), which calls the standard library's
// syscall.NsecToTimespec (inlined too). Once, hot calls mark (inlined),
// which calls capture (out of line), which records the stack with
// runtime.Callers: capture's return address is in inlined code.
//
// It prints what the Go runtime itself says about its code, for the test
// to compare with the symbolizer's reading of the binary:
//
//	hot=0xENTRY
//	pc 0xPC FRAMES          for every pc of hot: the frames at that pc
//	stack 0xPC 0xPC ...     the physical return addresses from leaf's call of runtime.Callers up
//	callers FRAMES          the frames the runtime gives for that stack
//	end
//
// FRAMES are name@file:line, innermost first, separated by ';'. Then it
// sleeps until killed, so that the test can symbolize its stack through
// /proc.
package main

import (
	"fmt"
	"os"
	"reflect"
	"runtime"
	"strings"
	"time"
)

var (
	sink int64
	pcs  [64]uintptr
	npcs int
)

//go:noinline
func hot(n int64) {
	for i := int64(0); i < n; i++ {
		sink += middle(i)
		if i == 42 {
			mark()
		}
	}
}

// middle is small enough to be inlined into hot.
func middle(i int64) int64 {
	v := i*7 + sink
	return leaf(v) ^ i
}

// mark is inlined into hot.
func mark() {
	capture()
}

//go:noinline
func capture() {
	npcs = runtime.Callers(2, pcs[:]) // from mark, in hot, up
}

func main() {
	hot(100)
	entry := reflect.ValueOf(hot).Pointer()
	fmt.Printf("hot=%#x\n", entry)
	for pc := entry; ; pc++ {
		f := runtime.FuncForPC(pc)
		if f == nil || f.Entry() != entry {
			break
		}
		// CallersFrames takes return addresses and backs up by one;
		// the trailing 0 makes it expand the inlined frames at pc
		// (it only does so when more pcs follow).
		fmt.Printf("pc %#x %s\n", pc, frames([]uintptr{pc + 1, 0}))
	}
	// runtime.Callers has one pc per logical frame, the inlined ones
	// included; a profiler sees one per physical frame, the first pc of
	// each group of frames that ends in a real function (Func != nil).
	var phys []string
	fs := runtime.CallersFrames(pcs[:npcs])
	for i, start := 0, true; ; i++ {
		f, more := fs.Next()
		if start {
			phys = append(phys, fmt.Sprintf("%#x", pcs[i]))
		}
		start = f.Func != nil
		if !more {
			break
		}
	}
	fmt.Printf("stack %s\n", strings.Join(phys, " "))
	fmt.Printf("callers %s\n", frames(pcs[:npcs]))
	fmt.Println("end")
	os.Stdout.Sync()
	for {
		time.Sleep(time.Hour)
	}
}

func frames(pcs []uintptr) string {
	var out []string
	fs := runtime.CallersFrames(pcs)
	for {
		f, more := fs.Next()
		if f.Function != "" {
			out = append(out, fmt.Sprintf("%s@%s:%d", f.Function, f.File, f.Line))
		}
		if !more {
			break
		}
	}
	return strings.Join(out, ";")
}
