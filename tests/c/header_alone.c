/* The public C header compiles on its own: its only include is scdeep.h (make c-test
 * builds this with -std=c99, c11 and c17, -Wall -Wextra -Werror). */
#include <scdeep.h>

int main(void) {
    const char *v = scdeep_version();
    return v == NULL;
}
