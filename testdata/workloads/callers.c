// callers exercises stack unwinding without frame pointers. It is built
// with the compiler's defaults (gcc -O2: no frame pointers, as distributions
// build their packages).
//
// Usage: callers MODE [arg]
//   cpu [N]    one hot leaf called by caller_a, caller_b and caller_c in
//              the ratio 6:3:1 of CPU time, forever (or N cycles of ~40 ms)
//   deep N     recurse N frames deep (through recurse), then spin in the leaf
//   sleep [U]  block in libc: sleep_a in nanosleep (6 U ms), read_b in read
//              of a timerfd that expires 3 U ms later, sleep_c in nanosleep
//              (U ms): 6:3:1 of the time, forever (U defaults to 10). Each
//              block ends with one wake-up, so scheduling latency adds the
//              same to each.
// It prints "ready=0x1" first.
#include <stdint.h>
#include <sys/timerfd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile unsigned long sink;

__attribute__((noinline)) unsigned long leaf(unsigned long n)
{
	unsigned long x = sink;
	for (unsigned long i = 0; i < n; i++)
		x = x * 6364136223846793005UL + 1442695040888963407UL;
	sink = x;
	return x;
}

// Each caller does some work of its own around the call so that it keeps a
// real frame (and no tail call).
__attribute__((noinline)) unsigned long caller_a(unsigned long n)
{
	unsigned long r = leaf(6 * n);
	sink += r;
	return r + 1;
}

__attribute__((noinline)) unsigned long caller_b(unsigned long n)
{
	unsigned long r = leaf(3 * n);
	sink += r;
	return r + 2;
}

__attribute__((noinline)) unsigned long caller_c(unsigned long n)
{
	unsigned long r = leaf(n);
	sink += r;
	return r + 3;
}

__attribute__((noinline)) unsigned long recurse(int depth, unsigned long n)
{
	if (depth <= 0)
		for (;;)
			leaf(n);
	unsigned long r = recurse(depth - 1, n);
	sink += r;
	return r + (unsigned long)depth;
}

static int tfd;
static long unit_ms = 10;

__attribute__((noinline)) void nap(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

__attribute__((noinline)) void sleep_a(void) { nap(6 * unit_ms); sink++; }

// read_b reads a timerfd armed to expire 3 units from now.
__attribute__((noinline)) void read_b(void)
{
	struct itimerspec its = { .it_value = { .tv_sec = 3 * unit_ms / 1000, .tv_nsec = (3 * unit_ms % 1000) * 1000000L } };
	uint64_t expirations;
	if (timerfd_settime(tfd, 0, &its, NULL) || read(tfd, &expirations, sizeof(expirations)) != sizeof(expirations))
		exit(1);
	sink++;
}

__attribute__((noinline)) void sleep_c(void) { nap(unit_ms); sink++; }

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "cpu";
	printf("ready=0x1\n");
	fflush(stdout);
	if (strcmp(mode, "cpu") == 0) {
		// Phases of milliseconds (a cycle of ~40 ms), so that a
		// sampling period of a few ms does not alias with them.
		long cycles = argc > 2 ? atol(argv[2]) : -1;
		for (long i = 0; cycles < 0 || i < cycles; i++) {
			caller_a(3000000);
			caller_b(3000000);
			caller_c(3000000);
		}
		return 0;
	}
	if (strcmp(mode, "deep") == 0) {
		int depth = argc > 2 ? atoi(argv[2]) : 100;
		recurse(depth, 100000);
	}
	if (strcmp(mode, "sleep") == 0) {
		if (argc > 2)
			unit_ms = atol(argv[2]);
		tfd = timerfd_create(CLOCK_MONOTONIC, 0);
		if (tfd < 0)
			return 1;
		for (;;) {
			sleep_a();
			read_b();
			sleep_c();
		}
	}
	fprintf(stderr, "unknown mode %s\n", mode);
	return 2;
}
