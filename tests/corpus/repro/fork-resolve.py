# lftp's (and links') pattern: the name is looked up in a forked child,
# which sends the IPv4 address it chose to the parent; the parent connects.
#   python3 fork-resolve.py NAME PORT
import os, socket, sys
r, w = os.pipe()
if os.fork() == 0:
    ai = socket.getaddrinfo(sys.argv[1], int(sys.argv[2]), 0, socket.SOCK_STREAM)
    v4 = [a[4][0] for a in ai if a[0] == socket.AF_INET]
    os.write(w, (v4[0] if v4 else "none").encode())
    os._exit(0)
os.close(w)
os.wait()
ip = os.read(r, 64).decode()
s = socket.socket(socket.AF_INET)
s.settimeout(3)
try:
    s.connect((ip, int(sys.argv[2])))
    print("connected to", ip)
except OSError as e:
    print("connect to", ip, "failed:", e)
    sys.exit(1)
