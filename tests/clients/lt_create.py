#!/usr/bin/env python3
"""The oracle for torrent bytes: libtorrent's own create_torrent over a local file.

Usage: lt_create.py PATH PIECE_LENGTH FORMAT   (FORMAT: v1 | hybrid | v2)
Prints JSON {"info": hex of the bencoded info dict, "piece_layers": hex of the bencoded
`piece layers` dict or null}. The torrent's name is PATH's base name. A directory's files
are given to libtorrent in the byte order of their paths (S3's key order), not the
filesystem's (add_files would take readdir's order).
"""
import json
import os
import sys

import libtorrent as lt

path, piece_length, fmt = sys.argv[1], int(sys.argv[2]), sys.argv[3]
flags = {
    "v1": lt.create_torrent.v1_only,
    "hybrid": 0,
    "v2": lt.create_torrent.v2_only,
}[fmt]
fs = lt.file_storage()
if os.path.isdir(path):
    base = os.path.basename(os.path.abspath(path))
    found = []
    for top, _, names in os.walk(path):
        for n in names:
            full = os.path.join(top, n)
            found.append((os.path.relpath(full, path).replace(os.sep, "/").encode(), full))
    for rel, full in sorted(found):
        fs.add_file(base + "/" + rel.decode(), os.path.getsize(full))
else:
    lt.add_files(fs, path)
t = lt.create_torrent(fs, piece_length, flags=flags)
lt.set_piece_hashes(t, os.path.dirname(os.path.abspath(path)))
e = t.generate()
layers = e.get(b"piece layers")
print(
    json.dumps(
        {
            "info": lt.bencode(e[b"info"]).hex(),
            "piece_layers": lt.bencode(layers).hex() if layers is not None else None,
        }
    )
)
