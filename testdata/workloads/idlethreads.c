// idlethreads runs three threads besides main that sleep, while main works
// for about half a millisecond every 100 ms: a process with four threads
// that costs almost no CPU, so that dozens of them fit a small machine
// (burst scenarios of many processes tripping one policy at once).
//
// Build: gcc -O2 -fno-omit-frame-pointer -pthread -o idlethreads idlethreads.c
#include <pthread.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static void *idle(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

__attribute__((noinline)) unsigned long tick(void)
{
	struct timespec start, now;
	unsigned long x = 0;
	clock_gettime(CLOCK_MONOTONIC, &start);
	do {
		for (int i = 0; i < 1000; i++)
			x = x * 31 + i;
		clock_gettime(CLOCK_MONOTONIC, &now);
	} while ((now.tv_sec - start.tv_sec) * 1000000000L + (now.tv_nsec - start.tv_nsec) < 500000L);
	return x;
}

int main(void)
{
	for (int i = 0; i < 3; i++) {
		pthread_t t;
		if (pthread_create(&t, NULL, idle, NULL) != 0)
			return 1;
	}
	printf("tick=%p\n", (void *)tick);
	fflush(stdout);
	struct timespec ts = { .tv_sec = 0, .tv_nsec = 100 * 1000000L };
	volatile unsigned long sink = 0;
	for (;;) {
		sink += tick();
		nanosleep(&ts, NULL);
	}
}
