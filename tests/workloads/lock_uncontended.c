/* One working thread (plus an idle one), one pthread mutex, ITERATIONS
 * lock/unlock pairs: never
 * contended, so it must cost the locks collector nothing — no futex call,
 * no uprobe hit. Prints its own ns per lock/unlock pair.
 *
 *   lock_uncontended ITERATIONS
 *
 * Output: "ready pid=N" (then it waits for a line on stdin), after the run
 * "lock name=g_mutex addr=0x… ns_per_iter=X", "done", and it waits for stdin
 * to close.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t g_mutex = PTHREAD_MUTEX_INITIALIZER;
static volatile unsigned long g_counter;

/* A second thread that only sleeps: glibc takes a non-atomic shortcut for
 * locks in single-threaded processes, which is not what a real program's
 * uncontended lock costs. */
static void *idle_thread(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

static void become_multithreaded(void)
{
	pthread_t tid;

	pthread_create(&tid, NULL, idle_thread, NULL);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void wait_for_line(void)
{
	char line[64];

	if (!fgets(line, sizeof line, stdin))
		exit(0);
}

int main(int argc, char **argv)
{
	long iterations = argc > 1 ? atol(argv[1]) : 10000000;
	uint64_t t0;

	setvbuf(stdout, NULL, _IONBF, 0);
	printf("ready pid=%d\n", getpid());
	become_multithreaded();
	wait_for_line();
	t0 = now_ns();
	for (long i = 0; i < iterations; i++) {
		pthread_mutex_lock(&g_mutex);
		g_counter++;
		pthread_mutex_unlock(&g_mutex);
	}
	printf("lock name=g_mutex addr=%p ns_per_iter=%.2f\n", (void *)&g_mutex,
	       (double)(now_ns() - t0) / (double)iterations);
	printf("done\n");
	wait_for_line();
	return 0;
}
