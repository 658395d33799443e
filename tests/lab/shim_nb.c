/* A legacy non-blocking client, for the shim's tests: resolves NAME with
 * getaddrinfo(AF_INET), makes a non-blocking AF_INET socket, and waits for
 * its connect with epoll (registered BEFORE connect, as event loops do),
 * poll or select. Then checks SO_ERROR, sends a line and reads the reply.
 *
 *   shim_nb epoll|poll|select|close NAME PORT
 *
 * Prints one "key value" line per fact (connect_errno, connect_ms,
 * event_ms, so_error, peer, reply, fds_before, fds_after); "close" closes
 * the socket while the connect is in progress and waits 1.5 s. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
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

/* Waits until fd is writable (or failed) the way mode says; returns 0 or
 * -1 on timeout. */
static int wait_writable(const char *mode, int fd, int ep)
{
  if (strcmp(mode, "epoll") == 0) {
    struct epoll_event ev;
    int n;
    for (;;) {
      n = epoll_wait(ep, &ev, 1, 10000);
      if (n == 1 && ev.data.fd == fd && (ev.events & (EPOLLOUT | EPOLLERR)))
        return 0;
      if (n <= 0)
        return -1;
    }
  }
  if (strcmp(mode, "poll") == 0) {
    struct pollfd p = {fd, POLLOUT, 0};
    return poll(&p, 1, 10000) == 1 ? 0 : -1;
  }
  {
    fd_set w;
    struct timeval tv = {10, 0};
    FD_ZERO(&w);
    FD_SET(fd, &w);
    return select(fd + 1, NULL, &w, NULL, &tv) == 1 ? 0 : -1;
  }
}

int main(int argc, char **argv)
{
  struct addrinfo hints = {0}, *res;
  struct sockaddr_in peer;
  socklen_t len = sizeof peer;
  char buf[256], text[64];
  double t0;
  int fd, ep = -1, rc, err = 0, fds0;

  if (argc != 4) {
    fprintf(stderr, "usage: shim_nb epoll|poll|select|close NAME PORT\n");
    return 64;
  }
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  if ((rc = getaddrinfo(argv[2], argv[3], &hints, &res)) != 0) {
    printf("lookup %s\n", gai_strerror(rc));
    return 68;
  }
  fds0 = count_fds();
  printf("fds_before %d\n", fds0);
  fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (strcmp(argv[1], "epoll") == 0) {
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.fd = fd};
    ep = epoll_create1(EPOLL_CLOEXEC);
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev); /* before connect */
  }
  t0 = now_ms();
  rc = connect(fd, res->ai_addr, res->ai_addrlen);
  printf("connect_errno %s\n", rc == 0 ? "0" : strerrorname_np(errno));
  printf("connect_ms %.1f\n", now_ms() - t0);
  inet_ntop(AF_INET, &((struct sockaddr_in *)res->ai_addr)->sin_addr, text,
            sizeof text);
  printf("asked %s\n", text);
  freeaddrinfo(res);
  if (strcmp(argv[1], "close") == 0) {
    close(fd);
    usleep(1500 * 1000);
    printf("fds_after %d\n", count_fds());
    return 0;
  }
  if (rc != 0 && errno == EINPROGRESS && wait_writable(argv[1], fd, ep) != 0) {
    printf("event timeout\n");
    return 1;
  }
  printf("event_ms %.1f\n", now_ms() - t0);
  len = sizeof err;
  getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
  printf("so_error %s\n", err == 0 ? "0" : strerrorname_np(err));
  if (err == 0) {
    ssize_t n;
    int fl = fcntl(fd, F_GETFL);
    len = sizeof peer;
    getpeername(fd, (struct sockaddr *)&peer, &len);
    inet_ntop(AF_INET, &peer.sin_addr, text, sizeof text);
    printf("peer %s:%d\n", text, ntohs(peer.sin_port));
    printf("nonblocking %d\n", (fl & O_NONBLOCK) != 0);
    if (send(fd, "hello\n", 6, 0) != 6)
      printf("send %s\n", strerrorname_np(errno));
    if (ep >= 0) {
      /* The registration made before connect reports the reply. */
      struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
      epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
      printf("epoll_in %d\n", epoll_wait(ep, &ev, 1, 5000));
    } else {
      struct pollfd p = {fd, POLLIN, 0};
      poll(&p, 1, 5000);
    }
    n = recv(fd, buf, sizeof buf - 1, 0);
    buf[n > 0 ? n : 0] = '\0';
    buf[strcspn(buf, "\n")] = '\0';
    printf("reply %s\n", buf);
  }
  close(fd);
  if (ep >= 0)
    close(ep);
  printf("fds_after %d\n", count_fds());
  return 0;
}
