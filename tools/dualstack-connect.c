/* dualstack-connect: connects to HOST PORT by Happy Eyeballs (RFC 8305) and
 * relays stdin/stdout like nc.
 *
 * dualstack-connect [-v] [-z] [-4|-6] [--prefer ipv4|ipv6]
 *                   [--attempt-delay MS] [--timeout SECONDS]
 *                   [--resolver SERVERS] [--hosts FILE]
 *                   [--timeline FILE.svg] HOST PORT
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
#include <time.h>
#include <unistd.h>

#define EX_OK 0
#define EX_USAGE 64
#define EX_NOHOST 68
#define EX_UNAVAILABLE 69
#define EX_SOFTWARE 70

/* One connection attempt, for --timeline. */
typedef struct attempt {
  int index, family, ended;
  char addr[DS_ADDR_STRLEN];
  double start, end; /* ms since the race began */
  int result;        /* 0 connected, or a negative code */
} attempt;

typedef struct state {
  int verbose;
  int done, fd, err;
  char why[1024];
  attempt *att; /* every attempt, in start order */
  size_t n_att, cap_att;
  int att_lost;       /* attempts not recorded (out of memory) */
  struct timespec t0; /* when the race was started */
  double t_end;       /* when it ended, ms since t0 */
} state;

static void usage(FILE *f)
{
  fprintf(f,
          "usage: dualstack-connect [-v] [-z] [-4|-6] [--prefer ipv4|ipv6]\n"
          "                         [--attempt-delay MS] [--timeout SECONDS]\n"
          "                         [--resolver SERVERS] [--hosts FILE]\n"
          "                         [--timeline FILE.svg] HOST PORT\n");
}

/* Returns "ipv4" or "ipv6". */
static const char *fam_name(int family)
{
  return family == AF_INET6 ? "ipv6" : "ipv4";
}

/* Returns milliseconds since st->t0. */
static double since_start(const state *st)
{
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (double)(now.tv_sec - st->t0.tv_sec) * 1e3 +
         (double)(now.tv_nsec - st->t0.tv_nsec) / 1e6;
}

/* Records attempts and their results for --timeline. */
static void record(state *st, const ds_happy_event *ev, const char *a)
{
  size_t i;
  if (ev->type == DS_HE_ATTEMPT) {
    if (st->n_att == st->cap_att) {
      size_t cap = st->cap_att ? st->cap_att * 2 : 8;
      attempt *n = realloc(st->att, cap * sizeof *n);
      if (n == NULL) {
        st->att_lost++;
        return;
      }
      st->att = n;
      st->cap_att = cap;
    }
    attempt *t = &st->att[st->n_att++];
    memset(t, 0, sizeof *t);
    t->index = ev->index;
    t->family = ev->family;
    t->start = ev->t_ms;
    snprintf(t->addr, sizeof t->addr, "%s", a);
  } else if (ev->type == DS_HE_RESULT) {
    for (i = 0; i < st->n_att; i++)
      if (st->att[i].index == ev->index && !st->att[i].ended) {
        st->att[i].ended = 1;
        st->att[i].end = ev->t_ms;
        st->att[i].result = ev->result;
      }
  }
}

/* Prints one -v line per event: +MS.m WHAT. */
static void on_event(ds_happy *h, const ds_happy_event *ev, void *user)
{
  state *st = user;
  char a[DS_ADDR_STRLEN];
  (void)h;
  a[0] = '\0';
  if (ev->type != DS_HE_ANSWER)
    ds_addr_format(&ev->addr, a, sizeof a, DS_ADDR_FMT_PORT);
  record(st, ev, a);
  if (!st->verbose)
    return;
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
  st->t_end = since_start(st);
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

/* Writes s into f with the five XML special characters escaped. */
static void xml_text(FILE *f, const char *s)
{
  for (; *s; s++) {
    switch (*s) {
    case '&':
      fputs("&amp;", f);
      break;
    case '<':
      fputs("&lt;", f);
      break;
    case '>':
      fputs("&gt;", f);
      break;
    case '"':
      fputs("&quot;", f);
      break;
    case '\'':
      fputs("&apos;", f);
      break;
    default:
      fputc(*s, f);
    }
  }
}

/* Returns the outcome of attempt t as text: "ok", an errno name, or
 * ECANCELED for an attempt still running when the race ended (a loser
 * closed when another won, or cut off by the overall timeout). */
static const char *outcome(const state *st, const attempt *t)
{
  if (!t->ended)
    return st->fd < 0 && st->err == -ETIMEDOUT ? "ETIMEDOUT" : "ECANCELED";
  return t->result == 0 ? "ok" : ds_err_name(t->result);
}

/* Returns the fill colour for an outcome. */
static const char *colour(const char *what)
{
  if (strcmp(what, "ok") == 0)
    return "#2e9d48";
  if (strcmp(what, "ECANCELED") == 0)
    return "#9a9a9a";
  if (strcmp(what, "ETIMEDOUT") == 0)
    return "#e08a1e";
  return "#d3402f";
}

/* Writes the race as an SVG timeline to path: one bar per attempt
 * (family, address, start, end, outcome) on a millisecond axis. Returns 0,
 * or -1 with a message on stderr. */
static int write_timeline(const state *st, const char *path, const char *host,
                          long port)
{
  const double left = 300, width = 460, row_h = 22, top = 50;
  double end = st->t_end > 1 ? st->t_end : 1, scale, y;
  size_t i;
  int k;
  FILE *f = fopen(path, "w");
  if (f == NULL) {
    fprintf(stderr, "dualstack-connect: --timeline %s: %s\n", path,
            strerror(errno));
    return -1;
  }
  for (i = 0; i < st->n_att; i++)
    if (st->att[i].ended && st->att[i].end > end)
      end = st->att[i].end;
  scale = width / end;
  y = top + (double)st->n_att * row_h;
  fprintf(f,
          "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
          "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" "
          "height=\"%.0f\" font-family=\"sans-serif\" font-size=\"12\">\n"
          "<title>dualstack-connect ",
          left + width + 40, y + 70);
  xml_text(f, host);
  fprintf(f,
          " %ld</title>\n<text x=\"10\" y=\"20\" "
          "font-weight=\"bold\">Happy Eyeballs to ",
          port);
  xml_text(f, host);
  fprintf(f, " port %ld: %s after %.1f ms</text>\n", port,
          st->fd >= 0 ? "connected" : ds_err_name(st->err), st->t_end);
  for (i = 0; i < st->n_att; i++) {
    const attempt *t = &st->att[i];
    const char *what = outcome(st, t);
    double t_end = t->ended ? t->end : st->t_end;
    double x = left + t->start * scale, w = (t_end - t->start) * scale;
    double ty = top + (double)i * row_h;
    if (w < 2)
      w = 2;
    fprintf(f,
            "<g class=\"attempt\" data-family=\"%s\" data-result=\"%s\">\n"
            "<title>attempt %d %s ",
            fam_name(t->family), what, t->index, fam_name(t->family));
    xml_text(f, t->addr);
    fprintf(f, ": %s, +%.1f to +%.1f ms</title>\n", what, t->start, t_end);
    fprintf(f, "<text x=\"10\" y=\"%.0f\">%d %s ", ty + 15, t->index,
            fam_name(t->family));
    xml_text(f, t->addr);
    fprintf(f,
            "</text>\n<rect class=\"bar\" x=\"%.1f\" y=\"%.0f\" "
            "width=\"%.1f\" height=\"%.0f\" fill=\"%s\"/>\n"
            "<text x=\"%.1f\" y=\"%.0f\">%s %.1f ms</text>\n</g>\n",
            x, ty + 3, w, row_h - 6, colour(what),
            x + w + 4 < left + width - 60 ? x + w + 4 : left + width - 60,
            ty + 15, what, t_end - t->start);
  }
  fprintf(f,
          "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" "
          "stroke=\"#444\"/>\n",
          left, y + 5, left + width, y + 5);
  for (k = 0; k <= 4; k++) {
    double t = end * k / 4, x = left + t * scale;
    fprintf(f,
            "<line x1=\"%.1f\" y1=\"%.0f\" x2=\"%.1f\" y2=\"%.0f\" "
            "stroke=\"#444\"/>\n<text x=\"%.1f\" y=\"%.0f\" "
            "text-anchor=\"middle\">%.1f ms</text>\n",
            x, y + 5, x, y + 10, x, y + 24, t);
  }
  fprintf(f,
          "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"end\">time since "
          "the race began%s</text>\n</svg>\n",
          left + width, y + 45,
          st->att_lost ? " (some attempts not recorded)" : "");
  if (fclose(f) != 0) {
    fprintf(stderr, "dualstack-connect: --timeline %s: %s\n", path,
            strerror(errno));
    return -1;
  }
  return 0;
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
      {"timeline", required_argument, NULL, 'T'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  ds_happy_opts o = {0};
  ds_resolver_opts ro = {0};
  state st = {0};
  ds_reactor *r;
  ds_happy *h;
  char err[256];
  const char *timeline = NULL;
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
    case 'T':
      timeline = optarg;
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
  clock_gettime(CLOCK_MONOTONIC, &st.t0);
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
  if (timeline != NULL &&
      write_timeline(&st, timeline, argv[optind], port) != 0) {
    if (st.fd >= 0)
      close(st.fd);
    free(st.att);
    return EX_SOFTWARE;
  }
  free(st.att);
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
