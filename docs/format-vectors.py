#!/usr/bin/env python3
"""Test vectors for docs/FORMAT.md, computed from the format's definition alone.

Usage: python3 docs/format-vectors.py [ARCHIVE]
Prints every vector; with ARCHIVE, also writes the example archive's bytes there.
"""
import hashlib
import struct
import sys


def sha256(data):
    return hashlib.sha256(data).digest()


def pattern(size):
    """The test input: byte i is i mod 251."""
    return bytes(i % 251 for i in range(size))


def chain(data, chunk_size):
    """The records of `data` and their digests h_0..h_{n-1}; h_0 is the root."""
    chunks = [data[i:i + chunk_size] for i in range(0, len(data), chunk_size)] or [b""]
    records, digests = [chunks[-1]], [sha256(chunks[-1])]
    for chunk in reversed(chunks[:-1]):
        records.insert(0, chunk + digests[0])
        digests.insert(0, sha256(records[0]))
    return records, digests


def header(name, chunk_size, file_size, chunk_count, seconds, nanoseconds, root):
    name = name.encode()
    length = (88 + len(name) + 7) // 8 * 8 + 32
    body = b"CHAINFS\0" + struct.pack(
        "<HHIQQQqIHH", 1, 1, length, chunk_size, file_size, chunk_count,
        seconds, nanoseconds, len(name), 0) + root + name
    body += bytes(length - 32 - len(body))
    return body + sha256(body)


def hexdump(data):
    for offset in range(0, len(data), 16):
        row = data[offset:offset + 16]
        text = "".join(chr(b) if 0x20 <= b < 0x7f else "." for b in row)
        print(f"{offset:08x}: {' '.join(f'{b:02x}' for b in row):<47}  {text}")


def show(title, data, chunk_size):
    records, digests = chain(data, chunk_size)
    print(f"{title}: {len(data)} bytes, chunk size {chunk_size}, chunk count {len(records)}")
    for index, digest in enumerate(digests):
        print(f"  h_{index} = {digest.hex()}")
    print(f"  root = {digests[0].hex()}\n")


show("(a) empty file", b"", 1024)
show("(b) one byte 00", pattern(1), 1024)
show("(c) pattern", pattern(3000), 1024)
show("(d) pattern", pattern(3000), 1000)
for size in (1023, 1024, 1025, 2048, 2049):
    show("(e) pattern", pattern(size), 1024)

records, digests = chain(pattern(3000), 1024)
print("(f) record 0 of (c) alone, read as one 1056-byte chunk, has the same root:")
print(f"  SHA-256(record 0) = {sha256(records[0]).hex()}\n")

seconds, nanoseconds, chunk_size = 1700000000, 500000000, 4
records, digests = chain(b"hello", chunk_size)
meta = header("hello.txt", chunk_size, 5, len(records), seconds, nanoseconds, digests[0])
archive = meta + b"".join(records)
print(f"(g) archive of 'hello' as hello.txt, chunk size {chunk_size}, "
      f"mtime {seconds}.{nanoseconds:09d}: {len(archive)} bytes")
for index, digest in enumerate(digests):
    print(f"  h_{index} = {digest.hex()}")
print(f"  header checksum = {meta[-32:].hex()}")
hexdump(archive)
if len(sys.argv) > 1:
    with open(sys.argv[1], "wb") as out:
        out.write(archive)
