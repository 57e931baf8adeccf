"""Python's `cryptography` Fernet on the same cases as crates/rampart-crypto/benches/fernet.rs.
Prints `python <op> <size> <ops/s> <MiB/s>` lines."""

import time

from cryptography.fernet import Fernet

RUN = 1.5


def measure(op):
    warm = time.perf_counter()
    while time.perf_counter() - warm < RUN / 5:
        op()
    start = time.perf_counter()
    n = 0
    while time.perf_counter() - start < RUN:
        op()
        n += 1
    return n / (time.perf_counter() - start)


def main():
    f = Fernet(Fernet.generate_key())
    for label, size in (("1KiB", 1024), ("1MiB", 1 << 20)):
        message = bytes(i % 251 for i in range(size))
        token = f.encrypt(message)
        enc = measure(lambda: f.encrypt(message))
        dec = measure(lambda: f.decrypt(token))
        mib = size / (1 << 20)
        print(f"python encrypt {label} {enc:.1f} {enc * mib:.1f}")
        print(f"python decrypt {label} {dec:.1f} {dec * mib:.1f}")


if __name__ == "__main__":
    main()
