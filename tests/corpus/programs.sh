# How each program of programs.txt is driven (sourced by run.sh).
#
# A client NAME is a function c_NAME HOST: it runs the program once through
# X (which runs it in the client namespace, with or without the shim, under
# a timeout, and times it) against HOST and prints what the program printed
# that shows the outcome. The peer is testsrv.py, whose every answer says
# "corpus-ok ipv6" or "corpus-ok ipv4": the program's own output tells
# whether its bytes arrived and over which family.
#
# A server NAME is a function s_NAME setting
#   port    where it listens (it binds 0.0.0.0, as its default or legacy
#           configuration does)
#   req     what probe.py sends (escapes \r \n \0)
#   popts   probe.py options (--tls, --lines N, --shut, --idle S)
#   proto   udp for a datagram server (probe.py --udp; default tcp)
#   okre    an extended regex the reply must match
#   view    what the server's own view of the peer must show, looked for in
#           its log ($SLOG and any files in $slogs) and its reply:
#           name (client6.test / client4.test: it looks the peer up),
#           addr (a source-pool address for IPv6 / 192.0.2.1 for IPv4),
#           - (it shows no peer)
# and s_NAME_start, which starts it through XS (in the server namespace,
# with or without the shim, output in $SLOG). $WD is a scratch directory of
# the worker; $CORPUS_DIR this directory.

PY=/usr/bin/python3

# ---------------------------------------------------------------- clients
c_curl() { X curl -4 -sS --max-time 5 "http://$1/curl"; }
c_wget() { X wget -4 -q -O - -T 5 -t 1 "http://$1/wget"; }
c_w3m() { HOME=$WD X w3m -4 -dump "http://$1/w3m"; }
c_links() { HOME=$WD X links -address-preference 3 -dump "http://$1/links"; }
c_nc.traditional() { printf 'nc\n' | X nc.traditional -w 5 "$1" 7; }
c_nc.openbsd() { printf 'nc\n' | X nc.openbsd -4 -w 5 "$1" 7; }
c_ncat() { printf 'ncat\n' | X ncat -4 -w 5 "$1" 7; }
c_socat() { printf 'socat\n' | X socat - "TCP4:$1:7,connect-timeout=5"; }
c_telnet() {
  { printf 'telnet\r\n'; sleep 1; } | X telnet -4 "$1" 23 2>&1 |
    grep -ao 'corpus-ok[^[:cntrl:]]*'
}
c_ssh() {
  X ssh -4 -v -o BatchMode=yes -o StrictHostKeyChecking=no \
    -o UserKnownHostsFile=/dev/null -o ConnectTimeout=5 "$1" true 2>&1 |
    grep -o 'remote software version [^ ]*'
}
c_rsync() { X rsync -4 --contimeout=5 "rsync://$1/corpus/" 2>&1 | grep -o 'corpus-ok.*'; }
c_git() {
  rm -rf "$WD/clone"
  X git clone -4 "git://$1/corpus.git" "$WD/clone" 2>&1 | grep -o 'corpus-ok.*'
}
c_redis-cli() { X redis-cli -h "$1" -p 6379 PING; }
c_finger() { X finger "corpus@$1" 2>&1 | grep -o 'corpus-ok.*'; }
c_openssl() {
  printf 'GET /openssl HTTP/1.0\r\n\r\n' |
    X openssl s_client -4 -quiet -connect "$1:443" 2>/dev/null | grep -o 'corpus-ok.*'
}
c_perl-inet() {
  X perl -MIO::Socket::INET -e '
    my $s = IO::Socket::INET->new(PeerAddr => $ARGV[0], PeerPort => 7,
      Proto => "tcp", Timeout => 5) or die "connect: $@\n";
    print $s "perl\n"; print <$s>;' "$1"
}
c_perl-httptiny() {
  PERL_HTTP_TINY_IPV4_ONLY=1 X perl -MHTTP::Tiny -e '
    my $r = HTTP::Tiny->new(timeout => 5)->get("http://$ARGV[0]/tiny");
    print $r->{status} == 200 ? $r->{content} : "$r->{status} $r->{content}";' "$1"
}
c_py-socket() {
  X "$PY" -I -c '
import socket, sys
a = socket.gethostbyname(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.settimeout(5)
s.connect((a, 7))
s.sendall(b"py\n")
print(s.recv(200).decode().strip())' "$1"
}
c_py-asyncio() {
  X "$PY" -I -c '
import asyncio, socket, sys
async def main():
    r, w = await asyncio.wait_for(asyncio.open_connection(sys.argv[1], 7,
        family=socket.AF_INET), 5)
    w.write(b"asyncio\n")
    print((await r.read(200)).decode().strip())
    w.close()
asyncio.run(main())' "$1"
}
c_py-urllib() {
  # The usual way to make urllib IPv4-only: every lookup asks for AF_INET.
  X "$PY" -I -c '
import socket, sys, urllib.request
gai = socket.getaddrinfo
socket.getaddrinfo = lambda h, p, f=0, *a, **k: gai(h, p, socket.AF_INET, *a, **k)
print(urllib.request.urlopen("http://%s/urllib" % sys.argv[1], timeout=5).read().decode().strip())' "$1"
}

c_lynx() { HOME=$WD X lynx -dump -nolist -connect_timeout=5 "http://$1/lynx"; }
c_lftp() {
  # dns:order inet: lftp looks up (in a forked resolver process) IPv4 only.
  HOME=$WD X lftp -c "set dns:order inet; set net:timeout 5; set net:max-retries 1; cat http://$1/lftp"
}
c_aria2c() {
  rm -f "$WD/aria2.out"
  # --async-dns=false: getaddrinfo, not c-ares (aria2c-cares, a limit).
  X aria2c --disable-ipv6=true --async-dns=false --connect-timeout=5 -q \
    --allow-overwrite=true -d "$WD" -o aria2.out "http://$1/aria2c" &&
    cat "$WD/aria2.out"
}
c_ab() { X ab -v 4 -n 1 -s 5 "http://$1/ab" 2>&1 | grep -ao 'corpus-ok[^[:cntrl:]]*'; }
c_swaks() {
  X swaks -4 --server "$1" --to b@client.test --from a@client.test \
    --timeout 5 2>&1 | grep -ao 'corpus-ok[^[:cntrl:]]*' | tail -n 1
}
c_msmtp() {
  printf 'Subject: corpus\n\nmsmtp\n' |
    X msmtp --debug --host="$1" --port=25 --auth=off --tls=off \
      --timeout=5 -f a@client.test b@client.test 2>&1 |
    grep -ao 'corpus-ok[^[:cntrl:]]*' | tail -n 1
}
c_py-smtplib() {
  X "$PY" -I -c '
import smtplib, socket, sys
gai = socket.getaddrinfo
socket.getaddrinfo = lambda h, p, f=0, *a, **k: gai(h, p, socket.AF_INET, *a, **k)
s = smtplib.SMTP(sys.argv[1], 25, timeout=5)
print(s.ehlo()[1].decode())
print(s.sendmail("a@client.test", ["b@client.test"], "Subject: x\r\n\r\npy\r\n") or "sent")
s.quit()' "$1" | head -n 1
}
c_perl-lwp() {
  X perl -MLWP::UserAgent -MSocket -e '
    @LWP::Protocol::http::EXTRA_SOCK_OPTS = (Family => AF_INET);
    my $r = LWP::UserAgent->new(timeout => 5)->get("http://$ARGV[0]/lwp");
    print $r->is_success ? $r->decoded_content : $r->status_line, "\n";' "$1"
}
c_mosquitto_sub() { X mosquitto_sub -h "$1" -p 1883 -t corpus -C 1 -W 5; }
c_whois() { X whois -h "$1" -p 43 corpus; }
c_aria2c-cares() {
  rm -f "$WD/aria2.out"
  X aria2c --disable-ipv6=true --connect-timeout=5 -q \
    --allow-overwrite=true -d "$WD" -o aria2.out "http://$1/aria2c" &&
    cat "$WD/aria2.out"
}
c_dig() { X dig -4 +short +tries=1 +time=2 "$1" A; }

# ---------------------------------------------------------------- servers
REPLY_OK="corpus-ok"

s_nc.traditional-l() { port=7000 req='hi\n' popts= okre=corpus-ok view=name; }
s_nc.traditional-l_start() {
  XS nc.traditional -v -l -p 7000 -c 'echo corpus-ok'
}

s_nc.openbsd-l() { port=7001 req='hi\n' popts= okre=corpus-ok view=name; }
s_nc.openbsd-l_start() {
  echo corpus-ok > "$WD/reply"
  # A background job's stdin is /dev/null: the shell feeds it the reply.
  XS sh -c 'exec nc.openbsd -4 -v -N -l 7001 < "$1"' sh "$WD/reply"
}

s_ncat-l() { port=7002 req='hi\n' popts= okre='corpus-ok' view=addr; }
s_ncat-l_start() {
  XS ncat -4 -v -l -k --sh-exec 'echo corpus-ok $NCAT_REMOTE_ADDR' 7002 < /dev/null
}

s_socat-l() { port=7003 req='hi\n' popts= okre='corpus-ok' view=addr; }
s_socat-l_start() {
  # The service reads the request first: exiting with it unread resets the
  # socketpair, and socat may lose the reply (seen once for an IPv4 client).
  XS socat -d -d TCP4-LISTEN:7003,fork,reuseaddr \
    SYSTEM:'read -r x; echo corpus-ok $SOCAT_PEERADDR' < /dev/null
}

s_tcpserver() { port=7004 req='hi\n' popts= okre='corpus-ok' view=addr; }
s_tcpserver_start() {
  XS tcpserver -v -H -R 0 7004 sh -c 'echo corpus-ok $TCPREMOTEIP' < /dev/null
}

s_dropbear() { port=2222 req='SSH-2.0-probe\r\n' popts='--lines 1' okre='^SSH-2.0-dropbear' view=addr; }
s_dropbear_start() {
  [ -s "$WD/dropbear.key" ] ||
    dropbearkey -t ed25519 -f "$WD/dropbear.key" > /dev/null 2>&1
  XS dropbear -F -E -s -p 0.0.0.0:2222 -r "$WD/dropbear.key" -P "$WD/dropbear.pid" < /dev/null
}

s_rsyncd() { port=8873 req='@RSYNCD: 31.0\n\n' popts= okre='corpus[[:space:]]+corpus module' view=name slogs=$WD/rsyncd.log; }
s_rsyncd_start() {
  mkdir -p "$WD/rsync" && echo corpus-ok > "$WD/rsync/file"
  printf '%s\n' "pid file = $WD/rsyncd.pid" "use chroot = no" \
    "[corpus]" "path = $WD/rsync" "comment = corpus module" > "$WD/rsyncd.conf"
  : > "$WD/rsyncd.log"
  XS rsync --daemon --no-detach --ipv4 --port 8873 --config "$WD/rsyncd.conf" \
    --log-file "$WD/rsyncd.log" < /dev/null
}

s_git-daemon() { port=9419 req='002cgit-upload-pack /corpus.git\0host=server\0' popts='--lines 1' okre='HEAD' view=addr; }
s_git-daemon_start() {
  if [ ! -d "$WD/git/corpus.git" ]; then
    git init -q --bare "$WD/git/corpus.git" &&
      git -C "$WD/git/corpus.git" -c user.email=c@test -c user.name=c \
        commit-tree -m corpus "$(git -C "$WD/git/corpus.git" mktree < /dev/null)" \
        > "$WD/git/head" &&
      git -C "$WD/git/corpus.git" update-ref refs/heads/main "$(cat "$WD/git/head")" &&
      git -C "$WD/git/corpus.git" symbolic-ref HEAD refs/heads/main
  fi
  XS git daemon --reuseaddr --export-all --base-path="$WD/git" \
    --listen=0.0.0.0 --port=9419 --verbose < /dev/null
}

s_redis-server() { port=6380 req='CLIENT LIST\r\nQUIT\r\n' popts= okre='^\$[0-9]+' view=addr; }
s_redis-server_start() {
  XS redis-server --port 6380 --bind 0.0.0.0 --protected-mode no --save '' \
    --appendonly no --daemonize no --dir "$WD" < /dev/null
}

s_memcached() { port=11211 req='stats conns\r\nquit\r\n' popts= okre='^END' view=addr; }
s_memcached_start() { XS memcached -u root -l 0.0.0.0 -p 11211 -U 0 -t 2 < /dev/null; }

s_nginx() { port=8080 req='GET /nginx HTTP/1.0\r\n\r\n' popts= okre='corpus-ok' view=addr slogs=$WD/nginx/access.log; }
s_nginx_start() {
  mkdir -p "$WD/nginx"
  cat > "$WD/nginx/nginx.conf" <<EOF
daemon off;
pid $WD/nginx/nginx.pid;
error_log stderr;
worker_processes 2;
events { worker_connections 64; }
http {
  access_log $WD/nginx/access.log;
  client_body_temp_path $WD/nginx;
  proxy_temp_path $WD/nginx;
  fastcgi_temp_path $WD/nginx;
  uwsgi_temp_path $WD/nginx;
  scgi_temp_path $WD/nginx;
  server {
    listen 8080;
    location / { return 200 "corpus-ok \$remote_addr\n"; }
  }
}
EOF
  : > "$WD/nginx/access.log"
  XS nginx -p "$WD/nginx" -c "$WD/nginx/nginx.conf" < /dev/null
}

s_lighttpd() { port=8081 req='GET /index.txt HTTP/1.0\r\n\r\n' popts= okre='corpus-ok' view=addr slogs=$WD/lighttpd/access.log; }
s_lighttpd_start() {
  mkdir -p "$WD/lighttpd/www"
  echo corpus-ok > "$WD/lighttpd/www/index.txt"
  cat > "$WD/lighttpd/lighttpd.conf" <<EOF
server.modules = ( "mod_accesslog" )
server.document-root = "$WD/lighttpd/www"
server.bind = "0.0.0.0"
server.port = 8081
server.pid-file = "$WD/lighttpd/pid"
accesslog.filename = "$WD/lighttpd/access.log"
EOF
  : > "$WD/lighttpd/access.log"
  XS lighttpd -D -f "$WD/lighttpd/lighttpd.conf" < /dev/null
}

s_mini-httpd() { port=8082 req='GET /index.txt HTTP/1.0\r\n\r\n' popts= okre='corpus-ok' view=addr slogs=$WD/mini/access.log; }
s_mini-httpd_start() {
  mkdir -p "$WD/mini/www"
  echo corpus-ok > "$WD/mini/www/index.txt"
  : > "$WD/mini/access.log"
  XS mini_httpd -D -h 0.0.0.0 -p 8082 -d "$WD/mini/www" -u root \
    -l "$WD/mini/access.log" -i "$WD/mini/pid" < /dev/null
}

s_openssl-s_server() { port=4433 req='GET / HTTP/1.0\r\n\r\n' popts=--tls okre='s_server' view=-; }
s_openssl-s_server_start() {
  XS openssl s_server -4 -accept 4433 -www -cert "$CORPUS_CERT" \
    -key "$CORPUS_KEY" < /dev/null
}

# inetd: one configuration per service; "tcp4": the IPv4-only service of a
# legacy inetd.conf (Debian's openbsd-inetd reads "tcp" as tcp and tcp6).
_inetd() {
  printf '%s\n' "$1" > "$WD/inetd.conf"
  XS inetd -d "$WD/inetd.conf" < /dev/null
}
s_inetd+micro-httpd() { port=8083 req='GET /index.txt HTTP/1.0\r\n\r\n' popts= okre='corpus-ok' view=-; }
s_inetd+micro-httpd_start() {
  mkdir -p "$WD/micro" && echo corpus-ok > "$WD/micro/index.txt"
  _inetd "8083 stream tcp4 nowait root /usr/sbin/micro-httpd micro-httpd $WD/micro"
}
s_inetd+fingerd() { port=8079 req='\r\n' popts= okre='.' view=-; }
s_inetd+fingerd_start() {
  _inetd "8079 stream tcp4 nowait nobody /usr/sbin/in.fingerd in.fingerd"
}
# Debian's own inetd.conf form: "tcp" is a tcp and a tcp6 socket on the port.
s_inetd-dual() { port=8086 req='GET /index.txt HTTP/1.0\r\n\r\n' popts= okre='corpus-ok' view=-; }
s_inetd-dual_start() {
  mkdir -p "$WD/micro" && echo corpus-ok > "$WD/micro/index.txt"
  _inetd "8086 stream tcp nowait root /usr/sbin/micro-httpd micro-httpd $WD/micro"
}
s_inetd+perl() { port=8084 req='hi\n' popts= okre='corpus-ok' view=name; }
s_inetd+perl_start() {
  # An inetd-style service: the peer of its inherited stdin, and its name.
  cat > "$WD/peer.pl" <<'EOF'
#!/usr/bin/perl
use Socket;
my ($port, $ip) = sockaddr_in(getpeername(STDIN));
my $name = gethostbyaddr($ip, AF_INET) // "-";
print "corpus-ok ", inet_ntoa($ip), " $name\r\n";
EOF
  chmod 755 "$WD/peer.pl"
  _inetd "8084 stream tcp4 nowait root $WD/peer.pl peer.pl"
}

s_perl-server() { port=8085 req='hi\n' popts= okre='corpus-ok' view=name; }
s_perl-server_start() {
  XS perl -MIO::Socket::INET -MSocket -e '
    $| = 1;
    my $l = IO::Socket::INET->new(LocalAddr => "0.0.0.0", LocalPort => 8085,
      Listen => 5, ReuseAddr => 1) or die "listen: $@";
    while (my $c = $l->accept) {
      my $name = gethostbyaddr($c->peeraddr, AF_INET) // "-";
      print STDERR "connection from ", $c->peerhost, " $name\n";
      print $c "corpus-ok ", $c->peerhost, " $name\r\n";
      close $c;
    }' < /dev/null
}

s_py-http.server() { port=8000 req='GET /index.txt HTTP/1.0\r\n\r\n' popts= okre='corpus-ok' view=addr; }
s_py-http.server_start() {
  mkdir -p "$WD/pyhttp" && echo corpus-ok > "$WD/pyhttp/index.txt"
  XS "$PY" -I -u -m http.server 8000 --bind 0.0.0.0 --directory "$WD/pyhttp" < /dev/null
}

s_py-forking() { port=8001 req='hi\n' popts= okre='corpus-ok' view=name; }
s_py-forking_start() {
  XS "$PY" -I -u -c '
import socket, socketserver
class H(socketserver.StreamRequestHandler):
    def handle(self):
        ip = self.client_address[0]
        try: name = socket.gethostbyaddr(ip)[0]
        except OSError as e: name = "-"
        print("connection from", ip, name, flush=True)
        self.wfile.write(("corpus-ok %s %s\r\n" % (ip, name)).encode())
socketserver.ForkingTCPServer.allow_reuse_address = True
socketserver.ForkingTCPServer(("0.0.0.0", 8001), H).serve_forever()' < /dev/null
}

s_py-threading() { port=8002 req='hi\n' popts= okre='corpus-ok' view=name; }
s_py-threading_start() {
  XS "$PY" -I -u -c '
import socket, socketserver
class H(socketserver.StreamRequestHandler):
    def handle(self):
        try: name = socket.getnameinfo(self.client_address, socket.NI_NAMEREQD)[0]
        except OSError: name = "-"
        ip = self.client_address[0]
        print("connection from", ip, name, flush=True)
        self.wfile.write(("corpus-ok %s %s\r\n" % (ip, name)).encode())
socketserver.ThreadingTCPServer.allow_reuse_address = True
socketserver.ThreadingTCPServer(("0.0.0.0", 8002), H).serve_forever()' < /dev/null
}

s_py-asyncio-server() { port=8003 req='hi\n' popts= okre='corpus-ok' view=addr; }
s_py-asyncio-server_start() {
  XS "$PY" -I -u -c '
import asyncio
async def h(r, w):
    ip = w.get_extra_info("peername")[0]
    print("connection from", ip, flush=True)
    w.write(("corpus-ok %s\r\n" % ip).encode())
    await w.drain(); w.close()
async def main():
    s = await asyncio.start_server(h, "0.0.0.0", 8003)
    await s.serve_forever()
asyncio.run(main())' < /dev/null
}

s_mosquitto() { port=1884 req='\x10\x0d\x00\x04MQTT\x04\x02\x00\x3c\x00\x01c' popts='--idle 0.5' okre=$'^ \x02' view=addr; }
s_mosquitto_start() {
  printf '%s\n' "listener 1884 0.0.0.0" "allow_anonymous true" \
    "log_dest stderr" "log_type all" "persistence false" > "$WD/mosquitto.conf"
  XS mosquitto -c "$WD/mosquitto.conf" < /dev/null
}

s_tinyproxy() { port=8888 req='GET http://192.0.2.2/tinyproxy HTTP/1.0\r\n\r\n' popts= okre='corpus-ok' view=addr; }
s_tinyproxy_start() {
  printf '%s\n' "Port 8888" "Listen 0.0.0.0" "Timeout 10" "LogLevel Connect" \
    "MaxClients 10" "Allow 192.0.2.0/24" "Allow 172.21.112.0/20" \
    "DisableViaHeader Yes" > "$WD/tinyproxy.conf"
  XS tinyproxy -d -c "$WD/tinyproxy.conf" < /dev/null
}

s_aiosmtpd() { port=8025 req='EHLO probe\r\nQUIT\r\n' popts= okre='^221' view=addr; }
s_aiosmtpd_start() {
  XS "$PY" -I -u -m aiosmtpd -n -d -l 0.0.0.0:8025 < /dev/null
}

# A UDP server: one datagram in, one out.
s_socat-udp() { port=7006 proto=udp req='hi\n' popts= okre='corpus-ok' view=addr; }
s_socat-udp_start() {
  # The service reads the datagram first: exiting with it unread resets
  # the socketpair, and socat may lose the reply (a race, either family).
  XS socat -d -d UDP4-RECVFROM:7006,fork \
    SYSTEM:'read -r x; echo corpus-ok $SOCAT_PEERADDR' < /dev/null
}

# dnsmasq binds 0.0.0.0 and [::] by itself (as Debian's inetd-dual): a
# DNS server over UDP; -4 is not an option, --listen-address=0.0.0.0 is
# IPv4 only.
s_dnsmasq() { port=5353 proto=udp req='\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x06corpus\x04test\x00\x00\x01\x00\x01' popts= okre='corpus.test' view=addr; }
s_dnsmasq_start() {
  XS dnsmasq -k -C /dev/null -p 5353 --listen-address=0.0.0.0 -z -R -h \
    --address=/corpus.test/192.0.2.9 --log-queries --log-facility=- \
    -u root < /dev/null
}
