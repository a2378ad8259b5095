// churn starts short-lived processes (/bin/true) at a target rate per
// second (argv[1], default 500) and reaps them: the process churn of a
// busy build or CI host, for the soak test. It prints the births of each
// second on stderr when CHURN_VERBOSE is set.
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static double now(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
	int rate = argc > 1 ? atoi(argv[1]) : 500;
	char *child[] = {"/bin/true", NULL};
	printf("ready rate=%x\n", rate);
	fflush(stdout);
	double start = now();
	long born = 0;
	for (;;) {
		double el = now() - start;
		while (born < (long)(el * rate)) {
			pid_t pid;
			if (posix_spawn(&pid, child[0], NULL, NULL, child, environ) == 0) {
				born++;
			} else {
				break;
			}
		}
		while (waitpid(-1, NULL, WNOHANG) > 0) {
		}
		if (getenv("CHURN_VERBOSE") && born % rate == 0) {
			fprintf(stderr, "%ld births in %.1fs\n", born, el);
		}
		usleep(1000);
	}
}
