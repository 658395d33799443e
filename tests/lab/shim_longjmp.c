/* A client the way `nc -w 1` and `wget -T` are written: connect() to a
 * name, bounded by alarm() and siglongjmp() out of the handler. Run under
 * the preload shim against a black-holed name, it must give up at ~1 s;
 * then, in the same process, a connect to a working name must still be
 * translated (the shim's guard was taken back) and the abandoned race's
 * sockets closed.
 *
 * Usage: shim_longjmp BLACKHOLED_NAME PORT GOOD_NAME PORT
 * Prints "timeout MS", "fds_leaked N", "second ok|errno"; exits 0 when
 * the run went as described. */
#include <netdb.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static sigjmp_buf env;

static void on_alarm(int sig)
{
  (void)sig;
  siglongjmp(env, 1);
}

/* Returns the number of open fds below 600: the program's. The shim's
 * own long-lived fds (its helper thread's, made once per process) sit at
 * 600 and up, out of the program's way. */
static int count_once(void)
{
  DIR *d = opendir("/proc/self/fd");
  struct dirent *e;
  int n = 0;
  if (d == NULL)
    return -1;
  while ((e = readdir(d)) != NULL)
    n += e->d_name[0] != '.' && atoi(e->d_name) < 600 &&
         atoi(e->d_name) != dirfd(d);
  closedir(d);
  return n;
}

/* The least of a few counts 20 ms apart: a race going on in the shim's
 * helper thread opens its sockets below 600 for an instant before it
 * moves them up; an fd left open stays in every count. */
static int count_fds(void)
{
  int i, n, least = count_once();
  for (i = 0; i < 4; i++) {
    usleep(20000);
    n = count_once();
    if (n < least)
      least = n;
  }
  return least;
}

/* Returns the monotonic clock in ms. */
static double now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Connects socket fd to name:port; returns 0 or -errno. */
static int connect_name(int fd, const char *name, int port)
{
  struct hostent *he = gethostbyname(name);
  struct sockaddr_in sin = {.sin_family = AF_INET};
  if (he == NULL)
    return -EHOSTUNREACH;
  memcpy(&sin.sin_addr, he->h_addr_list[0], 4);
  sin.sin_port = htons((unsigned short)port);
  return connect(fd, (struct sockaddr *)&sin, sizeof sin) == 0 ? 0 : -errno;
}

int main(int argc, char **argv)
{
  struct sigaction sa;
  volatile int fd = -1;
  volatile double t0;
  volatile int ok = 1;
  int fds0, fds1, rc;
  if (argc != 5)
    return 64;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_alarm;
  sigaction(SIGALRM, &sa, NULL);
  /* Resolve first, so the alarm interrupts the connect itself. */
  gethostbyname(argv[1]);
  fds0 = count_fds();
  /* The application's own socket exists before the jump, so the fd count
   * measures only what the shim might leave behind. */
  fd = socket(AF_INET, SOCK_STREAM, 0);
  t0 = now_ms();
  if (sigsetjmp(env, 1) == 0) {
    alarm(1);
    rc = connect_name(fd, argv[1], atoi(argv[2]));
    alarm(0);
    printf("connected?! %d\n", rc);
    ok = 0;
  } else {
    printf("timeout %.0f\n", now_ms() - t0);
  }
  close(fd);
  fd = socket(AF_INET, SOCK_STREAM, 0);
  rc = connect_name(fd, argv[3], atoi(argv[4]));
  printf("second %s\n", rc == 0 ? "ok" : strerror(-rc));
  if (rc != 0)
    ok = 0;
  close(fd);
  fds1 = count_fds();
  printf("fds_leaked %d\n", fds1 - fds0);
  if (fds1 != fds0)
    ok = 0;
  return ok ? 0 : 1;
}
