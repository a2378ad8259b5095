// blockswitch blocks in 2 ms sleeps in block_before until SIGUSR1, then
// in block_after until killed: an off-CPU workload whose blocking function
// changes at a known moment (the lookback tests' trigger).
//
// Build: gcc -O2 -fno-omit-frame-pointer -o blockswitch blockswitch.c
#include <signal.h>
#include <stdio.h>
#include <time.h>

static volatile sig_atomic_t switched;

static void on_usr1(int sig)
{
	(void)sig;
	switched = 1;
}

static void nap(void)
{
	struct timespec ts = { .tv_sec = 0, .tv_nsec = 2000000 };
	nanosleep(&ts, NULL);
}

__attribute__((noinline)) void block_before(void)
{
	while (!switched)
		nap();
	__asm__ volatile("" ::: "memory"); // not a tail call: stays on the stack
}

__attribute__((noinline)) void block_after(void)
{
	for (;;)
		nap();
}

int main(void)
{
	signal(SIGUSR1, on_usr1);
	printf("block_before=%p block_after=%p\n", (void *)block_before, (void *)block_after);
	fflush(stdout);
	block_before();
	block_after();
	return 0;
}
