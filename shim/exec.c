/* The exec family, posix_spawn, system and popen: races still running on
 * fds the new program inherits are settled first.
 *
 * Without the shim, a program that execs (or spawns a child) while a
 * non-blocking connect is in progress hands the connecting socket over,
 * and the new image finds it connected. With the shim the fd holds the
 * stand-in, whose listener is close-on-exec: the new image would get
 * ECONNREFUSED a second later. So each of these waits until the races on
 * fds without FD_CLOEXEC have put their winner (or their error) on the fd,
 * at most SETTLE_MS. A race still running then is left alone: an exec may
 * fail, and the program goes on with its race. A new image that inherits
 * such a stand-in sees it refused (ECONNREFUSED) about a second later, as
 * the listener closes with the exec; a spawned child sees ECONNRESET when
 * its parent's race ends (README, Limits).
 *
 * The exec variants and posix_spawn also hand the new image the IPv4
 * peers of the translated connections it inherits (handover.c), in the
 * environment they pass on.
 *
 * glibc's execvp, execl and the others call its internal __execve, which
 * no preloaded object can interpose: each entry point a program can call
 * is hooked here. A vfork child (Python's subprocess) settles nothing:
 * its fd table is its own copy, which the helper thread's swap would not
 * reach; it passes straight through.
 */
#include "shim.h"

#include <dlfcn.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* How long an exec waits for races on the fds it passes on. */
#define SETTLE_MS 2000

extern char **environ;

typedef int (*execve_fn)(const char *, char *const[], char *const[]);
typedef int (*fexecve_fn)(int, char *const[], char *const[]);
typedef int (*execveat_fn)(int, const char *, char *const[], char *const[],
                           int);
typedef int (*spawn_fn)(pid_t *, const char *,
                        const posix_spawn_file_actions_t *,
                        const posix_spawnattr_t *, char *const[],
                        char *const[]);
typedef int (*system_fn)(const char *);
typedef FILE *(*popen_fn)(const char *, const char *);

/* Returns libc's function of that name. */
static void *next(const char *name)
{
  return dlsym(RTLD_NEXT, name);
}

/* Settles the races on fds the next program would inherit, and returns
 * whether the shim acts here (not in a vfork child, nor in a process it
 * never initialised: a vfork child must not initialise it in its
 * parent's memory, and a process without its state has nothing to hand
 * over). */
static int settle(void)
{
  if (!shim__initialised() || shim__cfg.disabled || ds__fork_vforked())
    return 0;
  shim__async_settle(SETTLE_MS);
  return 1;
}

/* Runs call with env: envp, or envp with the hand-over of the translated
 * connections the new image inherits (handover.c), after the races on
 * them are settled. The copy is on the stack (no malloc: an exec may
 * follow a fork of a threaded process), and only made when there is
 * something to hand over. */
#define WITH_ENV(envp, call)                                                   \
  do {                                                                         \
    char *const *env = (envp);                                                 \
    char buf[5120];                                                            \
    if (settle() && shim__handover_records(buf, sizeof buf)) {                 \
      size_t n = shim__handover_slots(env);                                    \
      char *slots[n > 0 ? n : 1];                                              \
      env = shim__handover_env(env, buf, slots, n);                            \
      return call;                                                             \
    }                                                                          \
    return call;                                                               \
  } while (0)

DS_HOOK int execve(const char *path, char *const argv[], char *const envp[])
{
  execve_fn f = (execve_fn)next("execve");
  WITH_ENV(envp, f(path, argv, env));
}

DS_HOOK int execv(const char *path, char *const argv[])
{
  execve_fn f = (execve_fn)next("execve");
  WITH_ENV(environ, f(path, argv, env));
}

DS_HOOK int execvp(const char *file, char *const argv[])
{
  execve_fn f = (execve_fn)next("execvpe");
  WITH_ENV(environ, f(file, argv, env));
}

DS_HOOK int execvpe(const char *file, char *const argv[], char *const envp[])
{
  execve_fn f = (execve_fn)next("execvpe");
  WITH_ENV(envp, f(file, argv, env));
}

DS_HOOK int fexecve(int fd, char *const argv[], char *const envp[])
{
  fexecve_fn f = (fexecve_fn)next("fexecve");
  WITH_ENV(envp, f(fd, argv, env));
}

DS_HOOK int execveat(int dirfd, const char *path, char *const argv[],
                     char *const envp[], int flags)
{
  execveat_fn f = (execveat_fn)next("execveat");
  WITH_ENV(envp, f(dirfd, path, argv, env, flags));
}

/* execl, execlp and execle: the list made an array, as glibc does, then
 * libc's execve or execvp. envp (execle) comes after the NULL. */
#define LIST_EXEC(call)                                                        \
  do {                                                                         \
    va_list ap;                                                                \
    size_t n = 1, i;                                                           \
    va_start(ap, arg);                                                         \
    while (va_arg(ap, const char *) != NULL)                                   \
      n++;                                                                     \
    va_end(ap);                                                                \
    {                                                                          \
      const char *argv[n + 1];                                                 \
      char *const *envp = environ;                                             \
      va_start(ap, arg);                                                       \
      argv[0] = arg;                                                           \
      for (i = 1; i <= n; i++)                                                 \
        argv[i] = va_arg(ap, const char *);                                    \
      envp = with_env ? va_arg(ap, char *const *) : environ;                   \
      va_end(ap);                                                              \
      (void)envp;                                                              \
      return call;                                                             \
    }                                                                          \
  } while (0)

DS_HOOK int execl(const char *path, const char *arg, ...)
{
  const int with_env = 0;
  LIST_EXEC(execve(path, (char *const *)argv, envp));
}

DS_HOOK int execle(const char *path, const char *arg, ...)
{
  const int with_env = 1;
  LIST_EXEC(execve(path, (char *const *)argv, envp));
}

DS_HOOK int execlp(const char *file, const char *arg, ...)
{
  const int with_env = 0;
  LIST_EXEC(execvp(file, (char *const *)argv));
}

DS_HOOK int posix_spawn(pid_t *pid, const char *path,
                        const posix_spawn_file_actions_t *fa,
                        const posix_spawnattr_t *attr, char *const argv[],
                        char *const envp[])
{
  spawn_fn f = (spawn_fn)next("posix_spawn");
  WITH_ENV(envp, f(pid, path, fa, attr, argv, env));
}

DS_HOOK int posix_spawnp(pid_t *pid, const char *file,
                         const posix_spawn_file_actions_t *fa,
                         const posix_spawnattr_t *attr, char *const argv[],
                         char *const envp[])
{
  spawn_fn f = (spawn_fn)next("posix_spawnp");
  WITH_ENV(envp, f(pid, file, fa, attr, argv, env));
}

DS_HOOK int system(const char *command)
{
  system_fn f = (system_fn)next("system");
  (void)settle();
  return f(command);
}

DS_HOOK FILE *popen(const char *command, const char *type)
{
  popen_fn f = (popen_fn)next("popen");
  (void)settle();
  return f(command, type);
}
