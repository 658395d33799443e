/* A blocking IPv4-only client whose connect() is interrupted, for the
 * shim's tests (tests/shell/test_shim_signals.sh): what programs do with
 * alarm()/setitimer() timeouts around connect (a SIGALRM handler without
 * SA_RESTART, as Perl's, Python's and many C programs' alarm timeouts
 * install it), with SA_RESTART (signal() in glibc, or a timer tick that
 * must not disturb the connect), with SO_SNDTIMEO as a connect timeout,
 * and what they do after EINTR: connect() again, poll() for writability
 * as POSIX says (the connection then goes on asynchronously), or make
 * the socket non-blocking and call connect() until it stops saying
 * EALREADY.
 *
 *   shim_signals MODE HOST PORT
 *
 * MODE:
 *   eintr     handler without SA_RESTART, one SIGALRM; connect once, close
 *   restart   handler with SA_RESTART, SIGALRM every SIG_EVERY_MS; connect
 *   retry     as eintr, then connect() again on the blocking socket
 *   retry_poll  as eintr, then poll(POLLOUT) and SO_ERROR
 *   retry_nb  as eintr, then O_NONBLOCK and connect() every 20 ms while
 *             it says EALREADY
 *   sndtimeo  SO_SNDTIMEO of SIG_SNDTIMEO_MS, no signal; connect, then
 *             poll(POLLOUT), SO_ERROR and connect() again
 *   sndtimeo_retry  the same, then connect() again while it says
 *             EINPROGRESS or EALREADY (each bounded by SO_SNDTIMEO), for
 *             up to 4 s
 *
 * Environment (all optional):
 *   SIG_AT_MS       first SIGALRM this long after connect() starts (300)
 *   SIG_EVERY_MS    then every this long (restart only; 200)
 *   SIG_SNDTIMEO_MS SO_SNDTIMEO for sndtimeo (500)
 *   SIG_WATCH_MS    a watchdog prints "blocked_ms" and the signal count
 *                   and exits 0 if connect() has not returned by then
 *   SIG_THEN_MS, SIG_THEN  a thread runs the shell command SIG_THEN (with
 *                   no LD_PRELOAD) this long after connect() starts: the
 *                   tests use it to lift a black hole in the middle
 *
 * Prints one "key value" line per observation, at once (line-buffered,
 * so that a run killed by timeout(1) shows how far it came): asked,
 * fds_before, connect1 (0 or the errno's name), connect1_ms, signal_ms
 * (when the first signal arrived), signals (handler runs so far), then
 * the mode's own (connect2, connect2_ms, poll, event_ms, so_error,
 * ealready, connect3, sequence, last_ms, ...), peer, reply (the echo
 * server's answer to "hello"), fds_after. Times are ms since connect()
 * started. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static double t0;
static volatile sig_atomic_t nsignals;
static volatile double first_signal_ms = -1;
static volatile sig_atomic_t connect_returned;

static double now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static double since(void)
{
  return now_ms() - t0;
}

/* Counts the open fds below 500: the application's. The shim keeps its
 * own long-lived fds (the helper thread's) at 600 and above. */
static int count_fds(void)
{
  DIR *d = opendir("/proc/self/fd");
  struct dirent *e;
  int n = 0;
  while ((e = readdir(d)) != NULL)
    n += e->d_name[0] != '.' && atoi(e->d_name) < 500;
  closedir(d);
  return n - 1;
}

static unsigned env_ms(const char *name, unsigned dflt)
{
  const char *v = getenv(name);
  return v != NULL && *v != '\0' ? (unsigned)strtoul(v, NULL, 10) : dflt;
}

static void on_alarm(int sig)
{
  (void)sig;
  if (nsignals == 0)
    first_signal_ms = since(); /* clock_gettime is async-signal-safe */
  nsignals++;
}

static void handle(int restart)
{
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_alarm;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = restart ? SA_RESTART : 0;
  sigaction(SIGALRM, &sa, NULL);
}

static void arm(unsigned first_ms, unsigned every_ms)
{
  struct itimerval it;
  memset(&it, 0, sizeof it);
  it.it_value.tv_sec = first_ms / 1000;
  it.it_value.tv_usec = (first_ms % 1000) * 1000;
  it.it_interval.tv_sec = every_ms / 1000;
  it.it_interval.tv_usec = (every_ms % 1000) * 1000;
  setitimer(ITIMER_REAL, &it, NULL);
}

static void disarm(void)
{
  arm(0, 0);
}

static const char *rc_name(int rc, int err)
{
  return rc == 0 ? "0" : strerrorname_np(err);
}

/* The SIG_THEN thread: lifts (or changes) a black hole mid-connect. */
static void *then_thread(void *arg)
{
  unsigned ms = env_ms("SIG_THEN_MS", 600);
  sigset_t all;
  int rc;
  (void)arg;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, NULL); /* SIGALRM is main's */
  usleep(ms * 1000);
  unsetenv("LD_PRELOAD");
  rc = system(getenv("SIG_THEN"));
  printf("then_ms %.1f status %d\n", since(), rc);
  return NULL;
}

/* The SIG_WATCH_MS thread: a connect still blocked then is reported. */
static void *watch_thread(void *arg)
{
  unsigned ms = env_ms("SIG_WATCH_MS", 0);
  sigset_t all;
  (void)arg;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, NULL);
  usleep(ms * 1000);
  if (!connect_returned) {
    printf("blocked_ms %.1f\n", since());
    printf("signals %d\n", (int)nsignals);
    _exit(0);
  }
  return NULL;
}

/* Waits up to 10 s for POLLOUT; prints poll, event_ms and so_error. */
static int wait_and_check(int fd)
{
  struct pollfd p = {fd, POLLOUT, 0};
  int n, err = -1;
  socklen_t len = sizeof err;
  do
    n = poll(&p, 1, 10000);
  while (n < 0 && errno == EINTR);
  printf("poll %d revents%s%s%s\n", n, p.revents & POLLOUT ? " OUT" : "",
         p.revents & POLLERR ? " ERR" : "", p.revents & POLLHUP ? " HUP" : "");
  printf("event_ms %.1f\n", since());
  getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
  printf("so_error %s\n", err == 0 ? "0" : strerrorname_np(err));
  return err;
}

/* Prints peer, and reply: the echo server's answer to "hello". */
static void talk(int fd)
{
  struct sockaddr_in peer;
  socklen_t len = sizeof peer;
  char buf[256], text[64];
  struct pollfd p = {fd, POLLIN, 0};
  ssize_t n;
  int fl = fcntl(fd, F_GETFL);

  if (getpeername(fd, (struct sockaddr *)&peer, &len) == 0) {
    inet_ntop(AF_INET, &peer.sin_addr, text, sizeof text);
    printf("peer %s:%d\n", text, ntohs(peer.sin_port));
  } else {
    printf("peer %s\n", strerrorname_np(errno));
  }
  if (send(fd, "hello", 5, MSG_NOSIGNAL) != 5) {
    printf("send %s\n", strerrorname_np(errno));
    return;
  }
  fcntl(fd, F_SETFL, fl | O_NONBLOCK);
  if (poll(&p, 1, 5000) != 1) {
    printf("recv timeout\n");
    return;
  }
  n = recv(fd, buf, sizeof buf - 1, 0);
  if (n < 0) {
    printf("recv %s\n", strerrorname_np(errno));
    return;
  }
  buf[n] = '\0';
  printf("reply %s\n", buf);
  fcntl(fd, F_SETFL, fl);
}

int main(int argc, char **argv)
{
  struct addrinfo hints = {0}, *res;
  struct sockaddr_in to;
  char text[64];
  const char *mode;
  pthread_t th;
  int fd, rc, err, fds0;

  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc != 4) {
    fprintf(stderr, "usage: shim_signals eintr|restart|retry|retry_poll|"
                    "retry_nb|sndtimeo|sndtimeo_retry HOST PORT\n");
    return 64;
  }
  mode = argv[1];
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  if ((rc = getaddrinfo(argv[2], argv[3], &hints, &res)) != 0) {
    printf("lookup %s\n", gai_strerror(rc));
    return 68;
  }
  memcpy(&to, res->ai_addr, sizeof to);
  freeaddrinfo(res);
  inet_ntop(AF_INET, &to.sin_addr, text, sizeof text);
  printf("asked %s:%d\n", text, ntohs(to.sin_port));
  fds0 = count_fds();
  printf("fds_before %d\n", fds0);

  fd = socket(AF_INET, SOCK_STREAM, 0);
  if (strncmp(mode, "sndtimeo", 8) == 0) {
    unsigned ms = env_ms("SIG_SNDTIMEO_MS", 500);
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  } else if (strcmp(mode, "restart") == 0) {
    handle(1);
  } else {
    handle(0);
  }

  if (getenv("SIG_THEN") != NULL) {
    /* The command's exit sends SIGCHLD, which the thread running it has
     * blocked: the kernel may then pick this thread for it, and a
     * connect with SO_SNDTIMEO fails with EINTR even for an ignored
     * signal. Test machinery, not the program's: keep it off. */
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    pthread_sigmask(SIG_BLOCK, &chld, NULL);
  }
  t0 = now_ms();
  if (getenv("SIG_THEN") != NULL)
    pthread_create(&th, NULL, then_thread, NULL);
  if (env_ms("SIG_WATCH_MS", 0) != 0)
    pthread_create(&th, NULL, watch_thread, NULL);
  if (strncmp(mode, "sndtimeo", 8) != 0)
    arm(env_ms("SIG_AT_MS", 300),
        strcmp(mode, "restart") == 0 ? env_ms("SIG_EVERY_MS", 200) : 0);
  rc = connect(fd, (struct sockaddr *)&to, sizeof to);
  err = errno;
  connect_returned = 1;
  printf("connect1 %s\n", rc_name(rc, err));
  printf("connect1_ms %.1f\n", since());
  printf("signal_ms %.1f\n", first_signal_ms);
  printf("signals %d\n", (int)nsignals);
  disarm();

  if (strcmp(mode, "eintr") == 0) {
    /* A timeout: the program gives up on this server. */
    close(fd);
    usleep(500 * 1000); /* whatever the shim tidies up, it has by now */
    printf("fds_after %d\n", count_fds());
    return 0;
  }
  if (rc == 0 || strcmp(mode, "restart") == 0) {
    /* Connected at once (or not to be retried). */
    if (rc == 0)
      talk(fd);
  } else if (strcmp(mode, "retry") == 0) {
    /* Interrupted by a signal the program does not mind: connect again. */
    rc = connect(fd, (struct sockaddr *)&to, sizeof to);
    err = errno;
    printf("connect2 %s\n", rc_name(rc, err));
    printf("connect2_ms %.1f\n", since());
    if (rc == 0) {
      rc = connect(fd, (struct sockaddr *)&to, sizeof to);
      printf("connect3 %s\n", rc_name(rc, errno));
      talk(fd);
    }
  } else if (strcmp(mode, "retry_poll") == 0) {
    /* POSIX: the connection is established asynchronously after EINTR;
     * select/poll says when, SO_ERROR how. */
    if (wait_and_check(fd) == 0)
      talk(fd);
  } else if (strcmp(mode, "retry_nb") == 0) {
    int n = 0;
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    rc = connect(fd, (struct sockaddr *)&to, sizeof to);
    err = errno;
    printf("connect2 %s\n", rc_name(rc, err));
    printf("connect2_ms %.1f\n", since());
    while (rc != 0 && err == EALREADY && since() < 10000) {
      n++;
      usleep(20 * 1000);
      rc = connect(fd, (struct sockaddr *)&to, sizeof to);
      err = errno;
    }
    printf("ealready %d\n", n);
    printf("connect3 %s\n", rc_name(rc, err));
    printf("connect3_ms %.1f\n", since());
    rc = connect(fd, (struct sockaddr *)&to, sizeof to);
    err = errno;
    printf("connect4 %s\n", rc_name(rc, err));
    if (rc == 0 || err == EISCONN)
      talk(fd);
  } else if (strcmp(mode, "sndtimeo_retry") == 0) {
    /* The connect timed out: try again, each try bounded as the first. */
    char seq[512];
    int n = snprintf(seq, sizeof seq, "%s", rc_name(rc, err));
    while (rc != 0 && (err == EINPROGRESS || err == EALREADY) &&
           since() < 4000 && n < 400) {
      rc = connect(fd, (struct sockaddr *)&to, sizeof to);
      err = errno;
      n += snprintf(seq + n, sizeof seq - n, " %s", rc_name(rc, err));
    }
    printf("sequence %s\n", seq);
    printf("last_ms %.1f\n", since());
    if (rc == 0 || err == EISCONN)
      talk(fd);
  } else if (strcmp(mode, "sndtimeo") == 0) {
    /* The connect timed out: wait for it some more, as event loops do. */
    if (wait_and_check(fd) == 0) {
      rc = connect(fd, (struct sockaddr *)&to, sizeof to);
      printf("connect2 %s\n", rc_name(rc, errno));
      talk(fd);
    }
  } else {
    fprintf(stderr, "shim_signals: unknown mode %s\n", mode);
    return 64;
  }
  close(fd);
  usleep(300 * 1000);
  printf("fds_after %d\n", count_fds());
  return 0;
}
