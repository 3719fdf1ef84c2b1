/* Functions whose first instruction is each kind the kernel may meet at a
 * probe site. `probe_sites NAME CALLS` calls one of them CALLS times. */
#include <stdlib.h>
#include <string.h>

#define SITE(name, body)                                    \
    __attribute__((naked, noinline)) void name(void)        \
    {                                                       \
        __asm__ volatile(body "\n\tret");                   \
    }

/* Emulated by the kernel: a one-byte nop, a push, a conditional jump. */
SITE(site_nop, "nop")
SITE(site_push, "push %rbp\n\tpop %rbp")
SITE(site_jcc, "test %rdi, %rdi\n\tje 1f\n1:")
/* Single-stepped out of line: a register move, a test. */
SITE(site_mov, "mov %rdi, %rax")
SITE(site_test, "test %rdi, %rdi")

int main(int argc, char **argv)
{
    if (argc < 3)
        return 2;
    static const struct {
        const char *name;
        void (*fn)(void);
    } sites[] = {
        { "nop", site_nop }, { "push", site_push }, { "jcc", site_jcc },
        { "mov", site_mov }, { "test", site_test },
    };
    long calls = atol(argv[2]);
    for (size_t i = 0; i < sizeof sites / sizeof sites[0]; i++) {
        if (strcmp(argv[1], sites[i].name) == 0) {
            for (long n = 0; n < calls; n++)
                sites[i].fn();
            return 0;
        }
    }
    return 2;
}
