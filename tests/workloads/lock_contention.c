/* Contended pthread locks with known waits: each thread times every lock call
 * with clock_gettime and the process prints, per lock, its address and the
 * summed wait, for tests to compare with what the locks collector measured.
 *
 *   lock_contention MODE THREADS ITERATIONS HOLD_US [--no-wait] [--exec]
 *
 * MODE: mutex (normal), recursive, errorcheck, adaptive, timed
 *       (pthread_mutex_timedlock), heap (a normal mutex in malloc'd memory),
 *       rwlock (even iterations write-lock, odd ones read-lock), condvar
 *       (consumers wait for tickets a producer posts; see below).
 * Each critical section sleeps HOLD_US microseconds, so nearly every
 * acquisition is contended and waits are milliseconds long.
 *
 * Output, one line each: "ready pid=N" (then it waits for a line on stdin,
 * unless --no-wait), then after the run
 *   lock name=NAME addr=0xADDR kind=KIND wait_ns=N calls=N
 * for each lock, then "done", and it waits for stdin to close. With --exec it
 * instead execs itself (same arguments, --no-wait, no --exec) after "done".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t g_mutex;
static pthread_rwlock_t g_rwlock;
static pthread_mutex_t g_cond_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cond = PTHREAD_COND_INITIALIZER;
static pthread_mutex_t *g_heap_mutex;

static const char *mode;
static long iterations, hold_us;
static int threads;

/* Summed by all threads. */
static _Atomic uint64_t mutex_wait_ns, mutex_calls;
static _Atomic uint64_t cond_wait_ns, cond_calls;
static _Atomic uint64_t cond_mutex_wait_ns, cond_mutex_calls;

/* condvar mode */
static long tickets;
static int producer_done;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void hold(long us)
{
	struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };

	nanosleep(&ts, NULL);
}

static void timed_mutex_lock(pthread_mutex_t *m, _Atomic uint64_t *wait, _Atomic uint64_t *calls)
{
	uint64_t t0 = now_ns();
	int err;

	if (strcmp(mode, "timed") == 0) {
		struct timespec deadline;

		clock_gettime(CLOCK_REALTIME, &deadline);
		deadline.tv_sec += 60;
		err = pthread_mutex_timedlock(m, &deadline);
	} else {
		err = pthread_mutex_lock(m);
	}
	if (err) {
		fprintf(stderr, "lock: %s\n", strerror(err));
		exit(1);
	}
	*wait += now_ns() - t0;
	*calls += 1;
}

static void *mutex_worker(void *arg)
{
	pthread_mutex_t *m = arg;

	for (long i = 0; i < iterations; i++) {
		timed_mutex_lock(m, &mutex_wait_ns, &mutex_calls);
		hold(hold_us);
		pthread_mutex_unlock(m);
		sched_yield();
	}
	return NULL;
}

static void *rwlock_worker(void *arg)
{
	(void)arg;
	for (long i = 0; i < iterations; i++) {
		uint64_t t0 = now_ns();

		if (i % 2 == 0)
			pthread_rwlock_wrlock(&g_rwlock);
		else
			pthread_rwlock_rdlock(&g_rwlock);
		mutex_wait_ns += now_ns() - t0;
		mutex_calls += 1;
		hold(hold_us);
		pthread_rwlock_unlock(&g_rwlock);
		sched_yield();
	}
	return NULL;
}

/* Consumers: lock the mutex (timed as mutex waits), wait for a ticket
 * (each pthread_cond_wait timed as condvar waits: the signal wait plus the
 * mutex re-acquire), then hold the mutex for a while, so other waiters that
 * were woken by the same broadcast contend for it on re-acquire. */
static void *cond_consumer(void *arg)
{
	(void)arg;
	for (long i = 0; i < iterations; i++) {
		timed_mutex_lock(&g_cond_mutex, &cond_mutex_wait_ns, &cond_mutex_calls);
		while (tickets == 0) {
			uint64_t t0 = now_ns();

			pthread_cond_wait(&g_cond, &g_cond_mutex);
			cond_wait_ns += now_ns() - t0;
			cond_calls += 1;
		}
		tickets--;
		hold(hold_us);
		pthread_mutex_unlock(&g_cond_mutex);
	}
	return NULL;
}

static void *cond_producer(void *arg)
{
	long total = iterations * (long)(threads - 1);

	(void)arg;
	while (total > 0) {
		long batch = total < threads - 1 ? total : threads - 1;

		timed_mutex_lock(&g_cond_mutex, &cond_mutex_wait_ns, &cond_mutex_calls);
		tickets += batch;
		total -= batch;
		pthread_cond_broadcast(&g_cond);
		pthread_mutex_unlock(&g_cond_mutex);
		hold(hold_us * (threads - 1) + hold_us);
	}
	producer_done = 1;
	return NULL;
}

static void wait_for_line(void)
{
	char line[64];

	if (!fgets(line, sizeof line, stdin))
		exit(0);
}

static void report(const char *name, const void *addr, const char *kind, uint64_t wait, uint64_t calls)
{
	printf("lock name=%s addr=%p kind=%s wait_ns=%llu calls=%llu\n", name, addr, kind,
	       (unsigned long long)wait, (unsigned long long)calls);
}

int main(int argc, char **argv)
{
	pthread_t tids[64];
	pthread_mutexattr_t attr;
	int no_wait = 0, exec_after = 0;

	if (argc < 5) {
		fprintf(stderr, "usage: %s MODE THREADS ITERATIONS HOLD_US [--no-wait] [--exec]\n", argv[0]);
		return 2;
	}
	mode = argv[1];
	threads = atoi(argv[2]);
	iterations = atol(argv[3]);
	hold_us = atol(argv[4]);
	for (int i = 5; i < argc; i++) {
		if (strcmp(argv[i], "--no-wait") == 0)
			no_wait = 1;
		else if (strcmp(argv[i], "--exec") == 0)
			exec_after = 1;
	}
	if (threads < 2 || threads > 64) {
		fprintf(stderr, "THREADS must be 2..64\n");
		return 2;
	}

	pthread_mutexattr_init(&attr);
	if (strcmp(mode, "recursive") == 0)
		pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
	else if (strcmp(mode, "errorcheck") == 0)
		pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ERRORCHECK);
	else if (strcmp(mode, "adaptive") == 0)
		pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ADAPTIVE_NP);
	pthread_mutex_init(&g_mutex, &attr);
	g_heap_mutex = malloc(sizeof *g_heap_mutex);
	pthread_mutex_init(g_heap_mutex, NULL);
	pthread_rwlock_init(&g_rwlock, NULL);

	setvbuf(stdout, NULL, _IONBF, 0);
	printf("ready pid=%d\n", getpid());
	if (!no_wait)
		wait_for_line();

	if (strcmp(mode, "condvar") == 0) {
		pthread_create(&tids[0], NULL, cond_producer, NULL);
		for (int i = 1; i < threads; i++)
			pthread_create(&tids[i], NULL, cond_consumer, NULL);
	} else {
		for (int i = 0; i < threads; i++) {
			if (strcmp(mode, "rwlock") == 0)
				pthread_create(&tids[i], NULL, rwlock_worker, NULL);
			else
				pthread_create(&tids[i], NULL, mutex_worker,
					       strcmp(mode, "heap") == 0 ? g_heap_mutex : &g_mutex);
		}
	}
	for (int i = 0; i < threads; i++)
		pthread_join(tids[i], NULL);

	if (strcmp(mode, "condvar") == 0) {
		report("g_cond_mutex", &g_cond_mutex, "mutex", cond_mutex_wait_ns, cond_mutex_calls);
		report("g_cond", &g_cond, "condvar", cond_wait_ns, cond_calls);
	} else if (strcmp(mode, "rwlock") == 0) {
		report("g_rwlock", &g_rwlock, "rwlock", mutex_wait_ns, mutex_calls);
	} else if (strcmp(mode, "heap") == 0) {
		report("heap_mutex", g_heap_mutex, "mutex", mutex_wait_ns, mutex_calls);
	} else {
		report("g_mutex", &g_mutex, "mutex", mutex_wait_ns, mutex_calls);
	}
	printf("done\n");
	if (exec_after) {
		char *args[] = { argv[0], argv[1], argv[2], argv[3], argv[4], "--no-wait", NULL };

		execv("/proc/self/exe", args);
		perror("execv");
		return 1;
	}
	wait_for_line();
	return 0;
}
