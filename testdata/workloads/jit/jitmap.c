// jitmap is a tiny "JIT": it copies machine code for two functions into a
// memfd mapped executable (the double mapping .NET uses for its JIT code),
// describes them in /tmp/perf-PID.map as any runtime with perf map support
// does, and spends CPU about 75% in jit_hot and 25% in jit_cold, called
// from the C functions run_hot and run_cold.
//
// Build: gcc -O2 -fno-omit-frame-pointer -o jitmap jitmap.c
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

// push rbp; mov rbp,rsp; 1: dec rdi; jnz 1b; pop rbp; ret
static const unsigned char loop_code[] = {
	0x55, 0x48, 0x89, 0xe5, 0x48, 0xff, 0xcf, 0x75, 0xfb, 0x5d, 0xc3,
};

typedef void (*jitfn)(unsigned long);

// The empty asm after the call keeps it a call (not a tail jump), so the
// callers stay on the stack.
__attribute__((noinline)) void run_hot(jitfn f)
{
	f(300000000UL);
	__asm__ volatile("");
}

__attribute__((noinline)) void run_cold(jitfn f)
{
	f(100000000UL);
	__asm__ volatile("");
}

int main(void)
{
	int fd = memfd_create("jitmap-code", 0);
	if (fd < 0 || ftruncate(fd, 4096) < 0) {
		perror("memfd");
		return 1;
	}
	unsigned char *rw = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	unsigned char *rx = mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_SHARED, fd, 0);
	if (rw == MAP_FAILED || rx == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	char path[64];
	snprintf(path, sizeof path, "/tmp/perf-%d.map", getpid());
	FILE *map = fopen(path, "w");
	if (!map) {
		perror(path);
		return 1;
	}
	// The code is written through rw; the map names the rx addresses.
	memcpy(rw, loop_code, sizeof loop_code);
	memcpy(rw + 64, loop_code, sizeof loop_code);
	jitfn hot = (jitfn)rx, cold = (jitfn)(rx + 64);
	fprintf(map, "%lx %zx jit_hot\n", (unsigned long)hot, sizeof loop_code);
	fprintf(map, "%lx %zx jit_cold\n", (unsigned long)cold, sizeof loop_code);
	fclose(map);
	printf("ready hot=%p cold=%p\n", (void *)hot, (void *)cold);
	fflush(stdout);
	for (;;) {
		run_hot(hot);
		run_cold(cold);
	}
}
