/* UDP echo server on libuv: one receive buffer for the loop (the receive
 * callback consumes it before the next read), uv_udp_try_send() of each
 * datagram back to its source, and uv_udp_send() of a copy when the socket
 * has no room: the same work as libdualstack's ds_udp_write(). With -m the
 * handle is made with UV_UDP_RECVMMSG, libuv's opt-in batch receive.
 *
 *   udp_uv [-m] [ADDR [PORT]]  default 127.0.0.1, port 0 (picked)
 *
 * Prints "port N" once bound; runs until killed. */
#include <uv.h>

#include "bench.h"

/* recvmmsg mode reads up to 20 datagrams of up to 64 KiB into one buffer. */
#define BUF_SIZE (20 * 65536)

typedef struct {
  uv_udp_send_t req;
  uv_buf_t buf;
} send_req;

static char *recvbuf;
static size_t recvlen;

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
  (void)h;
  (void)suggested;
  *buf = uv_buf_init(recvbuf, (unsigned)recvlen);
}

static void on_send(uv_udp_send_t *req, int status)
{
  (void)status;
  free(req);
}

static void on_recv(uv_udp_t *h, ssize_t n, const uv_buf_t *buf,
                    const struct sockaddr *from, unsigned flags)
{
  uv_buf_t b;
  send_req *s;
  (void)flags;
  if (n <= 0 || from == NULL)
    return; /* nothing read, or an error the next read reports again */
  b = uv_buf_init(buf->base, (unsigned)n);
  if (uv_udp_try_send(h, &b, 1, from) >= 0)
    return;
  s = malloc(sizeof *s + (size_t)n);
  if (s == NULL)
    return;
  memcpy(s + 1, buf->base, (size_t)n);
  s->buf = uv_buf_init((char *)(s + 1), (unsigned)n);
  if (uv_udp_send(&s->req, h, &s->buf, 1, from, on_send) != 0)
    free(s);
}

int main(int argc, char **argv)
{
  uv_loop_t *loop = uv_default_loop();
  uv_udp_t h;
  struct sockaddr_storage ss;
  int len = sizeof ss, rc, mmsg = 0, i = 1;
  const char *addr;
  long port;

  if (argc > 1 && strcmp(argv[1], "-m") == 0) {
    mmsg = 1;
    i++;
  }
  addr = argc > i ? argv[i] : "127.0.0.1";
  port = argc > i + 1 ? bench_num(argv[i + 1], "port") : 0;
  recvlen = mmsg ? BUF_SIZE : 65536;
  recvbuf = malloc(recvlen);
  if (recvbuf == NULL)
    return 70;
  if (strchr(addr, ':') != NULL)
    rc = uv_ip6_addr(addr, (int)port, (struct sockaddr_in6 *)&ss);
  else
    rc = uv_ip4_addr(addr, (int)port, (struct sockaddr_in *)&ss);
  if (rc == 0)
    rc = uv_udp_init_ex(loop, &h,
                        ((struct sockaddr *)&ss)->sa_family |
                            (mmsg ? UV_UDP_RECVMMSG : 0));
  if (rc == 0)
    rc = uv_udp_bind(&h, (struct sockaddr *)&ss, 0);
  if (rc == 0)
    rc = uv_udp_recv_start(&h, on_alloc, on_recv);
  if (rc == 0)
    rc = uv_udp_getsockname(&h, (struct sockaddr *)&ss, &len);
  if (rc != 0) {
    fprintf(stderr, "udp_uv: %s\n", uv_strerror(rc));
    return 70;
  }
  bench_announce_port(ntohs(((struct sockaddr_in *)&ss)->sin_port));
  return uv_run(loop, UV_RUN_DEFAULT) == 0 ? 0 : 70;
}
