/* A legacy non-blocking client that starts a vfork child while its
 * connect is in progress, for the shim's tests: resolves NAME with
 * getaddrinfo(AF_INET), connects a non-blocking AF_INET socket, then
 * vfork()s a child that does what MODE says to the socket's fd before
 * _exit (as a child that tidies its fds before exec does), and waits for
 * the connect with poll.
 *
 *   shim_vfork close|close_range|dup2 NAME PORT
 *
 * close: close(fd); close_range: close_range(3, ~0U, 0); dup2: dup2 of
 * /dev/null onto fd. Prints one "key value" line per fact
 * (connect_errno, child, event_ms, so_error, peer, reply). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int main(int argc, char **argv)
{
  struct addrinfo hints = {0}, *res;
  struct sockaddr_in peer;
  socklen_t len = sizeof peer;
  struct pollfd p;
  char buf[256], text[64];
  double t0;
  int fd, nul, rc, err = 0, status = -1;
  pid_t pid;

  if (argc != 4) {
    fprintf(stderr, "usage: shim_vfork close|close_range|dup2 NAME PORT\n");
    return 64;
  }
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  if ((rc = getaddrinfo(argv[2], argv[3], &hints, &res)) != 0) {
    printf("lookup %s\n", gai_strerror(rc));
    return 68;
  }
  nul = open("/dev/null", O_RDONLY | O_CLOEXEC);
  fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  t0 = now_ms();
  rc = connect(fd, res->ai_addr, res->ai_addrlen);
  printf("connect_errno %s\n", rc == 0 ? "0" : strerrorname_np(errno));
  freeaddrinfo(res);
  fflush(stdout);
  pid = vfork();
  if (pid == 0) {
    if (strcmp(argv[1], "close") == 0)
      close(fd);
    else if (strcmp(argv[1], "close_range") == 0)
      close_range(3, ~0U, 0);
    else
      dup2(nul, fd);
    _exit(0);
  }
  if (pid > 0)
    waitpid(pid, &status, 0);
  printf("child %d\n", status);
  p.fd = fd;
  p.events = POLLOUT;
  if (rc != 0 && poll(&p, 1, 15000) != 1) {
    printf("event timeout\n");
    return 1;
  }
  printf("event_ms %.1f\n", now_ms() - t0);
  len = sizeof err;
  getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
  printf("so_error %s\n", err == 0 ? "0" : strerrorname_np(err));
  if (err == 0) {
    ssize_t n;
    len = sizeof peer;
    getpeername(fd, (struct sockaddr *)&peer, &len);
    inet_ntop(AF_INET, &peer.sin_addr, text, sizeof text);
    printf("peer %s:%d\n", text, ntohs(peer.sin_port));
    if (send(fd, "hello\n", 6, 0) != 6)
      printf("send %s\n", strerrorname_np(errno));
    p.events = POLLIN;
    poll(&p, 1, 5000);
    n = recv(fd, buf, sizeof buf - 1, 0);
    buf[n > 0 ? n : 0] = '\0';
    buf[strcspn(buf, "\n")] = '\0';
    printf("reply %s\n", buf);
  }
  close(fd);
  return 0;
}
