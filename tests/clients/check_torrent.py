#!/usr/bin/env python3
"""Independent torrent check with libtorrent: parse TORRENT with lt.torrent_info and compare
every piece hash with SHA-1 of the corresponding bytes of DATA.

Usage: check_torrent.py TORRENT DATA   → prints JSON {name, length, piece_length, pieces,
info_hash, bad_pieces}; exits 1 if libtorrent rejects the file.
"""
import hashlib
import json
import sys

import libtorrent as lt

torrent_path, data_path = sys.argv[1:3]
ti = lt.torrent_info(torrent_path)
with open(data_path, "rb") as f:
    data = f.read()
pl = ti.piece_length()
bad = [
    i
    for i in range(ti.num_pieces())
    if hashlib.sha1(data[i * pl : (i + 1) * pl]).digest() != bytes(ti.hash_for_piece(i))
]
files = ti.files()
print(
    json.dumps(
        {
            "name": ti.name(),
            "length": ti.total_size(),
            "data_length": len(data),
            "piece_length": pl,
            "pieces": ti.num_pieces(),
            "files": files.num_files(),
            "info_hash": str(ti.info_hash()),
            "bad_pieces": bad,
        }
    )
)
