#!/usr/bin/env python3
"""python3-libtorrent client for the integration tests (Debian's python3-libtorrent 2.0).
DHT, LSD, UPnP and NAT-PMP are off; everything stays on 127.0.0.1. Prints one JSON object.

  lt_client.py download TORRENT|MAGNET SAVE_DIR TIMEOUT
      fetch with whatever the torrent offers (web seed, tracker peers); report completion
      and hash failures (a corrupted source is detected, not written as good data)
  lt_client.py swarm TORRENT WORKDIR LEECHERS TIMEOUT [SEED_DATA]
      LEECHERS sessions (plus a seeder holding SEED_DATA, if given: seed mode, super-seeding
      with LT_SUPER_SEED=1) in one process, each on its own port, finding each other through
      the torrent's tracker; report each one's outcome

LT_ENCRYPTION=rc4 forces MSE/PE with an RC4 payload on every peer connection, in and out;
LT_ENCRYPTION=mse-plaintext forces the MSE handshake with a plaintext payload.
LT_PROGRESS=FILE appends a line on the swarm every 2 s (progress spread, rates, peers).
The process ends with os._exit once its JSON is out: libtorrent's session teardown is slow
and nothing is left to do.
"""
import json
import os
import shutil
import sys
import time

import libtorrent as lt


def encryption():
    mode = os.environ.get("LT_ENCRYPTION")
    if not mode:
        return {}
    level = {"rc4": lt.enc_level.rc4, "mse-plaintext": lt.enc_level.plaintext}[mode]
    return {
        "out_enc_policy": int(lt.enc_policy.forced),
        "in_enc_policy": int(lt.enc_policy.forced),
        "allowed_enc_level": int(level),
        "prefer_rc4": mode == "rc4",
    }


def session():
    return lt.session(
        encryption()
        | {
            "listen_interfaces": "127.0.0.1:0",
            "enable_dht": False,
            "enable_lsd": False,
            "enable_upnp": False,
            "enable_natpmp": False,
            # Loopback web seeds with a query string (presigned URLs) are otherwise refused.
            "ssrf_mitigation": False,
            "allow_multiple_connections_per_ip": True,
            "announce_to_all_trackers": True,
            "alert_mask": lt.alert.category_t.error_notification
            | lt.alert.category_t.status_notification
            | lt.alert.category_t.peer_notification
            | lt.alert.category_t.connect_notification,
        }
    )


def add(ses, torrent, save_path, flags=None):
    # A magnet link (metadata then comes from peers, BEP 9) or a .torrent file.
    if torrent.startswith("magnet:"):
        atp = lt.parse_magnet_uri(torrent)
    else:
        atp = lt.add_torrent_params()
        atp.ti = lt.torrent_info(torrent)
    atp.save_path = save_path
    if flags is not None:
        atp.flags |= flags
    return ses.add_torrent(atp)


def drain(ses, counters):
    for a in ses.pop_alerts():
        if isinstance(a, lt.hash_failed_alert):
            counters["hash_failures"] += 1
        elif isinstance(a, (lt.url_seed_alert, lt.tracker_error_alert)):
            counters["errors"].append(a.message())
        elif isinstance(a, (lt.peer_disconnected_alert, lt.file_error_alert)):
            # Why libtorrent itself left a peer: shown when a download stalls.
            counters.setdefault("disconnects", []).append(a.message())


def download(torrent, save, timeout):
    ses = session()
    h = add(ses, torrent, save)
    counters = {"hash_failures": 0, "errors": []}
    deadline = time.time() + timeout
    while time.time() < deadline:
        drain(ses, counters)
        if h.status().is_seeding:
            break
        time.sleep(0.1)
    s = h.status()
    drain(ses, counters)
    out = {
        "finished": bool(s.is_seeding),
        "progress": s.progress,
        "hash_failures": counters["hash_failures"],
        "errors": counters["errors"][:5],
        "seconds": round(timeout - max(0.0, deadline - time.time()), 2),
    }
    if not s.is_seeding or os.environ.get("LT_DEBUG"):
        out["state"] = str(s.state)
        out["disconnects"] = counters.get("disconnects", [])[-10:]
        out["peers"] = [peer_summary(p) for p in h.get_peer_info()]
    return out


def peer_summary(p):
    """A connected peer as libtorrent sees it: whether each side wants the other, choking."""
    flags = {
        "interesting": lt.peer_info.interesting,
        "choked": lt.peer_info.choked,
        "remote_interested": lt.peer_info.remote_interested,
        "remote_choked": lt.peer_info.remote_choked,
        "seed": lt.peer_info.seed,
        "snubbed": lt.peer_info.snubbed,
    }
    return {
        "ip": "%s:%d" % tuple(p.ip),
        "client": p.client.decode("utf-8", "replace") if isinstance(p.client, bytes) else p.client,
        "pieces": sum(1 for b in p.pieces if b),
        "flags": [n for n, f in flags.items() if p.flags & f],
        "download_queue": p.download_queue_length,
    }


def swarm(torrent, work, leechers, timeout, seed_data=None):
    info = lt.torrent_info(torrent)
    peers = []
    if seed_data:
        d = os.path.join(work, "seeder")
        os.makedirs(d, exist_ok=True)
        shutil.copyfile(seed_data, os.path.join(d, info.name()))
        ses = session()
        # It has the bytes: no check of the file before it seeds (as the sidecar's seeder
        # needs none), and BEP 16 super-seeding with LT_SUPER_SEED=1.
        flags = lt.torrent_flags.seed_mode
        if os.environ.get("LT_SUPER_SEED") == "1":
            flags |= lt.torrent_flags.super_seeding
        peers.append(("seeder", ses, add(ses, torrent, d, flags)))
    for i in range(leechers):
        d = os.path.join(work, f"leecher{i}")
        os.makedirs(d, exist_ok=True)
        ses = session()
        peers.append((f"leecher{i}", ses, add(ses, torrent, d)))
    counters = {"hash_failures": 0, "errors": []}
    started = time.time()
    deadline = started + timeout
    progress_log = os.environ.get("LT_PROGRESS")
    next_report = started
    finished_at = {}
    while time.time() < deadline:
        for name, ses, h in peers:
            drain(ses, counters)
            if name not in finished_at and h.status().is_seeding:
                finished_at[name] = round(time.time() - started, 2)
        if len(finished_at) == len(peers):
            break
        if progress_log and time.time() >= next_report:
            next_report += 2
            report(progress_log, started, peers)
        time.sleep(0.2)
    out = {}
    for name, ses, h in peers:
        s = h.status()
        out[name] = {
            "finished": bool(s.is_seeding),
            "progress": s.progress,
            "payload_from_peers": s.total_payload_download - s.total_wanted_done * 0,
            "num_peers": s.num_peers,
            "finished_at": finished_at.get(name),
        }
    return {
        "peers": out,
        "hash_failures": counters["hash_failures"],
        "errors": counters["errors"][:5],
        "seconds": round(min(time.time(), deadline) - started, 2),
    }


def report(path, started, peers):
    """One line of how the crowd is doing (LT_PROGRESS=FILE): progress spread, rates, peers."""
    st = [h.status() for _, _, h in peers]
    progress = sorted(round(s.progress, 3) for s in st)
    line = {
        "t": round(time.time() - started, 1),
        "done": sum(s.is_seeding for s in st),
        "progress_min_med_max": [progress[0], progress[len(progress) // 2], progress[-1]],
        "down_MBps": round(sum(s.download_payload_rate for s in st) / 1e6, 1),
        "up_MBps": round(sum(s.upload_payload_rate for s in st) / 1e6, 1),
        "peers_avg": round(sum(s.num_peers for s in st) / len(st), 1),
        "seeds_avg": round(sum(s.num_seeds for s in st) / len(st), 1),
        "uploads_avg": round(sum(s.num_uploads for s in st) / len(st), 1),
    }
    with open(path, "a") as f:
        f.write(json.dumps(line) + "\n")


def main():
    cmd = sys.argv[1]
    if cmd == "download":
        torrent, save, timeout = sys.argv[2], sys.argv[3], float(sys.argv[4])
        print(json.dumps(download(torrent, save, timeout)))
    elif cmd == "swarm":
        torrent, work, n, timeout = sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
        seed = sys.argv[6] if len(sys.argv) > 6 else None
        print(json.dumps(swarm(torrent, work, n, timeout, seed)))
    else:
        raise SystemExit(f"unknown command {cmd}")
    # The outcome is out: skip the sessions' destructors. Each one joins its threads after
    # its trackers' "stopped" announces and its files' flush; a crowd of 32 on 256 MiB spent
    # two minutes there, after a transfer of 68 s, and that was counted as the crowd's time.
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
