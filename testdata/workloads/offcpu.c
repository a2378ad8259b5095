// offcpu spends its time off the CPU, about 75% of it in wait_long and 25%
// in wait_short. wait_short reads one byte from a FIFO that the test feeds
// every 80 ms; wait_long then sleeps 60 ms, so each 80 ms cycle blocks
// ~60 ms in wait_long and the ~20 ms left until the next byte in wait_short.
// (Wake-up latency d lengthens wait_long to 60+d and shortens wait_short to
// 20-d: the longer the cycle, the smaller the skew.)
//
// Build: gcc -O2 -fno-omit-frame-pointer -o offcpu offcpu.c   (x86-64)
// Usage: offcpu FIFO [sleep_ms]   (exits when the writer closes the FIFO)
// It prints the runtime addresses of wait_long and wait_short first.
//
// The syscalls are issued inline, not through libc: glibc is built without
// frame pointers, and a frame-pointer walk starting in its syscall wrappers
// skips their caller, the very function the test looks for.
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>

static inline __attribute__((always_inline)) long sys3(long n, long a, long b, long c)
{
	long ret;
	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(n), "D"(a), "S"(b), "d"(c)
			 : "rcx", "r11", "memory");
	return ret;
}

static long sleep_ns = 60 * 1000000L;

__attribute__((noinline)) void wait_long(void)
{
	struct timespec ts = { .tv_sec = sleep_ns / 1000000000L, .tv_nsec = sleep_ns % 1000000000L };
	while (sys3(SYS_nanosleep, (long)&ts, (long)&ts, 0) == -4) // EINTR: sleep the rest
		;
}

__attribute__((noinline)) long wait_short(int fd)
{
	char c;
	return sys3(SYS_read, fd, (long)&c, 1);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: offcpu FIFO [sleep_ms]\n");
		return 2;
	}
	if (argc > 2)
		sleep_ns = atol(argv[2]) * 1000000L;
	printf("wait_long=%p wait_short=%p\n", (void *)wait_long, (void *)wait_short);
	fflush(stdout);
	int fd = open(argv[1], O_RDONLY); // blocks until the test opens it
	if (fd < 0) {
		perror("open");
		return 1;
	}
	for (;;) {
		if (wait_short(fd) <= 0)
			return 0; // writer gone
		wait_long();
	}
}
