/* tests/lab/shim_unwind.c built with _FORTIFY_SOURCE=2, as distributions
 * build programs such as wget: longjmp and siglongjmp become
 * __longjmp_chk, which checks the jump against the stack it leaves.
 * `shim_unwind_fortify info` prints the level this build got ("fortify
 * 2"; 0 when built without optimization, where glibc ignores it). */
#ifdef __OPTIMIZE__
#undef _FORTIFY_SOURCE
#define _FORTIFY_SOURCE 2
#endif
#include "shim_unwind.c"
