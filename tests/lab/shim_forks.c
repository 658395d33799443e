/* Children made the ways the shim cannot watch, for its tests.
 *
 *   shim_forks vfirst   the process's first hooked call is a close() in a
 *                       vfork child before exec; then the parent looks
 *                       v6only.test up (AF_INET) and connects to port 7
 *   shim_forks raw      the parent connects, then makes a child with the
 *                       raw clone system call (no fork handlers run),
 *                       which looks up and connects itself
 *   shim_forks Fork     the same with glibc's _Fork()
 *
 * Prints one line per connect: "WHO ADDRESS REPLY" (the echo server's
 * reply names the family it saw), or "WHO error: TEXT". */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

pid_t _Fork(void);

/* Looks v6only.test up, connects, sends "hi" and prints the reply. */
static void go(const char *who)
{
  struct addrinfo hints, *ai;
  char addr[INET_ADDRSTRLEN], buf[64];
  int s, n, rc;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  rc = getaddrinfo("v6only.test", "7", &hints, &ai);
  if (rc != 0) {
    printf("%s error: %s\n", who, gai_strerror(rc));
    fflush(stdout);
    return;
  }
  inet_ntop(AF_INET, &((struct sockaddr_in *)ai->ai_addr)->sin_addr, addr,
            sizeof addr);
  s = socket(AF_INET, SOCK_STREAM, 0);
  if (connect(s, ai->ai_addr, ai->ai_addrlen) != 0) {
    printf("%s error: connect %s\n", who, strerror(errno));
  } else {
    send(s, "hi", 2, 0);
    n = (int)recv(s, buf, sizeof buf - 1, 0);
    buf[n > 0 ? n : 0] = '\0';
    printf("%s %s %s\n", who, addr, buf);
  }
  fflush(stdout);
  close(s);
  freeaddrinfo(ai);
}

int main(int argc, char **argv)
{
  const char *mode = argc > 1 ? argv[1] : "";
  pid_t pid;
  if (strcmp(mode, "vfirst") == 0) {
    pid = vfork();
    if (pid == 0) {
      close(100);
      execl("/bin/true", "true", (char *)NULL);
      _exit(127);
    }
    waitpid(pid, NULL, 0);
    go("parent");
    return 0;
  }
  go("parent");
  pid = strcmp(mode, "Fork") == 0
            ? _Fork()
            : (pid_t)syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
  if (pid == 0) {
    go("child");
    _exit(0);
  }
  waitpid(pid, NULL, 0);
  return 0;
}
