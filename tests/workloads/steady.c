/* Leaks 100 bytes every 10 ms until killed. */
#include <stdlib.h>
#include <unistd.h>

static void *volatile kept[1 << 16];

__attribute__((noinline)) static void tick(int i)
{
    kept[i % (1 << 16)] = malloc(100);
}

int main(void)
{
    for (int i = 0;; i++) {
        tick(i);
        usleep(10 * 1000);
    }
}
