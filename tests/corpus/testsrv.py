# The corpus' peer for client programs: one dual-stack process ([::], never
# preloaded) serving every protocol the clients speak, each answer naming
# the family the client came with ("corpus-ok ipv6" / "corpus-ok ipv4"), so
# a client's own output shows where its bytes went.
#
#   python3 testsrv.py CERT KEY
#
# ports: 7 23 43 79 echo-like (one read, one answer, close), 80 HTTP,
# 443 HTTPS, 22 SSH banner, 873 rsync daemon greeting, 9418 git protocol,
# 6379 redis (RESP), 25 SMTP (the greeting and every reply carry the
# family), 1883 MQTT (a subscriber gets one message, the family). Prints
# "ready" once every port listens.
import socket
import ssl
import sys
import threading


def family(addr):
    return "ipv4" if addr[0].startswith("::ffff:") else "ipv6"


def read_some(c, want=b"", limit=65536):
    data = b""
    while len(data) < limit:
        d = c.recv(4096)
        if not d:
            break
        data += d
        if not want or want in data:
            break
    return data


def echo(c, fam):
    d = read_some(c, b"\n")
    line = d.decode("latin-1").strip().replace("\r", "")
    c.sendall(("corpus-ok %s %s\r\n" % (fam, line)).encode())


def http(c, fam):
    d = read_some(c, b"\r\n\r\n")
    req = d.split(b"\r\n", 1)[0].decode("latin-1")
    path = req.split(" ")[1] if req.count(" ") >= 2 else "?"
    body = ("corpus-ok %s %s\n" % (fam, path)).encode()
    c.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n"
              b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
              + body)


def ssh(c, fam):
    c.sendall(("SSH-2.0-corpus-ok-%s\r\n" % fam).encode())
    read_some(c, b"\n")


def rsyncd(c, fam):
    c.sendall(b"@RSYNCD: 31.0\n")
    data = b""                   # the client's greeting, then its module
    while data.count(b"\n") < 2:
        d = c.recv(4096)
        if not d:
            break
        data += d
    c.sendall(("@ERROR: corpus-ok %s\n" % fam).encode())


def git(c, fam):
    read_some(c, b"\0", 4096)
    msg = ("ERR corpus-ok %s\n" % fam).encode()
    c.sendall(b"%04x" % (len(msg) + 4) + msg)


def redis(c, fam):
    while True:
        d = read_some(c, b"\r\n")
        if not d:
            break
        if b"QUIT" in d.upper():
            c.sendall(b"+OK\r\n")
            break
        c.sendall(("+corpus-ok %s\r\n" % fam).encode())


def smtp(c, fam):
    c.sendall(("220 corpus-ok %s ESMTP\r\n" % fam).encode())
    f = c.makefile("rb")
    data = False
    for line in f:
        cmd = line.decode("latin-1").strip()
        if data:
            if cmd == ".":
                data = False
                c.sendall(("250 corpus-ok %s queued\r\n" % fam).encode())
            continue
        verb = cmd.split(" ", 1)[0].upper()
        if verb in ("EHLO", "HELO"):
            c.sendall(("250 corpus-ok %s\r\n" % fam).encode())
        elif verb == "DATA":
            data = True
            c.sendall(b"354 go on\r\n")
        elif verb == "QUIT":
            c.sendall(b"221 bye\r\n")
            break
        else:
            c.sendall(("250 corpus-ok %s\r\n" % fam).encode())


def mqtt_packet(c):
    head = c.recv(1)
    if not head:
        return None, b""
    n, mult = 0, 1
    while True:
        b = c.recv(1)[0]
        n += (b & 127) * mult
        mult *= 128
        if b < 128:
            break
    body = b""
    while len(body) < n:
        d = c.recv(n - len(body))
        if not d:
            break
        body += d
    return head[0] >> 4, body


def mqtt(c, fam):
    while True:
        kind, body = mqtt_packet(c)
        if kind is None or kind == 14:             # gone, DISCONNECT
            break
        if kind == 1:                              # CONNECT
            c.sendall(b"\x20\x02\x00\x00")
        elif kind == 8:                            # SUBSCRIBE
            c.sendall(b"\x90\x03" + body[:2] + b"\x00")
            topic = body[4:4 + int.from_bytes(body[2:4], "big")]
            msg = ("corpus-ok %s" % fam).encode()
            var = len(topic).to_bytes(2, "big") + topic + msg
            c.sendall(bytes([0x30, len(var)]) + var)
        elif kind == 12:                           # PINGREQ
            c.sendall(b"\xd0\x00")


def serve(ls, handler, ctx):
    while True:
        c, a = ls.accept()
        def run(c=c, a=a):
            try:
                c.settimeout(10)
                if ctx is not None:
                    c = ctx.wrap_socket(c, server_side=True)
                handler(c, family(a))
            except Exception:
                pass
            finally:
                try:
                    c.close()
                except OSError:
                    pass
        threading.Thread(target=run, daemon=True).start()


def main():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(sys.argv[1], sys.argv[2])
    ports = [(7, echo, None), (23, echo, None), (43, echo, None),
             (79, echo, None), (80, http, None), (443, http, ctx),
             (22, ssh, None), (873, rsyncd, None), (9418, git, None),
             (6379, redis, None), (25, smtp, None), (1883, mqtt, None)]
    threads = []
    for port, handler, c in ports:
        s = socket.socket(socket.AF_INET6)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("::", port))
        s.listen(64)
        t = threading.Thread(target=serve, args=(s, handler, c), daemon=True)
        threads.append(t)
    for t in threads:
        t.start()
    print("ready", flush=True)
    threading.Event().wait()


main()
