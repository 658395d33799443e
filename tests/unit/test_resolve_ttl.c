/* The resolver's TTLs (ds_lookup_ttl): the smallest TTL of a DNS answer,
 * DS_TTL_NONE for DNS failures, DS_TTL_LOCAL for hosts-file answers, as
 * a cache in front of the resolver (the shim's) needs them. The test DNS
 * server (dnsd) runs on loopback as in test_resolve.c, whose helpers are
 * repeated here.
 */
#include "test.h"

#include "dualstack.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>

/* ------------------------------------------------------------ dnsd */

typedef struct dns {
  pid_t pid;
  unsigned port;
  int logfd;
  char server[64]; /* for opts.servers */
} dns;

/* Returns a memfd holding text (close-on-exec). */
static int memfile(const char *name, const char *text)
{
  int fd = memfd_create(name, MFD_CLOEXEC);
  size_t len = strlen(text);
  CHECK_MSG(fd >= 0, "memfd_create: %s", strerror(errno));
  CHECK_EQ(write(fd, text, len), (ssize_t)len);
  return fd;
}

/* Returns the path of dnsd. */
static const char *dnsd_path(char *buf, size_t len)
{
  const char *b = getenv("DS_BUILD");
  snprintf(buf, len, "%s/lab/dnsd", b != NULL ? b : "build");
  CHECK_MSG(access(buf, X_OK) == 0,
            "%s: not found (set DS_BUILD to the build directory)", buf);
  return buf;
}

/* Starts dnsd on listen (`127.0.0.1:0`, `[::1]:0`) with config; fills d
 * with its pid, port, query log and server text. */
static void dns_start_on(dns *d, const char *listen, const char *config)
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

static void dns_start(dns *d, const char *config)
{
  dns_start_on(d, "127.0.0.1:0", config);
}

/* Stops dnsd and waits for it. */
static void dns_stop(dns *d)
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
static const char *dns_log(const dns *d)
{
  static char buf[65536];
  ssize_t n = pread(d->logfd, buf, sizeof buf - 1, 0);
  buf[n > 0 ? n : 0] = '\0';
  return buf;
}

/* Returns how many log lines show a query for `name type`. */
static int dns_queries(const dns *d, const char *name, const char *type)
{
  char pat[300];
  const char *p = dns_log(d);
  int n = 0;
  snprintf(pat, sizeof pat, " %s %s ", name, type);
  while ((p = strstr(p, pat)) != NULL) {
    n++;
    p++;
  }
  return n;
}

/* ---------------------------------------------------------- lookups */

typedef struct ttlrec {
  int calls;
  int status[2]; /* [0] AAAA, [1] A */
  int ttl[2];
} ttlrec;

static void on_ttl(ds_lookup *l, int family, int status, const ds_addr *addrs,
                   size_t n, void *user)
{
  ttlrec *t = user;
  int i = family == AF_INET6 ? 0 : 1;
  (void)addrs;
  (void)n;
  t->calls++;
  t->status[i] = status;
  t->ttl[i] = ds_lookup_ttl(l, family);
}

/* Looks name up in both families against d (hosts file hosts_path, ""
 * for none) and runs until both answered. */
static void lookup_ttl(const dns *d, const char *hosts_path, const char *name,
                       ttlrec *t)
{
  ds_reactor *r;
  ds_lookup *l;
  ds_resolver_opts o = {0};
  char err[256] = "";
  double end;
  int rc;

  memset(t, 0, sizeof *t);
  o.servers = d->server;
  o.hosts_file = hosts_path;
  o.timeout_ms = 2000;
  o.attempts = 1;
  CHECK_EQ(ds_reactor_new(&r), 0);
  rc = ds_lookup_start(r, name, DS_LOOKUP_A | DS_LOOKUP_AAAA, &o, on_ttl, t,
                       &l, err, sizeof err);
  CHECK_MSG(rc == 0, "%s: %s", name, err);
  end = ds_test_now_ms() + 3000;
  while (t->calls < 2 && ds_test_now_ms() < end)
    ds_reactor_run_once(r, 20);
  CHECK_EQ(t->calls, 2);
  CHECK_EQ(ds_reactor_free(r), 0);
}

static const char *const ttl_config =
    "short.test   A     192.0.2.1,192.0.2.2   ttl=7\n"
    "short.test   AAAA  2001:db8::1           ttl=3600\n"
    "zero.test    A     192.0.2.3             ttl=0\n"
    "zero.test    AAAA  NODATA\n"
    "gone.test    *     NXDOMAIN\n"
    "broken.test  *     SERVFAIL\n"
    "hosted.test  *     192.0.2.99\n";

TEST(resolve_ttl_of_dns_answers)
{
  dns d;
  ttlrec t;

  dns_start(&d, ttl_config);
  lookup_ttl(&d, "", "short.test", &t);
  CHECK_EQ(t.status[1], 0);
  CHECK_EQ(t.ttl[1], 7);
  CHECK_EQ(t.status[0], 0);
  CHECK_EQ(t.ttl[0], 3600);
  lookup_ttl(&d, "", "zero.test", &t);
  CHECK_EQ(t.ttl[1], 0);
  CHECK_EQ(t.status[0], DS_ENODATA);
  CHECK_EQ(t.ttl[0], DS_TTL_NONE);
  lookup_ttl(&d, "", "gone.test", &t);
  CHECK_EQ(t.status[1], DS_ENOTFOUND);
  CHECK_EQ(t.ttl[1], DS_TTL_NONE);
  CHECK_EQ(t.ttl[0], DS_TTL_NONE);
  lookup_ttl(&d, "", "broken.test", &t);
  CHECK_EQ(t.status[1], DS_ESERVFAIL);
  CHECK_EQ(t.ttl[1], DS_TTL_NONE);
  dns_stop(&d);
}

TEST(resolve_ttl_of_hosts_file_and_literals_is_local)
{
  dns d;
  ttlrec t;
  char path[64];
  int fd;

  dns_start(&d, ttl_config);
  fd = memfile("hosts", "2001:db8::99 hosted.test\n");
  snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  lookup_ttl(&d, path, "hosted.test", &t);
  CHECK_EQ(t.status[0], 0);
  CHECK_EQ(t.ttl[0], DS_TTL_LOCAL);
  /* No IPv4 line: NODATA from the hosts file, also local. */
  CHECK_EQ(t.status[1], DS_ENODATA);
  CHECK_EQ(t.ttl[1], DS_TTL_LOCAL);
  CHECK_EQ(dns_queries(&d, "hosted.test", "A"), 0);
  lookup_ttl(&d, "", "192.0.2.5", &t);
  CHECK_EQ(t.ttl[1], DS_TTL_LOCAL);
  CHECK_EQ(ds_lookup_ttl(NULL, AF_INET), DS_TTL_NONE);
  close(fd);
  dns_stop(&d);
}
