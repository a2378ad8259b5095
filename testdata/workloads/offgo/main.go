// Command offgo spends its time off the CPU, about 75% of its worker's
// blocked time in waitLong and 25% in waitShort: waitShort reads one byte
// from a FIFO that the test feeds every 80 ms, waitLong then sleeps 60 ms.
//
// The worker goroutine is locked to its OS thread and blocks in system calls
// made on its own stack (syscall.Read on a blocking descriptor,
// syscall.Nanosleep), so the thread that leaves the CPU is running the
// worker's frames. A goroutine blocked on a channel, a mutex or time.Sleep
// is different: it is parked by the Go scheduler and its thread (an M)
// sleeps in the runtime (runtime.futex under runtime.notesleep/mPark on
// the g0 stack), so off-CPU stacks show the scheduler, not the parked
// goroutine's frames. main shows that: it blocks on a channel for ever.
//
// Usage: offgo FIFO [sleep_ms]   (exits when the writer closes the FIFO)
// It prints the entry addresses of waitLong and waitShort first.
package main

import (
	"fmt"
	"os"
	"reflect"
	"runtime"
	"strconv"
	"syscall"
	"time"
)

var sleep = 60 * time.Millisecond

//go:noinline
func waitLong() {
	ts := syscall.NsecToTimespec(sleep.Nanoseconds())
	for syscall.Nanosleep(&ts, &ts) == syscall.EINTR {
	}
}

//go:noinline
func waitShort(fd int, buf []byte) (int, error) {
	return syscall.Read(fd, buf)
}

func worker(fifo string, done chan<- error) {
	runtime.LockOSThread()
	// A blocking descriptor (os.Open would make it non-blocking and park
	// the goroutine in the netpoller instead).
	fd, err := syscall.Open(fifo, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		done <- err
		return
	}
	buf := make([]byte, 1)
	for {
		n, err := waitShort(fd, buf)
		if n <= 0 {
			done <- err // writer gone (nil) or a read error
			return
		}
		waitLong()
	}
}

//go:noinline
func waitOnChannel(done <-chan error) error {
	return <-done
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: offgo FIFO [sleep_ms]")
		os.Exit(2)
	}
	if len(os.Args) > 2 {
		ms, err := strconv.Atoi(os.Args[2])
		if err != nil {
			fmt.Fprintln(os.Stderr, "offgo: sleep_ms:", err)
			os.Exit(2)
		}
		sleep = time.Duration(ms) * time.Millisecond
	}
	fmt.Printf("waitLong=%#x waitShort=%#x\n", reflect.ValueOf(waitLong).Pointer(), reflect.ValueOf(waitShort).Pointer())
	done := make(chan error)
	go worker(os.Args[1], done)
	if err := waitOnChannel(done); err != nil {
		fmt.Fprintln(os.Stderr, "offgo:", err)
		os.Exit(1)
	}
}
