/* Burns CPU in THREADS threads until killed: the crowd in run-queue tests.
 *
 *   cpu_hog [THREADS]
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static void *spin(void *arg)
{
	volatile unsigned long n = 0;

	(void)arg;
	for (;;)
		n++;
	return NULL;
}

int main(int argc, char **argv)
{
	int threads = argc > 1 ? atoi(argv[1]) : 1;
	pthread_t tid;

	setvbuf(stdout, NULL, _IONBF, 0);
	for (int i = 1; i < threads; i++)
		pthread_create(&tid, NULL, spin, NULL);
	printf("ready pid=%d\n", getpid());
	spin(NULL);
	return 0;
}
