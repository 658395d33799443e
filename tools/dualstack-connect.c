/* dualstack-connect: connects to HOST PORT by Happy Eyeballs (RFC 8305) and
 * relays stdin/stdout like nc.
 *
 * dualstack-connect [-v] [-z] [-4|-6] [--prefer ipv4|ipv6]
 *                   [--attempt-delay MS] [--timeout SECONDS]
 *                   [--resolver SERVERS] [--hosts FILE] HOST PORT
 *
 * Exit status: 0 connected, 64 usage, 68 name not found, 69 every attempt
 * failed, 70 internal error.
 */
#include "dualstack.h"

#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EX_OK 0
#define EX_USAGE 64
#define EX_NOHOST 68
#define EX_UNAVAILABLE 69
#define EX_SOFTWARE 70

typedef struct state {
  int verbose;
  int done, fd, err;
  char why[1024];
} state;

static void usage(FILE *f)
{
  fprintf(f,
          "usage: dualstack-connect [-v] [-z] [-4|-6] [--prefer ipv4|ipv6]\n"
          "                         [--attempt-delay MS] [--timeout SECONDS]\n"
          "                         [--resolver SERVERS] [--hosts FILE]\n"
          "                         HOST PORT\n");
}

/* Returns "ipv4" or "ipv6". */
static const char *fam_name(int family)
{
  return family == AF_INET6 ? "ipv6" : "ipv4";
}

/* Prints one -v line per event: +MS.m WHAT. */
static void on_event(ds_happy *h, const ds_happy_event *ev, void *user)
{
  state *st = user;
  char a[DS_ADDR_STRLEN];
  (void)h;
  if (!st->verbose)
    return;
  a[0] = '\0';
  if (ev->type != DS_HE_ANSWER)
    ds_addr_format(&ev->addr, a, sizeof a, DS_ADDR_FMT_PORT);
  switch (ev->type) {
  case DS_HE_ANSWER:
    if (ev->result == 0)
      fprintf(stderr, "+%.1f answer %s %zu address%s\n", ev->t_ms,
              ev->family == AF_INET6 ? "AAAA" : "A", ev->n_answers,
              ev->n_answers == 1 ? "" : "es");
    else
      fprintf(stderr, "+%.1f answer %s %s\n", ev->t_ms,
              ev->family == AF_INET6 ? "AAAA" : "A", ds_err_name(ev->result));
    break;
  case DS_HE_ATTEMPT:
    fprintf(stderr, "+%.1f attempt %d %s %s\n", ev->t_ms, ev->index,
            fam_name(ev->family), a);
    break;
  case DS_HE_RESULT:
    fprintf(stderr, "+%.1f attempt %d %s %s -> %s\n", ev->t_ms, ev->index,
            fam_name(ev->family), a,
            ev->result == 0 ? "connected" : ds_err_name(ev->result));
    break;
  case DS_HE_SKIPPED:
    fprintf(stderr, "+%.1f skipped %s %s -> %s\n", ev->t_ms,
            fam_name(ev->family), a, ds_err_name(ev->result));
    break;
  }
}

static void on_done(ds_happy *h, int fd, int err, void *user)
{
  state *st = user;
  st->done = 1;
  st->fd = fd;
  st->err = err;
  if (fd < 0)
    ds_happy_describe(h, st->why, sizeof st->why);
}

/* Copies stdin to fd and fd to stdout until the peer closes. Returns an
 * exit status. */
static int relay(int fd)
{
  struct pollfd p[2] = {{STDIN_FILENO, POLLIN, 0}, {fd, POLLIN, 0}};
  char buf[65536];
  int in_open = 1;

  for (;;) {
    ssize_t n;
    p[0].fd = in_open ? STDIN_FILENO : -1;
    if (poll(p, 2, -1) < 0) {
      if (errno == EINTR)
        continue;
      return EX_SOFTWARE;
    }
    if (p[0].revents) {
      n = read(STDIN_FILENO, buf, sizeof buf);
      if (n <= 0) {
        in_open = 0;
        shutdown(fd, SHUT_WR);
      } else {
        ssize_t off = 0;
        while (off < n) {
          struct pollfd w = {fd, POLLOUT, 0};
          ssize_t m = send(fd, buf + off, (size_t)(n - off), MSG_NOSIGNAL);
          if (m < 0 && (errno == EAGAIN || errno == EINTR)) {
            poll(&w, 1, -1);
            continue;
          }
          if (m < 0)
            return EX_OK; /* the peer went away */
          off += m;
        }
      }
    }
    if (p[1].revents) {
      n = recv(fd, buf, sizeof buf, 0);
      if (n < 0 && (errno == EAGAIN || errno == EINTR))
        continue;
      if (n <= 0)
        return EX_OK;
      if (fwrite(buf, 1, (size_t)n, stdout) != (size_t)n)
        return EX_OK;
      fflush(stdout);
    }
  }
}

/* Returns a number parsed from all of s within [lo, hi], or -1. */
static long number(const char *s, long lo, long hi)
{
  char *end;
  long v;
  errno = 0;
  v = strtol(s, &end, 10);
  if (errno || *s == '\0' || *end != '\0' || v < lo || v > hi)
    return -1;
  return v;
}

int main(int argc, char **argv)
{
  static const struct option longopts[] = {
      {"prefer", required_argument, NULL, 'p'},
      {"attempt-delay", required_argument, NULL, 'd'},
      {"timeout", required_argument, NULL, 't'},
      {"resolver", required_argument, NULL, 'r'},
      {"hosts", required_argument, NULL, 'H'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  ds_happy_opts o = {0};
  ds_resolver_opts ro = {0};
  state st = {0};
  ds_reactor *r;
  ds_happy *h;
  char err[256];
  int c, zero = 0, rc;
  long v, port;

  st.fd = -1;
  while ((c = getopt_long(argc, argv, "vz46h", longopts, NULL)) != -1) {
    switch (c) {
    case 'v':
      st.verbose = 1;
      break;
    case 'z':
      zero = 1;
      break;
    case '4':
      o.family = AF_INET;
      break;
    case '6':
      o.family = AF_INET6;
      break;
    case 'p':
      if (strcmp(optarg, "ipv4") == 0)
        o.prefer = AF_INET;
      else if (strcmp(optarg, "ipv6") == 0)
        o.prefer = AF_INET6;
      else {
        fprintf(stderr,
                "dualstack-connect: --prefer: '%s' is not ipv4 or "
                "ipv6\n",
                optarg);
        return EX_USAGE;
      }
      break;
    case 'd':
      v = number(optarg, 0, 3600000);
      if (v < 0) {
        fprintf(stderr,
                "dualstack-connect: --attempt-delay: '%s' is not a "
                "number of milliseconds\n",
                optarg);
        return EX_USAGE;
      }
      /* The library reads 0 as "default"; on the command line 0 means as
       * short as allowed, which the clamp makes 10 ms. */
      o.attempt_delay_ms = v == 0 ? 1 : (unsigned)v;
      break;
    case 't':
      v = number(optarg, 1, 86400);
      if (v < 0) {
        fprintf(stderr,
                "dualstack-connect: --timeout: '%s' is not a number "
                "of seconds (1-86400)\n",
                optarg);
        return EX_USAGE;
      }
      o.timeout_ms = (unsigned)v * 1000u;
      break;
    case 'r':
      ro.servers = optarg;
      o.resolver = &ro;
      break;
    case 'H':
      ro.hosts_file = optarg;
      o.resolver = &ro;
      break;
    case 'h':
      usage(stdout);
      return EX_OK;
    default:
      usage(stderr);
      return EX_USAGE;
    }
  }
  if (argc - optind != 2) {
    usage(stderr);
    return EX_USAGE;
  }
  port = number(argv[optind + 1], 1, 65535);
  if (port < 0) {
    fprintf(stderr, "dualstack-connect: port '%s' is not a number 1-65535\n",
            argv[optind + 1]);
    return EX_USAGE;
  }
  signal(SIGPIPE, SIG_IGN);
  if (ds_reactor_new(&r) != 0)
    return EX_SOFTWARE;
  rc = ds_happy_start(r, argv[optind], (uint16_t)port, &o, on_done, on_event,
                      &st, &h, err, sizeof err);
  if (rc != 0) {
    fprintf(stderr, "dualstack-connect: %s\n", err);
    ds_reactor_free(r);
    if (rc == DS_EBADNAME || rc == DS_EBADADDR || rc == -ENODEV ||
        rc == DS_ENEEDSCOPE || rc == DS_EFAMILY)
      return EX_USAGE;
    return EX_SOFTWARE;
  }
  while (!st.done)
    if (ds_reactor_run_once(r, -1) < 0)
      return EX_SOFTWARE;
  ds_reactor_free(r);
  if (st.fd < 0) {
    fprintf(stderr, "dualstack-connect: %s port %ld: %s: %s\n", argv[optind],
            port, ds_strerror(st.err), st.why);
    switch (st.err) {
    case DS_ENOTFOUND:
    case DS_ENODATA:
    case DS_ESERVFAIL:
    case DS_EDNSTIMEOUT:
    case DS_EDNS:
      return EX_NOHOST;
    default:
      return EX_UNAVAILABLE;
    }
  }
  if (zero) {
    close(st.fd);
    return EX_OK;
  }
  rc = relay(st.fd);
  close(st.fd);
  return rc;
}
