// callers exercises stack unwinding without frame pointers. It is built
// with the compiler's defaults (gcc -O2: no frame pointers, as distributions
// build their packages).
//
// Usage: callers MODE [arg]
//   cpu        one hot leaf called by caller_a, caller_b and caller_c in
//              the ratio 6:3:1 of CPU time, forever
//   deep N     recurse N frames deep (through recurse), then spin in the leaf
//   sleep      block in libc: sleep_a in nanosleep (60 ms), read_b in read
//              from a pipe a helper thread answers 30 ms later, sleep_c in
//              nanosleep (10 ms): 6:3:1 of the main thread's time, forever
// It prints "ready=0x1" first.
#include <pthread.h>
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

static int req[2], reply[2];

__attribute__((noinline)) void nap(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

__attribute__((noinline)) void sleep_a(void) { nap(60); sink++; }

// read_b asks the helper thread for a byte, which comes 30 ms later.
__attribute__((noinline)) void read_b(void)
{
	char c = 'x';
	if (write(req[1], &c, 1) != 1 || read(reply[0], &c, 1) != 1)
		exit(1);
	sink++;
}

__attribute__((noinline)) void sleep_c(void) { nap(10); sink++; }

static void *feeder(void *arg)
{
	(void)arg;
	char c;
	while (read(req[0], &c, 1) == 1) {
		struct timespec ts = { 0, 30 * 1000000L };
		nanosleep(&ts, NULL);
		if (write(reply[1], &c, 1) != 1)
			exit(1);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "cpu";
	printf("ready=0x1\n");
	fflush(stdout);
	if (strcmp(mode, "cpu") == 0) {
		for (;;) {
			caller_a(100000);
			caller_b(100000);
			caller_c(100000);
		}
	}
	if (strcmp(mode, "deep") == 0) {
		int depth = argc > 2 ? atoi(argv[2]) : 100;
		recurse(depth, 100000);
	}
	if (strcmp(mode, "sleep") == 0) {
		pthread_t t;
		if (pipe(req) || pipe(reply) || pthread_create(&t, NULL, feeder, NULL))
			return 1;
		for (;;) {
			sleep_a(); // 60 ms
			read_b();  // ~30 ms: until the feeder's next byte
			sleep_c(); // 10 ms
		}
	}
	fprintf(stderr, "unknown mode %s\n", mode);
	return 2;
}
