// hotcpu burns CPU, about 75% of it in hot_a and 25% in hot_b: both run
// the same dependent multiply-add chain, hot_a three times as long.
//
// Build: gcc -O2 -fno-omit-frame-pointer -o hotcpu hotcpu.c
// Usage: hotcpu [rounds]   (no argument or 0: run until killed)
// It prints the runtime addresses of hot_a and hot_b first, so that tests
// can check symbolization of PIE executables.
#include <stdio.h>
#include <stdlib.h>

#define CHUNK 10000000UL // ~10 ms: phases much longer than a sampling period, so sampling cannot alias with the rounds

static volatile unsigned long sink;

__attribute__((noinline)) void hot_a(unsigned long n)
{
	unsigned long x = sink;
	for (unsigned long i = 0; i < n; i++) {
		x = x * 6364136223846793005UL + 1442695040888963407UL;
		__asm__ volatile("" : "+r"(x)); // keep the loop as written
	}
	sink = x;
}

// Different constants: the same cost, and gcc cannot fold the two
// functions into one.
__attribute__((noinline)) void hot_b(unsigned long n)
{
	unsigned long x = sink;
	for (unsigned long i = 0; i < n; i++) {
		x = x * 2862933555777941757UL + 3037000493UL;
		__asm__ volatile("" : "+r"(x));
	}
	sink = x;
}

int main(int argc, char **argv)
{
	long rounds = argc > 1 ? atol(argv[1]) : 0;

	printf("hot_a=%p hot_b=%p\n", (void *)hot_a, (void *)hot_b);
	fflush(stdout);
	for (long r = 0; rounds == 0 || r < rounds; r++) {
		hot_a(3 * CHUNK);
		hot_b(CHUNK);
	}
	return 0;
}
