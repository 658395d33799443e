/* TCP echo server on libevent 2, written the way its book and samples
 * write one: an evconnlistener hands each connection to a socket
 * bufferevent, whose read callback moves the input buffer to the output
 * buffer; the event callback frees it at EOF or error.
 *
 *   echo_ev [ADDR [PORT]]      default 127.0.0.1, port 0 (picked)
 *
 * Prints "port N" once listening; runs until killed. */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/tcp.h>

#include "bench.h"

static void on_read(struct bufferevent *bev, void *ctx)
{
  (void)ctx;
  evbuffer_add_buffer(bufferevent_get_output(bev), bufferevent_get_input(bev));
}

static void on_event(struct bufferevent *bev, short what, void *ctx)
{
  (void)ctx;
  if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
    bufferevent_free(bev);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd,
                      struct sockaddr *sa, int salen, void *ctx)
{
  struct event_base *base = evconnlistener_get_base(l);
  struct bufferevent *bev;
  int one = 1;
  (void)sa;
  (void)salen;
  (void)ctx;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
  if (bev == NULL) {
    evutil_closesocket(fd);
    return;
  }
  bufferevent_setcb(bev, on_read, NULL, on_event, NULL);
  bufferevent_enable(bev, EV_READ | EV_WRITE);
}

int main(int argc, char **argv)
{
  char text[160];
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss, sslen;
  struct event_base *base;
  struct evconnlistener *l;
  const char *addr = argc > 1 ? argv[1] : "127.0.0.1";
  long port = argc > 2 ? bench_num(argv[2], "port") : 0;

  snprintf(text, sizeof text, strchr(addr, ':') ? "[%s]:%ld" : "%s:%ld", addr,
           port);
  base = event_base_new();
  if (base == NULL || bench_parse_hostport(text, &ss, &sslen) != 0)
    return 70;
  l = evconnlistener_new_bind(base, on_accept, NULL,
                              LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE,
                              SOMAXCONN, (struct sockaddr *)&ss, (int)sslen);
  if (l == NULL) {
    perror("echo_ev: listen");
    return 70;
  }
  getsockname(evconnlistener_get_fd(l), (struct sockaddr *)&ss, &len);
  bench_announce_port(ntohs(((struct sockaddr_in *)&ss)->sin_port));
  return event_base_dispatch(base) == 0 ? 0 : 70;
}
