/* A session cache that never evicts: every session it opens stays allocated.
 * Part of memtrace's demo; the leak is on purpose. */
#include <stdlib.h>
#include <string.h>

struct session {
    unsigned long user;
    char token[48];
    struct session *next;
};

static struct session *volatile cache;

__attribute__((noinline)) static struct session *session_new(unsigned long user)
{
    struct session *s = malloc(sizeof *s);
    if (s == NULL)
        return NULL;
    s->user = user;
    memset(s->token, 'x', sizeof s->token);
    return s;
}

/* Opens a session for `user` and keeps it in the cache, forever. */
__attribute__((noinline)) void session_open(unsigned long user)
{
    struct session *s = session_new(user);
    if (s == NULL)
        return;
    s->next = cache;
    cache = s;
}
