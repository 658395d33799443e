/* dualstack-listen: listens on every local address with the all-interfaces
 * server endpoint (ds_listen_all) and follows the machine's addresses.
 *
 *   dualstack-listen [-v] [-k] [--echo] [-4|-6] PORT
 *
 * stderr, one line per event (ADDR as `192.0.2.1:80`, `[2001:db8::1]:80`,
 * `[fe80::1%eth0]:80`):
 *   listening ADDR          bound at start, or added later
 *   stopped ADDR            the address was removed from the machine (or
 *                           became unusable): its socket is closed
 *   failed ADDR: REASON     the address could not be bound
 *   waiting ADDR: ...       (-v) IPv6 duplicate address detection runs;
 *                           `listening` follows when it passes
 *   connection from PEER to ADDR   (-v) each accepted connection, with the
 *                           local address it came in on
 *   connection lost: REASON (-v) a relayed connection ended with an error
 *
 * --echo echoes every connection, any number at once. Otherwise the first
 * connection is relayed like `nc -l`: stdin to the peer (FIN at stdin's
 * end), the peer to stdout; it ends when the peer closes, and listening
 * stops at the first connection. -k keeps listening and serves the
 * connections one after another, in arrival order (later ones wait,
 * accepted but unread).
 *
 * Exit status: 0 when the relayed connection ended or on SIGINT/SIGTERM;
 * 64 usage; 69 nothing could be bound (no address, or every bind failed);
 * 70 internal error (out of memory, netlink or reactor failure, stdout
 * write error).
 */
#include "dualstack.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#define EX_USAGE 64
#define EX_UNAVAILABLE 69
#define EX_SOFTWARE 70
#define CHUNK 65536

/* One accepted connection. */
typedef struct conn {
  struct conn *next, *prev; /* every open connection */
  struct conn *qnext;       /* relay -k: waiting for its turn */
  ds_tcp *t;
} conn;

static struct {
  ds_reactor *r;
  ds_server *srv;
  int verbose, keep, echo, family;
  int status;  /* exit status once done */
  int done;    /* leave the loop */
  conn *conns; /* every open connection */
  conn *cur;   /* relay: the connection stdin and stdout belong to */
  conn *qhead, *qtail;
  ds_io *in;   /* stdin, when epoll can watch it */
  int in_file; /* stdin is read on each turn (a file, /dev/null) */
  int in_eof;
  int in_paused; /* the peer's write buffer is full */
  int pump_queued;
  ds_io *sig;
  int sigfd;
} app = {.sigfd = -1};

/* Writes one line to stderr in one write(), so that lines from
 * concurrent events never interleave. */
static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
  char line[512];
  va_list ap;
  int n;
  va_start(ap, fmt);
  n = vsnprintf(line, sizeof line - 1, fmt, ap);
  va_end(ap);
  if (n < 0)
    return;
  if ((size_t)n > sizeof line - 2)
    n = (int)sizeof line - 2;
  line[n++] = '\n';
  if (write(STDERR_FILENO, line, (size_t)n) < 0) {
    /* Nothing sensible to do when stderr is gone. */
  }
}

/* Prints the usage line. */
static void usage(void)
{
  say("usage: dualstack-listen [-v] [-k] [--echo] [-4|-6] PORT");
}

/* Leaves the loop with status (the first reason wins). */
static void finish(int status)
{
  if (!app.done)
    app.status = status;
  app.done = 1;
  ds_reactor_stop(app.r);
}

/* ---------------------------------------------------------------- stdin */

static void pump(void *data);

/* Starts or stops reading stdin, as the relay needs. */
static void stdin_update(void)
{
  int want = app.cur != NULL && !app.in_eof && !app.in_paused;
  if (app.in_file) {
    if (want && !app.pump_queued &&
        ds_reactor_call_soon(app.r, pump, NULL) == 0)
      app.pump_queued = 1;
    return;
  }
  if (app.in != NULL && ds_io_set(app.in, want ? DS_READABLE : 0) != 0) {
    /* epoll refuses this kind of file: read it on each turn instead. */
    ds_io_free(app.in);
    app.in = NULL;
    app.in_file = 1;
    stdin_update();
  }
}

/* Reads one chunk of stdin and sends it to the relayed peer. */
static void stdin_read(void)
{
  char buf[CHUNK];
  ssize_t n;

  if (app.cur == NULL || app.in_eof)
    return;
  n = read(STDIN_FILENO, buf, sizeof buf);
  if (n < 0 && (errno == EAGAIN || errno == EINTR))
    return;
  if (n <= 0) {
    /* End of input (or an unreadable stdin, which counts as one): the
     * peer gets FIN and may still talk. */
    app.in_eof = 1;
    ds_tcp_half_close(app.cur->t);
    stdin_update();
    return;
  }
  ds_tcp_write(app.cur->t, buf, (size_t)n);
}

/* stdin is readable: relay one chunk. */
static void stdin_io(ds_io *w, unsigned events, void *data)
{
  (void)w;
  (void)events;
  (void)data;
  stdin_read();
}

/* Reads a stdin that epoll cannot watch, one chunk per turn. */
static void pump(void *data)
{
  (void)data;
  app.pump_queued = 0;
  if (app.cur == NULL || app.in_eof || app.in_paused || app.done)
    return;
  stdin_read();
  stdin_update();
}

/* ---------------------------------------------------------- connections */

/* Returns a new connection record for t, linked in, or NULL. */
static conn *conn_new(ds_tcp *t)
{
  conn *c = calloc(1, sizeof *c);
  if (c == NULL)
    return NULL;
  c->t = t;
  c->next = app.conns;
  if (app.conns != NULL)
    app.conns->prev = c;
  app.conns = c;
  return c;
}

/* Unlinks and frees c. */
static void conn_free(conn *c)
{
  if (c->prev != NULL)
    c->prev->next = c->next;
  else
    app.conns = c->next;
  if (c->next != NULL)
    c->next->prev = c->prev;
  free(c);
}

/* Echo protocol: every byte goes back; reading pauses while the peer does
 * not take our writes. */
static void echo_data(ds_tcp *t, const void *data, size_t len, void *user)
{
  (void)user;
  ds_tcp_write(t, data, len);
}

/* The peer is done sending: finish ours, then close. */
static void echo_eof(ds_tcp *t, void *user)
{
  (void)user;
  ds_tcp_half_close(t);
}

/* The peer does not keep up: stop reading from it. */
static void echo_pause(ds_tcp *t, void *user)
{
  (void)user;
  ds_tcp_pause_reading(t);
}

/* The peer caught up: read again. */
static void echo_resume(ds_tcp *t, void *user)
{
  (void)user;
  ds_tcp_resume_reading(t);
}

/* The connection is over: forget it. */
static void echo_lost(ds_tcp *t, int reason, void *user)
{
  (void)t;
  (void)reason;
  conn_free(user);
}

static const ds_protocol echo_proto = {.data_received = echo_data,
                                       .eof_received = echo_eof,
                                       .connection_lost = echo_lost,
                                       .pause_producing = echo_pause,
                                       .resume_producing = echo_resume};

/* Makes c the relayed connection. */
static void relay_start(conn *c)
{
  app.cur = c;
  app.in_paused = 0;
  ds_tcp_resume_reading(c->t);
  if (app.in_eof)
    ds_tcp_half_close(c->t);
  stdin_update();
}

/* Relay protocol: the peer's bytes go to stdout. */
static void relay_data(ds_tcp *t, const void *data, size_t len, void *user)
{
  const char *p = data;
  (void)user;
  while (len > 0) {
    ssize_t n = write(STDOUT_FILENO, p, len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      /* A reader that went away (EPIPE) ends the session normally. The
       * errno is kept before say() and the abort make syscalls. */
      int e = errno;
      if (e != EPIPE)
        say("dualstack-listen: stdout: %s", strerror(e));
      ds_tcp_abort(t);
      finish(e == EPIPE ? 0 : EX_SOFTWARE);
      return;
    }
    p += n;
    len -= (size_t)n;
  }
}

/* The peer does not keep up: stop reading stdin. */
static void relay_pause(ds_tcp *t, void *user)
{
  (void)t;
  (void)user;
  app.in_paused = 1;
  stdin_update();
}

/* The peer caught up: read stdin again. */
static void relay_resume(ds_tcp *t, void *user)
{
  (void)t;
  (void)user;
  app.in_paused = 0;
  stdin_update();
}

/* A relayed or waiting connection ended: without -k we are done; with it
 * the next waiting connection gets stdin and stdout. */
static void relay_lost(ds_tcp *t, int reason, void *user)
{
  conn *c = user;
  (void)t;
  if (reason != 0 && app.verbose)
    say("connection lost: %s", ds_strerror(reason));
  if (c == app.cur) {
    app.cur = NULL;
    stdin_update();
    if (!app.keep) {
      conn_free(c);
      finish(0);
      return;
    }
    if (app.qhead != NULL) {
      conn *next = app.qhead;
      app.qhead = next->qnext;
      if (app.qhead == NULL)
        app.qtail = NULL;
      relay_start(next);
    }
  } else {
    /* A waiting connection gave up: take it out of the queue. */
    conn **pp;
    for (pp = &app.qhead; *pp != NULL; pp = &(*pp)->qnext) {
      if (*pp == c) {
        *pp = c->qnext;
        break;
      }
    }
    app.qtail = NULL;
    for (conn *q = app.qhead; q != NULL; q = q->qnext)
      app.qtail = q;
  }
  conn_free(c);
}

/* No eof_received: like nc -l, the connection ends when the peer closes
 * (after what we queued is sent). */
static const ds_protocol relay_proto = {.data_received = relay_data,
                                        .connection_lost = relay_lost,
                                        .pause_producing = relay_pause,
                                        .resume_producing = relay_resume};

/* Each accepted connection: logs it (-v), then echoes it, relays it, or
 * queues it behind the relayed one. Returns 0, or -1 to refuse it. */
static int factory(void *data, ds_tcp *t, const ds_protocol **proto,
                   void **user)
{
  conn *c;
  (void)data;
  /* Without -k only the first connection is served; others that were in
   * the same accept batch are refused (closed). */
  if (!app.echo && !app.keep && app.srv == NULL)
    return -1;
  if (app.verbose) {
    ds_addr host, peer;
    char h[DS_ADDR_STRLEN] = "?", p[DS_ADDR_STRLEN] = "?";
    if (ds_tcp_get_host(t, &host) == 0)
      ds_addr_format(&host, h, sizeof h, DS_ADDR_FMT_PORT);
    if (ds_tcp_get_peer(t, &peer) == 0)
      ds_addr_format(&peer, p, sizeof p, DS_ADDR_FMT_PORT);
    say("connection from %s to %s", p, h);
  }
  c = conn_new(t);
  if (c == NULL)
    return -1;
  *user = c;
  if (app.echo) {
    *proto = &echo_proto;
    return 0;
  }
  *proto = &relay_proto;
  if (!app.keep) {
    /* nc -l: one connection, then no more listening. */
    ds_server_stop(app.srv, NULL, NULL);
    app.srv = NULL;
  }
  if (app.cur == NULL) {
    relay_start(c);
  } else {
    ds_tcp_pause_reading(t);
    if (app.qtail != NULL)
      app.qtail->qnext = c;
    else
      app.qhead = c;
    app.qtail = c;
  }
  return 0;
}

/* ---------------------------------------------------------- addresses */

/* Address changes after the start: one line each. */
static void on_change(ds_server *s, ds_server_event ev, const ds_server_addr *a,
                      void *data)
{
  (void)s;
  (void)data;
  switch (ev) {
  case DS_SERVER_EV_ADDED:
    say("listening %s", a->text);
    break;
  case DS_SERVER_EV_REMOVED:
    say("stopped %s", a->text);
    break;
  case DS_SERVER_EV_FAILED:
    say("failed %s: %s", a->text, ds_strerror(a->error));
    break;
  case DS_SERVER_EV_WAITING:
    if (app.verbose)
      say("waiting %s: duplicate address detection", a->text);
    break;
  }
}

/* Prints the addresses in one state at start. Returns 0 or -ENOMEM. */
static int print_addrs(unsigned state)
{
  ds_server_addr *v;
  size_t n = ds_server_addrs(app.srv, state, NULL, 0), i;
  if (n == 0)
    return 0;
  v = calloc(n, sizeof *v);
  if (v == NULL)
    return -ENOMEM;
  n = ds_server_addrs(app.srv, state, v, n);
  for (i = 0; i < n; i++) {
    if (state == DS_SERVER_BOUND)
      say("listening %s", v[i].text);
    else if (state == DS_SERVER_FAILED)
      say("failed %s: %s", v[i].text, ds_strerror(v[i].error));
    else if (app.verbose)
      say("waiting %s: duplicate address detection", v[i].text);
  }
  free(v);
  return 0;
}

/* ------------------------------------------------------------ signals */

/* SIGINT, SIGTERM or SIGHUP: leave the loop, exit 0. */
static void sig_io(ds_io *w, unsigned events, void *data)
{
  struct signalfd_siginfo si;
  (void)w;
  (void)events;
  (void)data;
  if (read(app.sigfd, &si, sizeof si) == (ssize_t)sizeof si)
    finish(0);
}

/* Returns 0, or -1 after printing why signals cannot be watched. */
static int signals_setup(void)
{
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  if (sigprocmask(SIG_BLOCK, &set, NULL) != 0)
    return -1;
  app.sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
  if (app.sigfd < 0)
    return -1;
  if (ds_io_new(app.r, &app.sig, app.sigfd, sig_io, NULL) != 0 ||
      ds_io_set(app.sig, DS_READABLE) != 0)
    return -1;
  return 0;
}

/* ---------------------------------------------------------------- main */

/* Returns the port in text, or -1. */
static int parse_port(const char *text)
{
  long v = 0;
  const char *p = text;
  if (*p == '\0' || (p[0] == '0' && p[1] != '\0'))
    return -1;
  for (; *p; p++) {
    if (*p < '0' || *p > '9')
      return -1;
    v = v * 10 + (*p - '0');
    if (v > 65535)
      return -1;
  }
  return (int)v;
}

/* Returns the exit status for a failed ds_listen_all(). */
static int listen_status(int rc)
{
  switch (rc) {
  case -ENOMEM:
  case -EMSGSIZE:
  case -EPROTO:
  case -ETIMEDOUT:
  case -EINVAL:
    return EX_SOFTWARE;
  default:
    return EX_UNAVAILABLE;
  }
}

/* Closes everything and frees the reactor. Returns 0 or -1 if a handle
 * would not go away. */
static int shutdown_all(void)
{
  int i;
  if (app.srv != NULL)
    ds_server_stop(app.srv, NULL, NULL);
  app.srv = NULL;
  for (conn *c = app.conns; c != NULL; c = c->next)
    ds_tcp_abort(c->t);
  ds_io_free(app.in);
  app.in = NULL;
  ds_io_free(app.sig);
  app.sig = NULL;
  for (i = 0; i < 100; i++) {
    if (ds_reactor_free(app.r) == 0)
      return 0;
    ds_reactor_run_once(app.r, 10);
  }
  return -1;
}

int main(int argc, char **argv)
{
  ds_server_options opts = {0};
  char err[256] = "";
  int i, port = -1, rc, fl, opts_done = 0;

  for (i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (opts_done || a[0] != '-' || a[1] == '\0') {
      if (port < 0 && (port = parse_port(a)) >= 0)
        continue;
      say("dualstack-listen: bad argument '%s'", a);
      usage();
      return EX_USAGE;
    } else if (strcmp(a, "--") == 0) {
      opts_done = 1;
    } else if (strcmp(a, "--echo") == 0) {
      app.echo = 1;
    } else if (strcmp(a, "--help") == 0) {
      usage();
      return 0;
    } else if (a[1] != '-') {
      for (const char *f = a + 1; *f; f++) {
        switch (*f) {
        case 'v':
          app.verbose = 1;
          break;
        case 'k':
          app.keep = 1;
          break;
        case '4':
        case '6':
          if (app.family != 0) {
            say("dualstack-listen: -4 and -6 exclude each other");
            usage();
            return EX_USAGE;
          }
          app.family = *f == '4' ? AF_INET : AF_INET6;
          break;
        default:
          say("dualstack-listen: unknown option -%c", *f);
          usage();
          return EX_USAGE;
        }
      }
    } else {
      say("dualstack-listen: unknown option '%s'", a);
      usage();
      return EX_USAGE;
    }
  }
  if (port < 0) {
    usage();
    return EX_USAGE;
  }
  signal(SIGPIPE, SIG_IGN);
  if (ds_reactor_new(&app.r) != 0) {
    say("dualstack-listen: cannot create the reactor");
    return EX_SOFTWARE;
  }
  if (signals_setup() != 0) {
    say("dualstack-listen: signals: %s", strerror(errno));
    shutdown_all();
    return EX_SOFTWARE;
  }
  opts.family = app.family;
  opts.notify = on_change;
  rc = ds_listen_all(app.r, (uint16_t)port, &opts, factory, NULL, &app.srv, err,
                     sizeof err);
  if (rc != 0) {
    say("dualstack-listen: %s", err[0] ? err : ds_strerror(rc));
    app.srv = NULL;
    shutdown_all();
    return listen_status(rc);
  }
  if (print_addrs(DS_SERVER_BOUND) != 0 || print_addrs(DS_SERVER_FAILED) ||
      print_addrs(DS_SERVER_WAITING)) {
    shutdown_all();
    return EX_SOFTWARE;
  }
  if (!app.echo) {
    /* stdin is read only while a connection is relayed; files and
     * /dev/null, which epoll refuses, are read once per turn. */
    fl = fcntl(STDIN_FILENO, F_GETFL);
    if (fl < 0) {
      app.in_file = 1;
    } else if (ds_io_new(app.r, &app.in, STDIN_FILENO, stdin_io, NULL) != 0) {
      app.in_file = 1;
    }
  }
  while (!app.done) {
    rc = ds_reactor_run_once(app.r, -1);
    if (rc < 0) {
      say("dualstack-listen: reactor: %s", ds_strerror(rc));
      finish(EX_SOFTWARE);
    }
  }
  if (shutdown_all() != 0) {
    say("dualstack-listen: handles left at exit");
    return EX_SOFTWARE;
  }
  if (app.sigfd >= 0)
    close(app.sigfd);
  return app.status;
}
