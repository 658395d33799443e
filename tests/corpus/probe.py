# The corpus' client for server programs (run in the client namespace,
# never preloaded): connects to HOST PORT, sends REQUEST (backslash escapes
# \r \n \0 understood), reads the reply until the server closes, MAXLINES
# lines arrived, or the reply stays idle for IDLE seconds, and prints it.
#
#   python3 probe.py [--tls] [--lines N] [--idle S] [--shut] HOST PORT REQUEST
#   python3 probe.py --udp HOST PORT REQUEST
#
# --udp: REQUEST is one datagram; the reply is the datagrams that come back
# from HOST PORT (until IDLE seconds pass without one); none: TIMEOUT.
#
# Exit status 0 with a reply, 1 with none, 2 connect failed (the errno name
# is printed: ECONNREFUSED, TIMEOUT...).
import errno
import socket
import ssl
import sys
import time

args = sys.argv[1:]
tls = False
lines = 0
idle = 1.5
shut = False
udp = False
while args and args[0].startswith("--"):
    o = args.pop(0)
    if o == "--tls":
        tls = True
    elif o == "--lines":
        lines = int(args.pop(0))
    elif o == "--idle":
        idle = float(args.pop(0))
    elif o == "--shut":
        shut = True
    elif o == "--udp":
        udp = True
host, port, req = args[0], int(args[1]), args[2]
req = req.encode().decode("unicode_escape").encode("latin-1")
fam = socket.AF_INET6 if ":" in host else socket.AF_INET
if udp:
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.connect((host, port))
    s.send(req)
    s.settimeout(3)
    data = b""
    while True:
        try:
            data += s.recv(65536)
        except ConnectionRefusedError:
            print("ECONNREFUSED")
            sys.exit(2)
        except OSError:
            break
        s.settimeout(idle)
    if not data:
        print("TIMEOUT")
        sys.exit(2)
    sys.stdout.write(data.decode("latin-1").replace("\r", "").replace("\0", "."))
    sys.exit(0)
s = socket.socket(fam, socket.SOCK_STREAM)
s.settimeout(3)
try:
    s.connect((host, port))
except socket.timeout:
    print("TIMEOUT")
    sys.exit(2)
except OSError as e:
    print(errno.errorcode.get(e.errno, "E%d" % e.errno))
    sys.exit(2)
if tls:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    s = ctx.wrap_socket(s)
if req:
    s.sendall(req)
if shut and not tls:
    s.shutdown(socket.SHUT_WR)
s.settimeout(idle)
data = b""
end = time.monotonic() + 8
while time.monotonic() < end:
    try:
        d = s.recv(65536)
    except (socket.timeout, ssl.SSLError, OSError):
        break
    if not d:
        break
    data += d
    if lines and data.count(b"\n") >= lines:
        break
s.close()
sys.stdout.write(data.decode("latin-1").replace("\r", ""))
sys.exit(0 if data else 1)
