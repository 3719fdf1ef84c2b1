/* A shared library that leaks: its allocations must be charged to it. */
#include <stdlib.h>

static void *volatile kept[16];

__attribute__((noinline)) static void *lib_allocate(size_t size)
{
    return malloc(size);
}

void lib_leak(int count, size_t size)
{
    for (int i = 0; i < count; i++)
        kept[i % 16] = lib_allocate(size);
}
