/* TCP echo server on libuv, written the way fast libuv servers (Node.js's
 * stream layer, for one) write: one read buffer for the loop (a read
 * callback consumes it before the next read), uv_try_write() of the bytes
 * at once, and uv_write() of a copy of what the socket did not take. This
 * is the same work libdualstack's ds_tcp_write() does (write at once, copy
 * the rest), and faster than the malloc-per-read pattern of libuv's own
 * test/echo-server.c, which also pays an epoll_ctl per write.
 *
 *   echo_uv [ADDR [PORT]]      default 127.0.0.1, port 0 (picked)
 *
 * Prints "port N" once listening; runs until killed. */
#include <uv.h>

#include "bench.h"

typedef struct {
  uv_write_t req;
  uv_buf_t buf;
} write_req;

static char readbuf[65536];

static void on_close(uv_handle_t *h)
{
  free(h);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
  (void)h;
  (void)suggested;
  *buf = uv_buf_init(readbuf, sizeof readbuf);
}

static void on_write(uv_write_t *req, int status)
{
  write_req *w = (write_req *)req;
  (void)status;
  free(w);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
  uv_buf_t b;
  write_req *w;
  int done;

  if (n < 0) {
    uv_close((uv_handle_t *)s, on_close);
    return;
  }
  if (n == 0)
    return;
  b = uv_buf_init(buf->base, (unsigned)n);
  done = uv_try_write(s, &b, 1);
  if (done == n)
    return;
  if (done == UV_EAGAIN)
    done = 0;
  if (done < 0) {
    uv_close((uv_handle_t *)s, on_close);
    return;
  }
  /* The rest waits in a copy: the read buffer is reused at once. */
  w = malloc(sizeof *w + (size_t)(n - done));
  if (w == NULL) {
    uv_close((uv_handle_t *)s, on_close);
    return;
  }
  memcpy(w + 1, buf->base + done, (size_t)(n - done));
  w->buf = uv_buf_init((char *)(w + 1), (unsigned)(n - done));
  if (uv_write(&w->req, s, &w->buf, 1, on_write) != 0) {
    free(w);
    uv_close((uv_handle_t *)s, on_close);
  }
}

static void on_connection(uv_stream_t *server, int status)
{
  uv_tcp_t *c;
  if (status != 0)
    return;
  c = malloc(sizeof *c);
  if (c == NULL)
    return;
  uv_tcp_init(server->loop, c);
  if (uv_accept(server, (uv_stream_t *)c) != 0) {
    uv_close((uv_handle_t *)c, on_close);
    return;
  }
  uv_tcp_nodelay(c, 1);
  uv_read_start((uv_stream_t *)c, on_alloc, on_read);
}

int main(int argc, char **argv)
{
  const char *addr = argc > 1 ? argv[1] : "127.0.0.1";
  long port = argc > 2 ? bench_num(argv[2], "port") : 0;
  uv_loop_t *loop = uv_default_loop();
  uv_tcp_t server;
  struct sockaddr_storage ss;
  int len = sizeof ss;
  int rc;

  if (strchr(addr, ':') != NULL)
    rc = uv_ip6_addr(addr, (int)port, (struct sockaddr_in6 *)&ss);
  else
    rc = uv_ip4_addr(addr, (int)port, (struct sockaddr_in *)&ss);
  if (rc == 0)
    rc = uv_tcp_init(loop, &server);
  if (rc == 0)
    rc = uv_tcp_bind(&server, (struct sockaddr *)&ss, 0);
  if (rc == 0)
    rc = uv_listen((uv_stream_t *)&server, SOMAXCONN, on_connection);
  if (rc == 0)
    rc = uv_tcp_getsockname(&server, (struct sockaddr *)&ss, &len);
  if (rc != 0) {
    fprintf(stderr, "echo_uv: %s\n", uv_strerror(rc));
    return 70;
  }
  bench_announce_port(ntohs(((struct sockaddr_in *)&ss)->sin_port));
  return uv_run(loop, UV_RUN_DEFAULT) == 0 ? 0 : 70;
}
