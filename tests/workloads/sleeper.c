/* A process with a known number of wakeups: after "go" on stdin it sleeps
 * COUNT times for INTERVAL_US each (one wakeup per sleep), prints "done", and
 * waits for stdin to close. Tests move it into a cgroup while it waits.
 *
 *   sleeper COUNT INTERVAL_US
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void wait_for_line(void)
{
	char line[64];

	if (!fgets(line, sizeof line, stdin))
		exit(0);
}

int main(int argc, char **argv)
{
	long count, interval_us;
	struct timespec ts;

	if (argc != 3) {
		fprintf(stderr, "usage: %s COUNT INTERVAL_US\n", argv[0]);
		return 2;
	}
	count = atol(argv[1]);
	interval_us = atol(argv[2]);
	ts.tv_sec = interval_us / 1000000;
	ts.tv_nsec = (interval_us % 1000000) * 1000;
	setvbuf(stdout, NULL, _IONBF, 0);
	printf("ready pid=%d\n", getpid());
	wait_for_line();
	for (long i = 0; i < count; i++)
		nanosleep(&ts, NULL);
	printf("done\n");
	wait_for_line();
	return 0;
}
