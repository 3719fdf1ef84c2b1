/* Allocates before memtrace attaches, waits for a line on stdin, then frees
 * the early blocks and leaks from threads created after the attach. Each
 * thread's first allocator call is a free, which sets up its malloc arena. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define THREADS 4
#define BLOCKS 25

static void *volatile early[10];
static void *volatile kept[THREADS][BLOCKS];

__attribute__((noinline)) static void *thread_leak(void *arg)
{
    long t = (long)arg;
    free(early[t]);
    for (int i = 0; i < BLOCKS; i++)
        kept[t][i] = malloc(64);
    return NULL;
}

int main(void)
{
    for (int i = 0; i < 10; i++)
        early[i] = malloc(32);
    printf("ready\n");
    fflush(stdout);

    char line[16];
    if (fgets(line, sizeof line, stdin) == NULL)
        return 1;

    for (int i = THREADS; i < 10; i++)
        free(early[i]);
    pthread_t threads[THREADS];
    for (long t = 0; t < THREADS; t++)
        pthread_create(&threads[t], NULL, thread_leak, (void *)t);
    for (int t = 0; t < THREADS; t++)
        pthread_join(threads[t], NULL);
    usleep(100 * 1000);
    return 0;
}
