"""Full TLS handshakes, one after another, for a while: what a passthrough route costs per new
connection. Each connection is new (no session resumed) and closes once its handshake is done.

    python3 benches/handshakes.py HOST PORT SERVER_NAME SECONDS   ->   "<handshakes> <seconds>"

SERVER_NAME "-" sends no SNI. Certificates are not verified: the cost measured is the
handshake's, the same for every server in the run.
"""

import socket
import ssl
import sys
import time


def main() -> None:
    host, port, name, seconds = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    server_name = None if name == "-" else name
    done, failed = 0, 0
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        try:
            with socket.create_connection((host, port), timeout=5) as raw:
                with ctx.wrap_socket(raw, server_hostname=server_name):
                    done += 1
        except OSError:
            failed += 1
            if failed > 100:
                sys.exit(f"{failed} handshakes failed at {host}:{port} ({name})")
    print(done, round(time.monotonic() - start, 3))


if __name__ == "__main__":
    main()
