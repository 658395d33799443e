/* The resolver with the system's configuration, inside namespace A of a
 * lab pair (`tests/lab/lab.sh run-pair`, as tests/check.sh runs them):
 * A's /etc/resolv.conf names dnsd in B, with `options timeout:N
 * attempts:N`, and A's /etc/hosts keeps a name away from DNS. Every lookup
 * here passes NULL options.
 *
 * A's resolv.conf is rewritten in place with `lab.sh resolv`: this process
 * sees /etc/resolv.conf through the bind mount `ip netns exec` made when
 * it started, which pins the file it found then. `lab.sh dns ... NS_A`
 * replaces the file by a rename, which a running process never sees, so
 * dnsd is started without a client namespace.
 */
#include "dnstest.h"

#include "dualstack.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>

/* Returns 1 while pid exists and is not a zombie (dnsd is not our child:
 * whoever reaps it may take a while). */
static int alive(pid_t pid)
{
  char path[64], buf[256], *p;
  FILE *f;
  int z = 0;
  if (kill(pid, 0) != 0)
    return 0;
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  if ((f = fopen(path, "re")) == NULL)
    return 0;
  if (fgets(buf, sizeof buf, f) != NULL && (p = strrchr(buf, ')')) != NULL)
    z = p[1] == ' ' && p[2] == 'Z';
  fclose(f);
  return !z;
}

/* Stops the dnsd recorded in the pid file (one a failed test left
 * behind, or this test's), so that B's port 53 is free again. */
static void dnsd_stop(void)
{
  char path[512];
  FILE *f;
  int pid = 0;
  double end;

  snprintf(path, sizeof path, "%s/resolve-dnsd.pid",
           ds_test_lab_env("LAB_TMP"));
  f = fopen(path, "re");
  if (f == NULL)
    return;
  if (fscanf(f, "%d", &pid) != 1)
    pid = 0;
  fclose(f);
  unlink(path);
  if (pid <= 1)
    return;
  kill(pid, SIGTERM);
  for (end = ds_test_now_ms() + 3000; alive(pid) && ds_test_now_ms() < end;)
    usleep(10000);
  CHECK_MSG(!alive(pid), "dnsd %d did not stop", pid);
}

/* Starts dnsd in B on 192.0.2.2 and 2001:db8::2 with config; its query
 * log path goes to log. */
static void dnsd_start(const char *config, char *log, size_t loglen)
{
  const char *tmp = ds_test_lab_env("LAB_TMP");
  char conf[512], pidpath[512], cmd[1600], out[64];
  FILE *f;
  int pid;

  ds_test_lab_env("LAB_SH");
  dnsd_stop();
  snprintf(conf, sizeof conf, "%s/resolve-%d.conf", tmp, (int)getpid());
  snprintf(log, loglen, "%s/resolve-%d.log", tmp, (int)getpid());
  f = fopen(conf, "we");
  CHECK(f != NULL);
  fputs(config, f);
  fclose(f);
  snprintf(cmd, sizeof cmd,
           "\"$LAB_SH\" dns \"$LAB_NS_B\" 192.0.2.2,2001:db8::2 '%s' '%s'",
           conf, log);
  f = popen(cmd, "r");
  CHECK(f != NULL);
  out[0] = '\0';
  if (fgets(out, sizeof out, f) == NULL)
    out[0] = '\0';
  CHECK_MSG(pclose(f) == 0 && sscanf(out, "%d", &pid) == 1,
            "dnsd did not start: %s", out);
  snprintf(pidpath, sizeof pidpath, "%s/resolve-dnsd.pid", tmp);
  f = fopen(pidpath, "we");
  CHECK(f != NULL);
  fprintf(f, "%d\n", pid);
  fclose(f);
}

/* Gives A's resolv.conf these lines (in place; see the top). */
static void resolv(const char *line1, const char *line2)
{
  ds_test_lab_env("LAB_NS_A");
  ds_test_sh("\"$LAB_SH\" resolv \"$LAB_NS_A\" '%s' '%s'", line1, line2);
}

/* Puts A's resolv.conf back as the lab made it. */
static void resolv_restore(void)
{
  ds_test_sh("\"$LAB_SH\" resolv \"$LAB_NS_A\" \"# lab $LAB_NS_A\" "
             "'nameserver 127.0.0.1'");
}

/* Returns the query log (static buffer). */
static const char *read_log(const char *path)
{
  static char buf[65536];
  FILE *f = fopen(path, "re");
  size_t n = 0;
  if (f != NULL) {
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
  }
  buf[n] = '\0';
  return buf;
}

/* Returns how many log lines show a query for `name type`. */
static int queries(const char *log, const char *name, const char *type)
{
  return dns_count_queries(read_log(log), name, type);
}

/* What one lookup delivered. */
typedef struct rec {
  double t0;
  int calls, calls4, calls6, wrong;
  int status4, status6;
  char text4[512], text6[512];
  double t4, t6;
} rec;

static int in_start;

static void on_lookup(ds_lookup *l, int family, int status,
                      const ds_addr *addrs, size_t n, void *user)
{
  rec *c = user;
  char *text = family == AF_INET ? c->text4 : c->text6;
  size_t i, off = 0;
  (void)l;
  if (in_start)
    c->wrong++;
  c->calls++;
  text[0] = '\0';
  for (i = 0; i < n && off < 400; i++) {
    char a[DS_ADDR_STRLEN];
    ds_addr_format(&addrs[i], a, sizeof a, 0);
    off += (size_t)snprintf(text + off, 512 - off, "%s%s", i ? " " : "", a);
  }
  if (family == AF_INET) {
    c->calls4++;
    c->status4 = status;
    c->t4 = ds_test_now_ms() - c->t0;
  } else {
    c->calls6++;
    c->status6 = status;
    c->t6 = ds_test_now_ms() - c->t0;
  }
}

/* Starts a lookup of name for both families with the system's settings. */
static void start(ds_reactor *r, rec *c, const char *name)
{
  char err[256] = "";
  int rc;
  c->t0 = ds_test_now_ms();
  in_start = 1;
  rc = ds_lookup_start(r, name, DS_LOOKUP_A | DS_LOOKUP_AAAA, NULL, on_lookup,
                       c, NULL, err, sizeof err);
  in_start = 0;
  CHECK_MSG(rc == 0, "lookup %s: %s (%s)", name, ds_err_name(rc), err);
}

static const char *const lab_config =
    "www.test     A     192.0.2.10,192.0.2.11\n"
    "www.test     AAAA  2001:db8::10\n"
    "silent.test  *     DROP\n"
    "labhost.test *     198.51.100.1,2001:db8::99\n"
    "marker.test  A     192.0.2.1\n";

TEST(lab_resolve_system_resolv_conf_servers_and_timeouts)
{
  char log[512];
  ds_reactor *r;
  rec www = {0}, silent = {0};

  dnsd_start(lab_config, log, sizeof log);
  resolv("nameserver 192.0.2.2", "options timeout:1 attempts:1");
  CHECK_EQ(ds_reactor_new(&r), 0);
  start(r, &www, "www.test");
  start(r, &silent, "silent.test");
  RUN_UNTIL(r, www.calls == 2, 3000);
  CHECK_EQ(www.status4, 0);
  CHECK_STR(www.text4, "192.0.2.10 192.0.2.11");
  CHECK_STR(www.text6, "2001:db8::10");
  CHECK_MSG(strstr(read_log(log), " udp 192.0.2.1#") != NULL, "log:\n%s",
            read_log(log));
  /* timeout:1 attempts:1: one query per family, given up after 1 s (not
   * glibc's default 5 + 10 s, nor c-ares' 5 s x 4). */
  RUN_UNTIL(r, silent.calls == 2, 4000);
  CHECK_EQ(silent.status4, DS_EDNSTIMEOUT);
  CHECK_EQ(silent.status6, DS_EDNSTIMEOUT);
  CHECK_MSG(silent.t4 >= 995 && silent.t4 < 1000 + 1000, "A after %.1f ms",
            silent.t4);
  CHECK_MSG(silent.t6 >= 995 && silent.t6 < 1000 + 1000, "AAAA after %.1f ms",
            silent.t6);
  CHECK_EQ(queries(log, "silent.test", "A"), 1);
  CHECK_EQ(queries(log, "silent.test", "AAAA"), 1);
  CHECK_EQ(www.wrong + silent.wrong, 0);
  CHECK_EQ(ds_reactor_free(r), 0);
  resolv_restore();
  dnsd_stop();
}

TEST(lab_resolve_system_attempts_double_the_timeout)
{
  char log[512];
  ds_reactor *r;
  rec silent = {0};

  dnsd_start(lab_config, log, sizeof log);
  resolv("nameserver 192.0.2.2", "options attempts:2 timeout:1");
  CHECK_EQ(ds_reactor_new(&r), 0);
  start(r, &silent, "silent.test");
  /* 1 s, then 2 s for the second round, as glibc. */
  RUN_UNTIL(r, silent.calls == 2, 6000);
  CHECK_EQ(silent.status4, DS_EDNSTIMEOUT);
  CHECK_MSG(silent.t4 >= 2995 && silent.t4 < 3000 + 1500, "A after %.1f ms",
            silent.t4);
  CHECK_EQ(queries(log, "silent.test", "A"), 2);
  CHECK_EQ(queries(log, "silent.test", "AAAA"), 2);
  CHECK_EQ(ds_reactor_free(r), 0);
  resolv_restore();
  dnsd_stop();
}

TEST(lab_resolve_system_hosts_file_keeps_the_name_from_dns)
{
  char log[512];
  ds_reactor *r;
  rec h = {0}, m = {0};

  dnsd_start(lab_config, log, sizeof log);
  resolv("nameserver 192.0.2.2", "options timeout:1 attempts:1");
  ds_test_lab_env("LAB_NS_A");
  ds_test_sh("\"$LAB_SH\" hosts \"$LAB_NS_A\" '192.0.2.99 labhost.test'");
  CHECK_EQ(ds_reactor_new(&r), 0);
  start(r, &h, "labhost.test");
  RUN_UNTIL(r, h.calls == 2, 2000);
  CHECK_STR(h.text4, "192.0.2.99");
  CHECK_EQ(h.status6, DS_ENODATA);
  /* A later query reaches the log; labhost.test never did. */
  start(r, &m, "marker.test");
  RUN_UNTIL(r, m.calls == 2, 3000);
  CHECK_STR(m.text4, "192.0.2.1");
  CHECK_EQ(queries(log, "marker.test", "A"), 1);
  CHECK_MSG(strstr(read_log(log), "labhost") == NULL, "log:\n%s",
            read_log(log));
  CHECK_EQ(h.wrong + m.wrong, 0);
  CHECK_EQ(ds_reactor_free(r), 0);
  resolv_restore();
  dnsd_stop();
}

TEST(lab_resolve_ipv6_nameserver)
{
  char log[512];
  ds_reactor *r;
  rec www = {0};

  dnsd_start(lab_config, log, sizeof log);
  resolv("nameserver 2001:db8::2", "options timeout:1 attempts:1");
  CHECK_EQ(ds_reactor_new(&r), 0);
  start(r, &www, "www.test");
  RUN_UNTIL(r, www.calls == 2, 3000);
  CHECK_STR(www.text4, "192.0.2.10 192.0.2.11");
  CHECK_STR(www.text6, "2001:db8::10");
  CHECK_MSG(strstr(read_log(log), " udp 2001:db8::1#") != NULL, "log:\n%s",
            read_log(log));
  CHECK_EQ(ds_reactor_free(r), 0);
  resolv_restore();
  dnsd_stop();
}
