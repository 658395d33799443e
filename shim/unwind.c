/* longjmp(), _longjmp(), siglongjmp() and __longjmp_chk() (what
 * _FORTIFY_SOURCE builds call): a signal handler that jumps out of a hook
 * (alarm + longjmp, as nc -w, wget -T and Perl's alarm/die do) leaves the
 * hook without its shim__leave(). The jump tells the guard first
 * (shim__unwinding, with the stack pointer it returns to: a jump that
 * stays inside the handler leaves the guard alone), then goes on as
 * libc's.
 *
 * setjmp.h is not included: with _FORTIFY_SOURCE it renames longjmp to
 * __longjmp_chk, and these definitions must keep their own names.
 */
#include "shim.h"

#include <dlfcn.h>
#include <stdatomic.h>
#include <stdint.h>

typedef void (*jump_fn)(void *env, int val);

static _Atomic(jump_fn) next_longjmp, next__longjmp, next_siglongjmp,
    next_longjmp_chk;

/* Returns libc's function of that name, looked up once. The shim's
 * initialisation looks them all up (shim__unwind_init), so a jump from a
 * signal handler does not call dlsym. */
static jump_fn next_of(_Atomic(jump_fn) *slot, const char *name)
{
  jump_fn f = atomic_load(slot);
  if (f == NULL) {
    f = (jump_fn)dlsym(RTLD_NEXT, name);
    atomic_store(slot, f);
  }
  return f;
}

void shim__unwind_init(void)
{
  next_of(&next_longjmp, "longjmp");
  next_of(&next__longjmp, "_longjmp");
  next_of(&next_siglongjmp, "siglongjmp");
  next_of(&next_longjmp_chk, "__longjmp_chk");
}

/* Returns the stack pointer env's jump goes back to (0: not known).
 * glibc keeps it mangled (PTR_MANGLE: xor with the thread's pointer
 * guard, then a rotation); x86_64 is read, other targets say 0, and the
 * guard is then dropped by any jump made while it is held. */
static uintptr_t target_sp(const void *env)
{
#if defined(__x86_64__) && defined(__GLIBC__)
  uintptr_t v = ((const uintptr_t *)env)[6], g; /* JB_RSP */
  __asm__("mov %%fs:0x30, %0" : "=r"(g));       /* tcbhead_t.pointer_guard */
  v = (v >> 0x11) | (v << (64 - 0x11));
  return v ^ g;
#else
  (void)env;
  return 0;
#endif
}

/* The shared body: the guard is told, then libc jumps. */
#define JUMP_HOOK(name, slot)                                                  \
  __attribute__((noreturn)) void name(void *env, int val);                     \
  DS_HOOK __attribute__((noreturn)) void name(void *env, int val)              \
  {                                                                            \
    jump_fn f = next_of(&slot, #name);                                         \
    shim__unwinding(target_sp(env));                                           \
    f(env, val);                                                               \
    __builtin_unreachable();                                                   \
  }

JUMP_HOOK(longjmp, next_longjmp)
JUMP_HOOK(_longjmp, next__longjmp)
JUMP_HOOK(siglongjmp, next_siglongjmp)
JUMP_HOOK(__longjmp_chk, next_longjmp_chk)
