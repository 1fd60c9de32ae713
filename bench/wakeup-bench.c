/* The floor under any fault served by another process: the round trip of
 * one byte between two threads through pipes (two wake-ups), timed over
 * many trips. bench/simulate.sh prints it beside the fault latencies.
 * usage: wakeup-bench [TRIPS]   prints the mean round trip in microseconds */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

struct pipes {
	int there[2], back[2];
};

static void *echo(void *arg)
{
	struct pipes *p = arg;
	char c;
	while (read(p->there[0], &c, 1) == 1 && write(p->back[1], &c, 1) == 1)
		;
	return NULL;
}

int main(int argc, char **argv)
{
	long trips = argc > 1 ? atol(argv[1]) : 20000;
	struct pipes p;
	pthread_t t;
	char c = 'x';
	if (trips <= 0 || pipe(p.there) != 0 || pipe(p.back) != 0 ||
	    pthread_create(&t, NULL, echo, &p) != 0) {
		fprintf(stderr, "wakeup-bench: cannot start\n");
		return 1;
	}
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (long i = 0; i < trips; i++)
		if (write(p.there[1], &c, 1) != 1 || read(p.back[0], &c, 1) != 1)
			return 1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double us = ((double)(t1.tv_sec - t0.tv_sec) * 1e6 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e3);
	printf("%.1f\n", us / (double)trips);
	close(p.there[1]); /* the echo thread ends */
	pthread_join(t, NULL);
	return 0;
}
