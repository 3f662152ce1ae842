//! The swarm's three parts as one: the built-in tracker, the seeder, and the other replicas
//! (`[cluster]`), each there only when configured. What the rest of the sidecar tells the
//! swarm — a torrent was served, a sibling described one — goes through here, once.

use std::sync::Arc;

use crate::cluster::{Cluster, Frame};
use crate::seeder::siblings::torrent_frame;
use crate::seeder::Seeder;
use crate::torrent::Torrent;
use crate::tracker::Tracker;

#[derive(Clone, Default)]
pub struct Swarm {
    pub tracker: Option<Arc<Tracker>>,
    pub seeder: Option<Arc<Seeder>>,
    pub cluster: Option<Arc<Cluster>>,
}

impl Swarm {
    /// A torrent was served here: peers may announce it to this tracker, and every replica's
    /// tracker learns it too (the seeder adds the seed once it seeds it).
    pub fn served(&self, torrent: &Torrent) {
        let ids = torrent.swarm_ids();
        if let Some(tracker) = &self.tracker {
            for id in &ids {
                tracker.register(*id);
            }
        }
        if let Some(cluster) = &self.cluster {
            cluster.spread_torrent(torrent_frame(&ids, None));
        }
    }

    /// A sibling told us of a torrent (a `torrent` frame): tracked here, seeded if the frame
    /// describes a seed, and kept for replicas that join later.
    pub fn learned(&self, frame: &Frame) {
        if let (Some(tracker), Some(ids)) = (&self.tracker, frame.list("ids")) {
            for id in ids.iter().filter_map(|v| v.as_bytes()) {
                if let Ok(id) = <[u8; 20]>::try_from(id) {
                    tracker.register(id);
                }
            }
        }
        if let Some(seeder) = &self.seeder {
            seeder.learn(frame);
        }
        if let Some(cluster) = &self.cluster {
            cluster.remember_torrent(frame);
        }
    }
}
