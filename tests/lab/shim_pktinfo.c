/* A legacy UDP server's recvmmsg with IP_PKTINFO, for the shim's tests:
 * an AF_INET socket bound to 0.0.0.0 (widened by the shim) with control
 * buffers sized for IP_PKTINFO only, as such a server sizes them. One
 * datagram comes from 127.0.0.1, one from ::1 (a plain IPv6 socket).
 * Prints per datagram: "from ADDR pktinfo LOCAL ctrunc 0|1" (pktinfo
 * "none" when there is no IP_PKTINFO). Loopback only. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(void)
{
  struct sockaddr_in a = {.sin_family = AF_INET}, from[2];
  struct sockaddr_in6 d6 = {.sin6_family = AF_INET6};
  struct sockaddr_in d4 = {.sin_family = AF_INET};
  char buf[2][16], cb[2][CMSG_SPACE(sizeof(struct in_pktinfo))];
  struct iovec iv[2] = {{buf[0], 16}, {buf[1], 16}};
  struct mmsghdr mm[2];
  socklen_t len = sizeof a;
  int s = socket(AF_INET, SOCK_DGRAM, 0), c4, c6, one = 1, n, i;

  setsockopt(s, IPPROTO_IP, IP_PKTINFO, &one, sizeof one);
  if (bind(s, (struct sockaddr *)&a, sizeof a) != 0 ||
      getsockname(s, (struct sockaddr *)&a, &len) != 0) {
    perror("bind");
    return 1;
  }
  c4 = socket(AF_INET, SOCK_DGRAM, 0);
  d4.sin_port = a.sin_port;
  d4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sendto(c4, "4", 1, 0, (struct sockaddr *)&d4, sizeof d4);
  usleep(50000);
  c6 = socket(AF_INET6, SOCK_DGRAM, 0);
  d6.sin6_port = a.sin_port;
  d6.sin6_addr = in6addr_loopback;
  if (sendto(c6, "6", 1, 0, (struct sockaddr *)&d6, sizeof d6) != 1)
    printf("ipv6 send failed (not widened)\n");
  usleep(50000);
  memset(mm, 0, sizeof mm);
  for (i = 0; i < 2; i++) {
    mm[i].msg_hdr.msg_name = &from[i];
    mm[i].msg_hdr.msg_namelen = sizeof from[i];
    mm[i].msg_hdr.msg_iov = &iv[i];
    mm[i].msg_hdr.msg_iovlen = 1;
    mm[i].msg_hdr.msg_control = cb[i];
    mm[i].msg_hdr.msg_controllen = sizeof cb[i];
  }
  n = recvmmsg(s, mm, 2, MSG_DONTWAIT, NULL);
  printf("recvmmsg %d\n", n);
  for (i = 0; i < n; i++) {
    struct cmsghdr *h = CMSG_FIRSTHDR(&mm[i].msg_hdr);
    char f[INET_ADDRSTRLEN] = "?", l[INET_ADDRSTRLEN] = "none";
    inet_ntop(AF_INET, &from[i].sin_addr, f, sizeof f);
    if (h != NULL && h->cmsg_level == IPPROTO_IP &&
        h->cmsg_type == IP_PKTINFO) {
      struct in_pktinfo pi;
      memcpy(&pi, CMSG_DATA(h), sizeof pi);
      inet_ntop(AF_INET, &pi.ipi_addr, l, sizeof l);
    }
    printf("from %s pktinfo %s ctrunc %d\n", f, l,
           (mm[i].msg_hdr.msg_flags & MSG_CTRUNC) != 0);
  }
  return 0;
}
