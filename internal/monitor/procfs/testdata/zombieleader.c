/* zombieleader: the main thread exits (pthread_exit) while a second thread
   keeps running, so the thread-group leader is a zombie with a live
   process behind it. The second thread says "ready" once the leader has
   gone, then blocks. */
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

static void *rest(void *arg) {
	(void)arg;
	usleep(100000); /* let the leader exit first */
	printf("ready\n");
	fflush(stdout);
	for (;;)
		pause();
	return NULL;
}

int main(void) {
	pthread_t t;
	if (pthread_create(&t, NULL, rest, NULL) != 0)
		return 1;
	pthread_exit(NULL);
}
