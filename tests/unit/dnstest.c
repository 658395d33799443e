/* The test DNS server (tests/lab/dnsd.c) on loopback for the resolver's
 * tests: started with a configuration in a memfd, its query log read
 * back. Shared by test_resolve.c and test_resolve_ttl.c. */
#include "dnstest.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>


/* Returns a memfd holding text (close-on-exec). */
int memfile(const char *name, const char *text)
{
  int fd = memfd_create(name, MFD_CLOEXEC);
  size_t len = strlen(text);
  CHECK_MSG(fd >= 0, "memfd_create: %s", strerror(errno));
  CHECK_EQ(write(fd, text, len), (ssize_t)len);
  return fd;
}

/* Returns the path of dnsd. */
const char *dnsd_path(char *buf, size_t len)
{
  const char *b = getenv("DS_BUILD");
  snprintf(buf, len, "%s/lab/dnsd", b != NULL ? b : "build");
  CHECK_MSG(access(buf, X_OK) == 0,
            "%s: not found (set DS_BUILD to the build directory)", buf);
  return buf;
}

/* Starts dnsd on listen (`127.0.0.1:0`, `[::1]:0`) with config; fills d
 * with its pid, port, query log and server text. */
void dns_start_on(dns *d, const char *listen, const char *config)
{
  char path[512], cfg[64], log[64], line[256];
  int cfd = memfile("dnsd.conf", config);
  int p[2];
  FILE *f;
  const char *colon;

  memset(d, 0, sizeof *d);
  d->logfd = memfile("dnsd.log", "");
  dnsd_path(path, sizeof path);
  snprintf(cfg, sizeof cfg, "/proc/self/fd/%d", cfd);
  snprintf(log, sizeof log, "/proc/self/fd/%d", d->logfd);
  CHECK_EQ(pipe2(p, O_CLOEXEC), 0);
  d->pid = fork();
  CHECK(d->pid >= 0);
  if (d->pid == 0) {
    /* Stays in the test's process group: the runner's safety net. */
    dup2(p[1], STDOUT_FILENO);
    fcntl(cfd, F_SETFD, 0);
    fcntl(d->logfd, F_SETFD, 0);
    execl(path, "dnsd", "-l", listen, "-c", cfg, "-q", log, (char *)NULL);
    _exit(127);
  }
  close(p[1]);
  f = fdopen(p[0], "r");
  CHECK(f != NULL);
  CHECK_MSG(fgets(line, sizeof line, f) != NULL, "dnsd did not start");
  fclose(f);
  close(cfd);
  colon = strrchr(line, ':');
  CHECK_MSG(strncmp(line, "listening ", 10) == 0 && colon != NULL &&
                sscanf(colon + 1, "%u", &d->port) == 1,
            "dnsd said: %s", line);
  snprintf(d->server, sizeof d->server, "%.*s:%u", (int)(colon - (line + 10)),
           line + 10, d->port);
}

void dns_start(dns *d, const char *config)
{
  dns_start_on(d, "127.0.0.1:0", config);
}

/* Stops dnsd and waits for it. */
void dns_stop(dns *d)
{
  int status;
  if (d->pid > 0) {
    kill(d->pid, SIGTERM);
    waitpid(d->pid, &status, 0);
    d->pid = 0;
  }
  if (d->logfd >= 0)
    close(d->logfd);
  d->logfd = -1;
}

/* Returns the query log so far (static buffer). */
const char *dns_log(const dns *d)
{
  static char buf[65536];
  ssize_t n = pread(d->logfd, buf, sizeof buf - 1, 0);
  buf[n > 0 ? n : 0] = '\0';
  return buf;
}

/* Returns how many lines of a dnsd query log show a query for
 * `name type`. */
int dns_count_queries(const char *log, const char *name, const char *type)
{
  char pat[300];
  const char *p = log;
  int n = 0;
  snprintf(pat, sizeof pat, " %s %s ", name, type);
  while ((p = strstr(p, pat)) != NULL) {
    n++;
    p++;
  }
  return n;
}

/* Returns how many log lines show a query for `name type`. */
int dns_queries(const dns *d, const char *name, const char *type)
{
  return dns_count_queries(dns_log(d), name, type);
}
