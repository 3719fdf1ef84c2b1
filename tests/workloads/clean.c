/* Allocates, frees everything, and exits: nothing leaks. */
#include <stdlib.h>

static void *volatile kept[100];

int main(void)
{
    for (int i = 0; i < 100; i++)
        kept[i] = malloc(16 + i);
    for (int i = 0; i < 100; i++)
        free(kept[i]);
    return 0;
}
