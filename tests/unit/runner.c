/* Test runner: runs every registered test in its own child process, with a
 * per-test timeout, and prints one line per test and a summary line
 * "unit: N passed, N failed, N skipped" that tests/check.sh adds up.
 *
 * Usage: unit [-l] [-x PREFIX] [SUBSTRING...]
 *   -l lists tests; -x leaves out tests whose name starts with PREFIX;
 *   substrings select tests by name.
 */
#include "test.h"
#include "internal.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <sys/wait.h>

#define MAX_TESTS 1024

static struct {
  const char *name;
  ds_test_fn fn;
  unsigned timeout_s;
} tests[MAX_TESTS];
static int ntests;

void ds_test_register(const char *name, ds_test_fn fn, unsigned timeout_s)
{
  if (ntests == MAX_TESTS) {
    fprintf(stderr, "too many tests\n");
    abort();
  }
  tests[ntests].name = name;
  tests[ntests].fn = fn;
  tests[ntests].timeout_s = timeout_s;
  ntests++;
}

void ds_test_fail(const char *file, int line, const char *fmt, ...)
{
  va_list ap;
  fprintf(stderr, "  %s:%d: ", file, line);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  fflush(NULL);
  _exit(1);
}

void ds_test_skip(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vfprintf(stdout, fmt, ap);
  va_end(ap);
  fputc('\n', stdout);
  fflush(NULL);
  _exit(DS_TEST_SKIP_STATUS);
}

int ds_test_count_fds(void)
{
  DIR *d = opendir("/proc/self/fd");
  struct dirent *e;
  int n = 0;
  if (d == NULL)
    return -1;
  while ((e = readdir(d)) != NULL)
    if (e->d_name[0] != '.')
      n++;
  closedir(d);
  return n - 1; /* the directory's own fd */
}

double ds_test_now_ms(void)
{
  return ds__mono_ms();
}

void ds_test_run_for(ds_reactor *r, double ms)
{
  double end = ds_test_now_ms() + ms;
  while (ds_test_now_ms() < end)
    ds_reactor_run_once(r, 10);
}

void ds_test_require_root(void)
{
  if (geteuid() != 0)
    SKIP("needs root (network namespaces)");
}

void ds_test_require_ipv6(void)
{
  struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6,
                              .sin6_addr = IN6ADDR_LOOPBACK_INIT};
  int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int ok = fd >= 0 && bind(fd, (struct sockaddr *)&sin6, sizeof sin6) == 0;
  if (fd >= 0)
    close(fd);
  if (!ok)
    SKIP("no IPv6 loopback on this machine");
}

unsigned short ds_test_closed_port(int family, int type)
{
  struct sockaddr_storage ss = {0};
  socklen_t len = family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                     : sizeof(struct sockaddr_in);
  int fd = socket(family, type | SOCK_CLOEXEC, 0);
  unsigned short port;
  ss.ss_family = (sa_family_t)family;
  if (family == AF_INET6)
    ((struct sockaddr_in6 *)&ss)->sin6_addr = in6addr_loopback;
  else
    ((struct sockaddr_in *)&ss)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || bind(fd, (struct sockaddr *)&ss, len) != 0 ||
      getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
    ds_test_fail(__FILE__, __LINE__, "no free loopback port");
  port = ntohs(family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                  : ((struct sockaddr_in *)&ss)->sin_port);
  close(fd); /* bound, never listening or reading: the port is closed */
  return port;
}

const char *ds_test_lab_env(const char *name)
{
  const char *v = getenv(name);
  if (v == NULL || *v == '\0')
    SKIP("not in a lab: run through tests/lab/lab.sh run-pair");
  return v;
}

void ds_test_sh(const char *fmt, ...)
{
  char cmd[2048];
  va_list ap;
  int rc;
  va_start(ap, fmt);
  vsnprintf(cmd, sizeof cmd, fmt, ap);
  va_end(ap);
  rc = system(cmd);
  if (rc != 0)
    ds_test_fail(__FILE__, __LINE__, "command failed (%d): %s", rc, cmd);
}

/* Reads what a child wrote (its skip reason) into buf. */
static void slurp(int fd, char *buf, size_t len)
{
  size_t off = 0;
  ssize_t n;
  while (off + 1 < len && (n = read(fd, buf + off, len - 1 - off)) > 0)
    off += (size_t)n;
  buf[off] = '\0';
  while (off > 0 && buf[off - 1] == '\n')
    buf[--off] = '\0';
}

/* Runs one test in a child; returns 0 pass, 1 fail, 2 skip. */
static int run_one(int i)
{
  int out[2];
  pid_t pid;
  int status = 0;
  double t0 = ds_test_now_ms(), deadline;
  char reason[512];

  fflush(NULL);
  if (pipe(out) != 0)
    return 1;
  pid = fork();
  if (pid < 0)
    return 1;
  if (pid == 0) {
    setpgid(0, 0);
    close(out[0]);
    dup2(out[1], STDOUT_FILENO);
    close(out[1]);
    signal(SIGPIPE, SIG_IGN);
    tests[i].fn();
    fflush(NULL);
    /* exit(), not _exit(): under ASan, LeakSanitizer checks at exit, and a
     * leak fails the test. */
    exit(0);
  }
  close(out[1]);
  deadline = t0 + tests[i].timeout_s * 1000.0;
  for (;;) {
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid)
      break;
    if (r < 0 && errno != EINTR) {
      status = -1;
      break;
    }
    if (ds_test_now_ms() > deadline) {
      kill(-pid, SIGKILL);
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      close(out[0]);
      printf("FAIL %s: timed out after %u s\n", tests[i].name,
             tests[i].timeout_s);
      return 1;
    }
    usleep(2000);
  }
  /* Kill anything the test left behind in its process group. */
  kill(-pid, SIGKILL);
  slurp(out[0], reason, sizeof reason);
  close(out[0]);
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
    printf("ok   %s (%.0f ms)\n", tests[i].name, ds_test_now_ms() - t0);
    return 0;
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == DS_TEST_SKIP_STATUS) {
    printf("skip %s: %s\n", tests[i].name, reason);
    return 2;
  }
  if (WIFSIGNALED(status))
    printf("FAIL %s: killed by signal %d\n", tests[i].name, WTERMSIG(status));
  else
    printf("FAIL %s: exit status %d\n", tests[i].name,
           WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  if (reason[0])
    printf("     output: %s\n", reason);
  return 1;
}

static const char *exclude;

static int selected(int i, int argc, char **argv, int first)
{
  int a;
  if (exclude != NULL && strncmp(tests[i].name, exclude, strlen(exclude)) == 0)
    return 0;
  if (first >= argc)
    return 1;
  for (a = first; a < argc; a++)
    if (strstr(tests[i].name, argv[a]) != NULL)
      return 1;
  return 0;
}

int main(int argc, char **argv)
{
  int counts[3] = {0, 0, 0};
  int i, first = 1, list = 0;

  while (first < argc && argv[first][0] == '-') {
    if (strcmp(argv[first], "-l") == 0) {
      list = 1;
      first++;
    } else if (strcmp(argv[first], "-x") == 0 && first + 1 < argc) {
      exclude = argv[first + 1];
      first += 2;
    } else {
      fprintf(stderr, "usage: %s [-l] [-x PREFIX] [SUBSTRING...]\n", argv[0]);
      return 64;
    }
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  for (i = 0; i < ntests; i++) {
    if (!selected(i, argc, argv, first))
      continue;
    if (list) {
      printf("%s\n", tests[i].name);
      continue;
    }
    counts[run_one(i)]++;
  }
  if (!list)
    printf("unit: %d passed, %d failed, %d skipped\n", counts[0], counts[1],
           counts[2]);
  return counts[1] ? 1 : 0;
}
