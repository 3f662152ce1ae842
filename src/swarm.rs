//! The swarm's three parts as one: the built-in tracker, the seeder, and the other replicas
//! (`[cluster]`), each there only when configured. What the rest of the sidecar tells the
//! swarm — a torrent was served, a sibling described one — goes through here, once.

use std::sync::Arc;

use crate::cluster::{Cluster, Message};
use crate::seeder::siblings::torrent_message;
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
            cluster.spread_torrent(torrent_message(&ids, None));
        }
    }

    /// A sibling told us of a torrent (a `Torrent` message): tracked here, seeded if the
    /// message describes a seed, and kept for replicas that join later.
    pub fn learned(&self, message: &Message) {
        let Message::Torrent { ids, seed } = message else {
            return;
        };
        if let Some(tracker) = &self.tracker {
            for id in ids {
                tracker.register(*id);
            }
        }
        if let (Some(seeder), Some(seed)) = (&self.seeder, seed) {
            seeder.learn(seed);
        }
        if let Some(cluster) = &self.cluster {
            cluster.remember_torrent(message);
        }
    }
}
