/* tests/lab/shim_edges2.c built with _FORTIFY_SOURCE=2, as distributions
 * build programs: longjmp becomes __longjmp_chk, which checks the jump
 * against the stack it leaves (the altstack mode; not coroutine, whose
 * jump to another stack __longjmp_chk refuses). `shim_edges2_fortify
 * info` prints the level this build got ("fortify 2"; 0 when built
 * without optimization, where glibc ignores it). */
#ifdef __OPTIMIZE__
#undef _FORTIFY_SOURCE
#define _FORTIFY_SOURCE 2
#endif
#include "shim_edges2.c"
