/* The overhead benchmark's workload: CALLS allocator calls, half malloc and
 * half free, over a ring of 1024 live blocks. Prints the loop's own time in
 * nanoseconds on stderr, so start-up and tracer set-up are left out. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define RING 1024

static void *volatile ring[RING];

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv)
{
    long calls = argc > 1 ? atol(argv[1]) : 2000000;
    long long started = now_ns();
    for (long i = 0; i < calls / 2; i++) {
        long slot = i % RING;
        free(ring[slot]);
        ring[slot] = malloc(16 + (i * 7) % 256);
    }
    long long elapsed = now_ns() - started;
    for (int i = 0; i < RING; i++)
        free(ring[i]);
    fprintf(stderr, "%lld\n", elapsed);
    return 0;
}
