// spike idles at about 20 % of one CPU in idle_work (2 ms of CPU time in
// every 10 ms), then, on SIGUSR1, burns 100 % in spike_work until killed,
// on as many threads as its argument says (default 1).
// The duty cycle is measured in the thread's CPU time, so a loaded machine
// stretches it but keeps the shares.
//
// Build: gcc -O2 -fno-omit-frame-pointer -pthread -o spike spike.c
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t spiking;
static volatile unsigned long sink;

static void on_usr1(int sig) { (void)sig; spiking = 1; }

static long cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ts.tv_sec * 1000000000L + ts.tv_nsec;
}

static inline void burn(unsigned long n)
{
	unsigned long x = sink;
	for (unsigned long i = 0; i < n; i++) {
		x = x * 6364136223846793005UL + 1442695040888963407UL;
		__asm__ volatile("" : "+r"(x));
	}
	sink = x;
}

__attribute__((noinline)) void idle_work(void)
{
	long end = cpu_ns() + 2000000L;
	while (cpu_ns() < end)
		burn(10000);
	usleep(8000);
}

__attribute__((noinline)) void spike_work(void)
{
	for (;;)
		burn(1000000);
}

static void *spike_thread(void *arg)
{
	(void)arg;
	spike_work();
	return NULL;
}

int main(int argc, char **argv)
{
	int threads = argc > 1 ? atoi(argv[1]) : 1;

	signal(SIGUSR1, on_usr1);
	printf("ready\n");
	fflush(stdout);
	while (!spiking)
		idle_work();
	for (int i = 1; i < threads; i++) {
		pthread_t t;
		pthread_create(&t, NULL, spike_thread, NULL);
	}
	spike_work();
	return 0;
}
