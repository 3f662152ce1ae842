//! `[cluster]`: several replicas behind one Service acting as one sidecar (one swarm, one
//! copy from the origin). Membership lives in the store bucket; what differs per pod comes
//! from the downward API as environment variables.

use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

use super::values::Seconds;

/// The pod's IP (downward API `status.podIP`): where siblings reach this replica.
pub const ENV_POD_IP: &str = "S3TORRENT_POD_IP";
/// The pod's name (downward API `metadata.name`): this replica's name among its siblings.
pub const ENV_POD_NAME: &str = "S3TORRENT_POD_NAME";

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    pub enabled: bool,
    /// The sibling port: replica-to-replica traffic only (authenticated frames, relayed peer
    /// connections). Reached at pod addresses; no Service needs to expose it.
    pub listen: SocketAddr,
    /// This pod's IP; `S3TORRENT_POD_IP` overrides it.
    pub pod_ip: Option<IpAddr>,
    /// This pod's name; `S3TORRENT_POD_NAME` overrides it.
    pub pod_name: String,
    /// How often a replica says it is alive (and reads who else is).
    pub heartbeat: Seconds,
    /// A replica not heard of for this long is gone: its torrents move to the others.
    pub member_ttl: Seconds,
    /// Sibling connections served at once; more wait in the kernel's backlog.
    pub max_connections: usize,
    /// Bytes of sibling messages buffered at once, over every sibling connection (a
    /// message's head is authenticated before its body is read into this budget). A message
    /// larger than this is refused.
    pub max_buffered_bytes: usize,
    /// Peer connections one replica may relay to this one at once (of `seeder.max_peers`):
    /// no entry replica takes every slot of an owner.
    pub max_relayed_per_replica: usize,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            enabled: false,
            listen: SocketAddr::from(([0, 0, 0, 0], 7881)),
            pod_ip: None,
            pod_name: String::new(),
            heartbeat: Seconds(3),
            member_ttl: Seconds(10),
            max_connections: 512,
            max_buffered_bytes: 32 << 20,
            max_relayed_per_replica: 100,
        }
    }
}
