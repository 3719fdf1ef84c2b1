/* memtrace's demo: a pretend request loop with one real leak.
 *
 * Each request allocates a buffer and frees it (churn that nets to zero);
 * every tenth request opens a session in libsessions.so, which never frees
 * it (the leak); a response buffer grows with realloc and is freed; and an
 * anonymous mapping serves as a long-lived arena. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

void session_open(unsigned long user);

static void *volatile arena;

__attribute__((noinline)) static void handle_request(unsigned long id)
{
    size_t size = 512 + (id * 97) % 3584;
    char *volatile request = malloc(size);
    if (request == NULL)
        return;
    memset(request, 0, size);

    char *volatile response = malloc(64);
    for (size_t len = 128; response != NULL && len <= 2048; len *= 2)
        response = realloc(response, len);

    if (id % 10 == 0)
        session_open(id);

    free(response);
    free(request);
}

int main(int argc, char **argv)
{
    unsigned long requests = 10000;
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], "--requests") == 0)
            requests = strtoul(argv[i + 1], NULL, 10);

    arena = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (arena == MAP_FAILED)
        return 1;

    struct timespec pause = { .tv_sec = 0, .tv_nsec = 50000 };
    for (unsigned long id = 0; id < requests; id++) {
        handle_request(id);
        if (id % 100 == 0)
            nanosleep(&pause, NULL);
    }
    fprintf(stderr, "demo-server: served %lu requests\n", requests);
    return 0;
}
