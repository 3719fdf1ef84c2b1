/* One allocation site per function, each leaking an exact, known amount.
 * Pointers are kept in a volatile array so the compiler keeps every call. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))
#define PAGE 4096

void lib_leak(int count, size_t size);

static void *volatile kept[64];
static int nkept;

static void keep(void *p)
{
    kept[nkept++ % 64] = p;
}

/* Runs before main: proves probes are in place before the program starts. */
__attribute__((constructor)) NOINLINE static void before_main(void)
{
    keep(malloc(4242));
}

NOINLINE static void leak_malloc(void)
{
    for (int i = 0; i < 3; i++)
        keep(malloc(1000));
}

NOINLINE static void leak_calloc(void)
{
    for (int i = 0; i < 2; i++)
        keep(calloc(333, 4));
}

NOINLINE static void leak_posix_memalign(void)
{
    for (int i = 0; i < 5; i++) {
        void *p = NULL;
        if (posix_memalign(&p, 64, 256) == 0)
            keep(p);
    }
}

NOINLINE static void leak_aligned(void)
{
    keep(aligned_alloc(128, 512));
    keep(memalign(32, 96));
    keep(valloc(100));
}

NOINLINE static void grow_realloc(void)
{
    char *p = malloc(10);
    static const size_t sizes[] = { 100, 1000, 5000 };
    for (int i = 0; i < 3; i++)
        p = realloc(p, sizes[i]);
    keep(p);
}

NOINLINE static void grow_reallocarray(void)
{
    /* glibc's reallocarray tail-jumps into realloc: one call, two probes. */
    keep(reallocarray(NULL, 10, 30));
}

NOINLINE static void realloc_to_zero(void)
{
    void *p = malloc(77);
    keep(p);
    keep(realloc(p, 0));
}

NOINLINE static void churn(void)
{
    for (int i = 0; i < 10000; i++) {
        void *p = malloc(i % 512 + 1);
        keep(p);
        free(p);
    }
    free(NULL);
}

NOINLINE static void failed_malloc(void)
{
    keep(malloc((size_t)-1 / 2));
}

NOINLINE static void leak_mmap(void)
{
    char *p = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(p + PAGE, PAGE);
    keep(p);
}

NOINLINE static void mmap_unmapped(void)
{
    void *p = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(p, 2 * PAGE);
}

NOINLINE static void grow_mremap(void)
{
    void *p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    keep(mremap(p, PAGE, 5 * PAGE, MREMAP_MAYMOVE));
}

NOINLINE static void file_mmap(void)
{
    int fd = open("/proc/self/exe", O_RDONLY);
    keep(mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE, fd, 0));
    close(fd);
}

int main(void)
{
    leak_malloc();
    leak_calloc();
    leak_posix_memalign();
    leak_aligned();
    grow_realloc();
    grow_reallocarray();
    realloc_to_zero();
    churn();
    failed_malloc();
    leak_mmap();
    mmap_unmapped();
    grow_mremap();
    file_mmap();
    lib_leak(7, 1000);
    return 3;
}
