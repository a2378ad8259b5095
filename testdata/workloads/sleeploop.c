// sleeploop blocks in short sleeps, thousands of times a second: a thread
// whose switch-outs exceed the off-CPU profiler's stack budget, with
// blocks long enough (hundreds of microseconds) that taking a stack does
// not change them.
//
// Build: gcc -O2 -fno-omit-frame-pointer -o sleeploop sleeploop.c
// Usage: sleeploop [usec]   (default 200; runs until killed)
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

__attribute__((noinline)) void sleep_loop(long usec)
{
	struct timespec ts = { .tv_sec = 0, .tv_nsec = usec * 1000 };
	for (;;)
		nanosleep(&ts, NULL);
}

int main(int argc, char **argv)
{
	long usec = argc > 1 ? atol(argv[1]) : 200;
	printf("sleep_loop=%p\n", (void *)sleep_loop);
	fflush(stdout);
	sleep_loop(usec);
	return 0;
}
