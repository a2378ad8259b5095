/* threads starts 16 threads that block forever, so the process has exactly
   17 (with the main thread), then says so on stdout. */
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

static void *block(void *arg) {
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

int main(void) {
	for (int i = 0; i < 16; i++) {
		pthread_t t;
		if (pthread_create(&t, NULL, block, NULL) != 0)
			return 1;
	}
	printf("ready\n");
	fflush(stdout);
	for (;;)
		pause();
}
