/* Leaks steadily from a shared library (1000 bytes every 5 ms) while
 * keeping a bounded cache in the main program, until killed. */
#include <stdlib.h>
#include <unistd.h>

void lib_leak(int count, size_t size);

#define CACHE 64

static void *volatile cache[CACHE];

__attribute__((noinline)) static void cache_put(int i)
{
    free(cache[i % CACHE]);
    cache[i % CACHE] = malloc(512);
}

int main(void)
{
    for (int i = 0;; i++) {
        lib_leak(1, 1000);
        cache_put(i);
        usleep(5 * 1000);
    }
}
