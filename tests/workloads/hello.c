/* Allocates once and exits: the smallest traced program. */
#include <stdlib.h>

static void *volatile kept;

int main(void)
{
    kept = malloc(16);
    return 0;
}
