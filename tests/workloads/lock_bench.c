/* The locks benchmark's workloads (tests/bench/locks.py), started right away:
 *
 *   lock_bench uncontended ITERATIONS
 *       one working thread (and one idle one), one mutex: prints
 *       "ns_per_iter=X" for an uncontended lock/unlock pair
 *   lock_bench contended THREADS ITERATIONS [INSIDE_NS [OUTSIDE_NS]]
 *       THREADS threads each take one mutex ITERATIONS times, busy for
 *       INSIDE_NS while holding it and OUTSIDE_NS between acquisitions
 *       (default 0 and 0: ~100 ns of increments inside), so acquisitions
 *       contend and sleep in futex: prints "wall_ms=X" for the whole run
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t g_mutex = PTHREAD_MUTEX_INITIALIZER;
static volatile unsigned long g_counter;
static long g_iterations;
static uint64_t g_inside_ns, g_outside_ns;

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

static void busy(uint64_t ns)
{
	uint64_t until = now_ns() + ns;

	while (now_ns() < until)
		g_counter++;
}

static void *worker(void *arg)
{
	(void)arg;
	for (long i = 0; i < g_iterations; i++) {
		pthread_mutex_lock(&g_mutex);
		if (g_inside_ns)
			busy(g_inside_ns);
		else
			for (int k = 0; k < 50; k++)
				g_counter++;
		pthread_mutex_unlock(&g_mutex);
		if (g_outside_ns)
			busy(g_outside_ns);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	uint64_t t0;

	if (argc >= 3 && strcmp(argv[1], "uncontended") == 0) {
		long n = atol(argv[2]);

		become_multithreaded();
		t0 = now_ns();
		for (long i = 0; i < n; i++) {
			pthread_mutex_lock(&g_mutex);
			g_counter++;
			pthread_mutex_unlock(&g_mutex);
		}
		printf("ns_per_iter=%.3f\n", (double)(now_ns() - t0) / (double)n);
		return 0;
	}
	if (argc >= 4 && strcmp(argv[1], "contended") == 0) {
		int threads = atoi(argv[2]);
		pthread_t tids[64];

		if (threads < 1 || threads > 64)
			return 2;
		g_iterations = atol(argv[3]);
		g_inside_ns = argc > 4 ? strtoull(argv[4], NULL, 10) : 0;
		g_outside_ns = argc > 5 ? strtoull(argv[5], NULL, 10) : 0;
		t0 = now_ns();
		for (int i = 0; i < threads; i++)
			pthread_create(&tids[i], NULL, worker, NULL);
		for (int i = 0; i < threads; i++)
			pthread_join(tids[i], NULL);
		printf("wall_ms=%.3f\n", (double)(now_ns() - t0) / 1e6);
		return 0;
	}
	fprintf(stderr, "usage: %s uncontended ITERATIONS | contended THREADS ITERATIONS\n", argv[0]);
	return 2;
}
