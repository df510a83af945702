"""The victim agent of the escape suite: a sibling of the attacker in the
same project. It keeps a secret in its own write grant, listens on a TCP
port and an abstract unix socket, reports every connection it gets (there
must be none) and keeps running.
"""
import json
import os
import select
import socket
import time

PORT = 7070
ABSTRACT = "\0cortex-escape-victim"


def emit(**rec):
    print(json.dumps(rec), flush=True)


def main():
    secret = os.urandom(24).hex()
    with open("/app/victim/secret.txt", "w") as f:
        f.write(secret)
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind(("0.0.0.0", PORT))
    tcp.listen(16)
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    unix.bind(ABSTRACT)
    unix.listen(16)
    emit(msg="victim-ready", port=PORT)
    while True:
        ready, _, _ = select.select([tcp, unix], [], [], 3600)
        for s in ready:
            conn, addr = s.accept()
            emit(msg="victim-contacted", addr=repr(addr))
            conn.close()
        time.sleep(0)
