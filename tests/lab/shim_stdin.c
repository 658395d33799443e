/* A daemon-style program for the shim's tests: it has closed its stdin
 * and expects its next open() to become the new stdin (fd 0), as programs
 * that re-open /dev/null do, while the fds from the middle of a small
 * RLIMIT_NOFILE up are taken (so the shim finds no room for its own fds
 * at its usual floor). The shim starts on the first lookup, after all of
 * that, and must not take fd 0.
 *
 *   shim_stdin NAME
 *
 * Prints "lookup RC" (getaddrinfo's result for NAME) and "reopened FD"
 * (what open("/dev/null") gave: 0 without the shim). */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv)
{
  struct rlimit rl = {64, 64};
  struct addrinfo hints, *res = NULL;
  int fd, rc;
  if (argc != 2) {
    fprintf(stderr, "usage: shim_stdin NAME\n");
    return 64;
  }
  if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
    perror("setrlimit");
    return 1;
  }
  /* Take 32..63 (the shim's floor is half of a small limit), then give
   * back 3..31 and stdin. */
  while ((fd = open("/dev/null", O_RDONLY)) >= 0)
    ;
  if (errno != EMFILE) {
    perror("open");
    return 1;
  }
  for (fd = 0; fd < 32; fd++)
    if (fd != 1 && fd != 2)
      syscall(SYS_close, fd); /* not the shim's hook: it starts later */
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  rc = getaddrinfo(argv[1], "80", &hints, &res);
  printf("lookup %d\n", rc);
  if (res != NULL)
    freeaddrinfo(res);
  printf("reopened %d\n", open("/dev/null", O_RDONLY));
  return 0;
}
