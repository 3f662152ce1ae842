//! One peer connection: handshake, then the BEP 3 message loop with BEP 6 (have-none,
//! reject), BEP 10/9 (`ut_metadata`, so a magnet link suffices) and BEP 52 (hash requests,
//! so a v2 magnet link suffices too). Pieces are revealed with
//! `have` one at a time (see `torrents`); requests are queued (bounded) and answered from the
//! piece store while the peer is unchoked. Anything malformed or out of range closes this
//! connection and nothing else.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;

use crate::config::Encryption;
use crate::torrent::bencode::{self, Value};

use super::bitset::BitSet;
use super::conn::{PeerIo, PeerReader, PeerWriter};
use super::mse;
use super::outbox::Outbox;
use super::torrents::SeedTorrent;
use super::wire::{
    Block, Handshake, HashRequest, Message, EXTENSION_BIT, FAST_BIT, HANDSHAKE_LEN, MAX_BLOCK,
    V2_BIT,
};
use super::Seeder;

/// Requests a peer may have queued with us; more is a flood.
const MAX_QUEUE: usize = 256;
/// Encoded messages waiting for a peer to read them; a peer that lets more pile up (by
/// asking for much while reading nothing) is cut off. Covers every message kind.
const MAX_OUT: usize = 1 << 20;
/// Encoded blocks written out once this many bytes wait.
const FLUSH_AT: usize = 256 * 1024;
/// `ut_metadata` pieces queued for a peer and not yet written; later requests meanwhile
/// get a reject.
const MAX_METADATA_OUT: usize = 4;
/// The smallest block served, except a piece's last (clients ask for 16 KiB).
const MIN_BLOCK: u32 = 16 * 1024;
/// A peer that gained nothing from the swarm for this long is kept a few pieces ahead with
/// pieces others claim to have too (claims can be lies).
const STARVED_AFTER: Duration = Duration::from_secs(5);
/// Pieces shown to a peer ahead of what it has fetched.
const REVEAL_AHEAD: u32 = 4;
/// Reveals a peer's unlikely claims may earn per tick: a `have` of a piece we showed it that
/// has not left the origin (nobody could have given it the piece). Each reveal costs a scan
/// of the torrent's pieces, and a peer echoing every `have` would otherwise make the seeder
/// scan all of them once per piece. Claims of pieces that did leave the origin (a swarm
/// trading them) are not limited.
const CLAIMED_REVEALS_PER_TICK: u32 = 32;
/// Bytes a peer must take for each byte of backend debt it may carry beyond the first few
/// pieces.
const DEBT_CREDIT: u64 = 8;
/// BEP 9 metadata pieces are 16 KiB.
const METADATA_PIECE: usize = 16 * 1024;
/// Our id for `ut_metadata` in the extension handshake.
const UT_METADATA: u8 = 1;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const IDLE_TIMEOUT: Duration = Duration::from_secs(180);
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
const KEEPALIVE: Duration = Duration::from_secs(90);
const TICK: Duration = Duration::from_secs(2);
/// An unchoked peer keeps its slot at least this long before a waiting peer may take it.
const UNCHOKE_TERM: Duration = Duration::from_secs(20);
/// While slots are short, a peer that has taken no block for this long makes room.
const TAKES_NOTHING: Duration = Duration::from_secs(20);

#[derive(Debug)]
pub enum PeerError {
    Io(std::io::Error),
    Timeout,
    Protocol(&'static str),
}

impl std::fmt::Display for PeerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PeerError::Io(e) => write!(f, "i/o: {e}"),
            PeerError::Timeout => f.write_str("timed out"),
            PeerError::Protocol(why) => f.write_str(why),
        }
    }
}

impl From<std::io::Error> for PeerError {
    fn from(e: std::io::Error) -> Self {
        PeerError::Io(e)
    }
}

pub async fn serve(mut stream: TcpStream, seeder: Arc<Seeder>) -> Result<(), PeerError> {
    // Up to the infohash first: some clients (Transmission) send their peer id only after
    // they have seen ours.
    let mut head = [0u8; 48];
    tokio::time::timeout(HANDSHAKE_TIMEOUT, stream.read_exact(&mut head))
        .await
        .map_err(|_| PeerError::Timeout)??;
    let handshakes = &seeder.metrics.handshakes;
    let policy = seeder.config.encryption;
    if Handshake::parse_head(&head).is_some() {
        if policy == Encryption::Required {
            handshakes.refused.inc();
            return Err(PeerError::Protocol(
                "a plaintext handshake; encryption is required",
            ));
        }
        handshakes.plaintext.inc();
        return route(stream, head, seeder).await;
    }
    if policy == Encryption::Plaintext {
        handshakes.refused.inc();
        return Err(PeerError::Protocol(
            "not a BitTorrent handshake (encryption is off)",
        ));
    }
    // Anything else is an MSE/PE handshake, or noise.
    let payload = match policy {
        Encryption::Required => mse::Payload::Rc4,
        _ => mse::Payload::Either,
    };
    let (reader, writer) = stream.into_split();
    let registry = &seeder.registry;
    let encrypted = async {
        let mut s = mse::accept(reader, writer, &head, |n| registry.named_by(n), payload)
            .await
            .map_err(|e| PeerError::Protocol(e.0))?;
        let mut head = [0u8; 48];
        s.read_exact(&mut head).await?;
        Ok::<_, PeerError>((s, head))
    };
    let (stream, head) = match tokio::time::timeout(HANDSHAKE_TIMEOUT, encrypted).await {
        Ok(Ok(done)) => done,
        Ok(Err(e)) => {
            handshakes.refused.inc();
            return Err(e);
        }
        Err(_) => {
            handshakes.refused.inc();
            return Err(PeerError::Timeout);
        }
    };
    match stream.is_rc4() {
        true => handshakes.rc4.inc(),
        false => handshakes.mse_plaintext.inc(),
    }
    route(stream, head, seeder).await
}

/// Hands the connection, its handshake read up to the infohash, to the torrent's owner.
async fn route<S: PeerIo>(
    mut stream: S,
    head: [u8; 48],
    seeder: Arc<Seeder>,
) -> Result<(), PeerError> {
    // A torrent another replica owns is that replica's to serve: the whole connection goes
    // (an encrypted one decrypted: the sibling speaks plaintext to us).
    if let Some(cluster) = seeder.cluster() {
        // Owned by its primary id: a hybrid's v1 and v2 peers go to one owner.
        let named = Handshake::parse_head(&head).map(|h| h.info_hash);
        let info_hash = named.map(|id| seeder.registry.get(&id).map_or(id, |t| t.info_hash));
        if let Some((ih, owner)) = info_hash.and_then(|ih| Some((ih, cluster.owner_of(&ih)?))) {
            match seeder.relay(cluster, &owner, stream, head, ih).await {
                Ok(()) => return Ok(()),
                Err(back) => stream = back,
            }
        }
    }
    serve_after_head(stream, head, seeder).await
}

/// A peer connection whose handshake was read up to the infohash (`head`).
pub async fn serve_after_head<S: PeerIo>(
    mut stream: S,
    head: [u8; 48],
    seeder: Arc<Seeder>,
) -> Result<(), PeerError> {
    let mut theirs = [0u8; HANDSHAKE_LEN];
    theirs[..48].copy_from_slice(&head);
    let Some(head) = Handshake::parse(&theirs) else {
        return Err(PeerError::Protocol("not a BitTorrent handshake"));
    };
    let torrent = seeder
        .registry
        .get(&head.info_hash)
        .ok_or(PeerError::Protocol("a torrent this seeder does not have"))?;
    let mut reserved = [0u8; 8];
    reserved[EXTENSION_BIT.0] |= EXTENSION_BIT.1;
    reserved[FAST_BIT.0] |= FAST_BIT.1;
    // A v2 connection: named by the v2 id, or a hybrid's v1 one from a peer that can
    // upgrade (BEP 52), which our answer with the v2 id does.
    let v2 = torrent
        .v2_id
        .filter(|v2| *v2 == head.info_hash || head.has(V2_BIT));
    let ours = Handshake {
        reserved,
        info_hash: v2.unwrap_or(head.info_hash),
        peer_id: seeder.peer_id,
    };
    stream.write_all(&ours.encode()).await?;
    stream.flush().await?;
    tokio::time::timeout(HANDSHAKE_TIMEOUT, stream.read_exact(&mut theirs[48..]))
        .await
        .map_err(|_| PeerError::Timeout)??;
    let theirs = Handshake::parse(&theirs).ok_or(PeerError::Protocol("bad handshake"))?;
    tracing::debug!(
        target: "s3torrent::seeder",
        client = %String::from_utf8_lossy(&theirs.peer_id[..8]),
        fast = theirs.has(FAST_BIT),
        extensions = theirs.has(EXTENSION_BIT),
        "peer joined"
    );
    let (mut reader, writer) = stream.into_halves();
    let n = torrent.num_pieces();
    let mut peer = Peer {
        seeder,
        torrent,
        writer,
        out: Outbox::default(),
        fast: theirs.has(FAST_BIT),
        v2: v2.is_some(),
        their_metadata_id: None,
        has: BitSet::new(n),
        shown: BitSet::new(n),
        sent: HashMap::new(),
        queue: VecDeque::new(),
        interested: false,
        slot: None,
        unchoked_at: Instant::now(),
        waiting: false,
        salt: u32::from_be_bytes(theirs.peer_id[16..20].try_into().expect("4 bytes")),
        last_heard: Instant::now(),
        last_sent: Instant::now(),
        last_swarm_gain: Instant::now(),
        metadata_out: 0,
        backend_debt: 0,
        taken: 0,
        last_took: Instant::now(),
        claimed_reveals: 0,
    };
    if theirs.has(EXTENSION_BIT) {
        peer.send(&Message::Extended(0, peer.extension_handshake()));
    }
    if peer.fast {
        peer.send(&Message::HaveNone);
    }
    for _ in 0..REVEAL_AHEAD {
        peer.reveal_next();
    }
    peer.flush().await?;
    let result = peer.run(&mut reader).await;
    peer.stop_waiting();
    peer.torrent.note_gone(&peer.has);
    tracing::debug!(
        target: "s3torrent::seeder",
        has = peer.has.count(),
        shown = peer.shown.count(),
        unchoked = peer.slot.is_some(),
        interested = peer.interested,
        "peer left"
    );
    result
}

/// A piece (and whether the backend was read for it), or why not.
type PieceRead = Result<(Bytes, bool), crate::s3::S3Error>;

/// A piece on its way for a peer's requests.
struct Fetch {
    index: u32,
    piece: std::pin::Pin<Box<dyn std::future::Future<Output = PieceRead> + Send>>,
}

struct Peer {
    seeder: Arc<Seeder>,
    torrent: Arc<SeedTorrent>,
    writer: PeerWriter,
    /// Messages not yet written (blocks as slices of their pieces).
    out: Outbox,
    fast: bool,
    /// A v2 connection: hash requests are answered.
    v2: bool,
    their_metadata_id: Option<u8>,
    /// Pieces the peer says it has.
    has: BitSet,
    /// Pieces we showed it (`have`).
    shown: BitSet,
    /// Bytes sent of each piece in progress, to know when a piece has left whole.
    sent: HashMap<u32, u32>,
    queue: VecDeque<Block>,
    interested: bool,
    /// An unchoke slot, while unchoked.
    slot: Option<OwnedSemaphorePermit>,
    unchoked_at: Instant,
    /// Interested and choked: counted among the peers waiting for a slot.
    waiting: bool,
    salt: u32,
    last_heard: Instant,
    last_sent: Instant,
    /// When the peer last got a piece we had not shown it: the swarm is feeding it.
    last_swarm_gain: Instant,
    /// `ut_metadata` pieces in `out`.
    metadata_out: usize,
    /// Backend bytes read for this peer and not yet sent to it: what a peer asking for a
    /// block of each piece it is shown, and taking no more, costs the origin.
    backend_debt: u64,
    /// Block bytes sent to it: each `DEBT_CREDIT` of them allows a byte more of debt.
    taken: u64,
    /// When it was last sent a block (or joined).
    last_took: Instant,
    /// Reveals its unlikely claims earned this tick.
    claimed_reveals: u32,
}

impl Peer {
    async fn run(&mut self, reader: &mut PeerReader) -> Result<(), PeerError> {
        let mut inbox = BytesMut::with_capacity(64 * 1024);
        let mut tick = tokio::time::interval(TICK);
        let mut stopping = self.seeder.stopping();
        // The piece the oldest queued request needs, coming from the cache or the backend
        // while the peer's messages (cancels, haves, more requests) go on being read.
        let mut fetching: Option<Fetch> = None;
        loop {
            if self.torrent.is_retired() {
                return Err(PeerError::Protocol("the object changed; torrent retired"));
            }
            // Shutting down: nothing new for this peer; what is queued is written, then
            // the connection closes.
            if *stopping.borrow() {
                return Ok(());
            }
            if fetching.is_none() && self.slot.is_some() {
                fetching = self.queue.front().map(|b| self.fetch(b.index));
            }
            tokio::select! {
                biased;
                read = reader.read_buf(&mut inbox) => {
                    if read? == 0 {
                        return Ok(());
                    }
                    self.last_heard = Instant::now();
                    while let Some(message) = Message::decode(&mut inbox)
                        .map_err(|_| PeerError::Protocol("malformed message"))?
                    {
                        self.handle(message)?;
                        if self.out.len() > MAX_OUT {
                            return Err(PeerError::Protocol("the peer does not read what it asks for"));
                        }
                    }
                }
                piece = async { fetching.as_mut().expect("guarded").piece.as_mut().await },
                    if fetching.is_some() =>
                {
                    let index = fetching.take().expect("guarded").index;
                    self.serve_piece(index, piece).await?;
                }
                _ = tick.tick() => self.on_tick()?,
                _ = stopping.changed() => {}
            }
            self.flush().await?;
        }
    }

    /// Queues a message; `flush` writes what is queued.
    fn send(&mut self, message: &Message) {
        self.out.push(message);
    }

    async fn flush(&mut self) -> Result<(), PeerError> {
        if self.out.is_empty() {
            return Ok(());
        }
        // Flushed too: an encrypting writer may hold the tail of what it took.
        let write = async {
            self.out.write_to(&mut self.writer).await?;
            self.writer.flush().await
        };
        tokio::time::timeout(WRITE_TIMEOUT, write)
            .await
            .map_err(|_| PeerError::Timeout)??;
        self.last_sent = Instant::now();
        self.metadata_out = 0;
        Ok(())
    }

    fn handle(&mut self, message: Message) -> Result<(), PeerError> {
        let n = self.torrent.num_pieces();
        match message {
            Message::Interested => {
                self.interested = true;
                self.try_unchoke();
            }
            Message::NotInterested => {
                self.interested = false;
                self.stop_waiting();
                self.choke();
            }
            Message::Request(block) => self.enqueue(block)?,
            Message::Cancel(block) => self.queue.retain(|b| *b != block),
            Message::Have(index) => {
                if index >= n {
                    return Err(PeerError::Protocol("have out of range"));
                }
                self.learn_has(index);
            }
            Message::Bitfield(bits) => {
                let has =
                    BitSet::from_bitfield(&bits, n).ok_or(PeerError::Protocol("bad bitfield"))?;
                for i in (0..n).filter(|&i| has.get(i)) {
                    self.learn_has(i);
                }
            }
            // A seed: counted in the swarm like any bitfield (and uncounted when it leaves),
            // and shown nothing more.
            Message::HaveAll => {
                for i in 0..n {
                    self.note_has(i);
                }
            }
            Message::Extended(0, payload) => {
                self.their_metadata_id = bencode::decode(&payload).ok().and_then(|v| {
                    let id = v.get("m")?.get("ut_metadata")?.as_int()?;
                    u8::try_from(id).ok().filter(|id| *id != 0)
                });
            }
            Message::Extended(UT_METADATA, payload) => self.metadata_request(&payload)?,
            Message::HashRequest(request) => self.hash_request(request),
            // A seed needs nothing from peers: pieces, chokes, ports and unknown extension
            // messages are ignored.
            _ => {}
        }
        Ok(())
    }

    fn enqueue(&mut self, block: Block) -> Result<(), PeerError> {
        let n = self.torrent.num_pieces();
        let fits = block.index < n
            && block.length > 0
            && block.length <= MAX_BLOCK
            && u64::from(block.begin) + u64::from(block.length)
                <= u64::from(self.torrent.piece_size(block.index));
        if !fits {
            return Err(PeerError::Protocol("request out of range"));
        }
        // Only what we showed it: every piece it may ask for costs at most one backend read
        // until it takes the whole piece. Tiny blocks would turn one read into many.
        if !self.shown.get(block.index) {
            return Err(PeerError::Protocol("request for a piece not offered"));
        }
        let last_block = block.begin + block.length == self.torrent.piece_size(block.index);
        if block.length < MIN_BLOCK && !last_block {
            return Err(PeerError::Protocol("request too small"));
        }
        if self.slot.is_none() {
            // Choked: BEP 6 says reject; without it the request is simply dropped.
            if self.fast {
                self.send(&Message::Reject(block));
            }
            return Ok(());
        }
        if self.queue.len() >= MAX_QUEUE {
            return Err(PeerError::Protocol("request flood"));
        }
        self.queue.push_back(block);
        Ok(())
    }

    fn fetch(&self, index: u32) -> Fetch {
        let (pieces, torrent) = (self.seeder.pieces.clone(), self.torrent.clone());
        Fetch {
            index,
            piece: Box::pin(async move { pieces.piece(&torrent, index).await }),
        }
    }

    /// Sends every block still asked for of piece `index`, now that it is here.
    async fn serve_piece(&mut self, index: u32, piece: PieceRead) -> Result<(), PeerError> {
        let (piece, read) = piece.map_err(|_| PeerError::Protocol("piece unavailable"))?;
        if read {
            // The origin's bytes count against the limits, not only the bytes sent.
            self.backend_debt += piece.len() as u64;
            self.seeder.limiter.take(piece.len() as u32).await;
            // A peer that has taken much may leave a little more unread (an honest client
            // cancels blocks it got elsewhere, in its endgame); one that takes nothing may
            // leave a few pieces.
            let allowed = u64::from(REVEAL_AHEAD + 2) * self.torrent.layout.piece_length()
                + self.taken / DEBT_CREDIT;
            if self.backend_debt > allowed {
                return Err(PeerError::Protocol(
                    "the peer takes little of what it asks for",
                ));
            }
        }
        // Cancelled meanwhile, or choked: nothing (the piece stays cached for others).
        let (now, later): (VecDeque<Block>, VecDeque<Block>) = std::mem::take(&mut self.queue)
            .into_iter()
            .partition(|b| b.index == index);
        self.queue = later;
        for block in now {
            self.backend_debt = self.backend_debt.saturating_sub(u64::from(block.length));
            self.taken += u64::from(block.length);
            self.last_took = Instant::now();
            let (begin, end) = (block.begin as usize, (block.begin + block.length) as usize);
            self.seeder.limiter.take(block.length).await;
            self.send(&Message::Piece {
                index: block.index,
                begin: block.begin,
                data: piece.slice(begin..end),
            });
            let metrics = &self.seeder.metrics;
            metrics.uploaded_bytes.inc_by(u64::from(block.length));
            let sent = self.sent.entry(block.index).or_default();
            *sent += block.length;
            if *sent >= self.torrent.piece_size(block.index) {
                self.sent.remove(&block.index);
                self.torrent.note_uploaded(block.index);
                metrics.pieces_served.inc();
                self.reveal_next();
            }
            // A large piece's blocks go out as they are encoded, not all held at once.
            if self.out.len() >= FLUSH_AT {
                self.flush().await?;
            }
        }
        Ok(())
    }

    fn learn_has(&mut self, index: u32) {
        if !self.note_has(index) {
            return;
        }
        if !self.shown.get(index) {
            self.last_swarm_gain = Instant::now();
            return;
        }
        // It has a piece we showed it (from us or someone else): show another. A claim no
        // one could have fed is taken within the tick's budget (past it, the tick keeps the
        // peer a few pieces ahead).
        if !self.torrent.has_left_origin(index) {
            if self.claimed_reveals >= CLAIMED_REVEALS_PER_TICK {
                return;
            }
            self.claimed_reveals += 1;
        }
        self.reveal_next();
    }

    /// Records that the peer has `index`, counted in the swarm; `false` if it was known.
    fn note_has(&mut self, index: u32) -> bool {
        if self.has.get(index) {
            return false;
        }
        self.has.set(index);
        self.torrent.note_seen(index);
        true
    }

    /// Shows the next piece. Normally only pieces the swarm lacks (see `torrents`); but a
    /// peer the swarm has not fed for a while is kept a few pieces ahead anyway: what other
    /// peers claim to have (a bitfield can lie) never stalls it.
    fn reveal_next(&mut self) {
        // Not "interested": a peer shown nothing it lacks has no reason to be.
        let starved = self.has.count() < self.torrent.num_pieces()
            && self.last_swarm_gain.elapsed() >= STARVED_AFTER
            && self.shown.count_not_in(&self.has) < REVEAL_AHEAD;
        let (pieces, torrent) = (&self.seeder.pieces, &self.torrent);
        let pick = torrent.pick_reveal(&self.has, &self.shown, self.salt, starved, || {
            pieces.cached(torrent)
        });
        let Some(i) = pick else { return };
        self.shown.set(i);
        // The last piece shown makes us a seed to the peer. libtorrent 2.0 checks a `have`
        // that does so for a redundant connection before it updates its interest: a peer
        // with every other piece we showed drops us (and stays away for a minute). HAVE ALL
        // updates the interest first.
        if self.fast && self.shown.count() == self.torrent.num_pieces() {
            self.send(&Message::HaveAll);
        } else {
            self.send(&Message::Have(i));
        }
    }

    fn try_unchoke(&mut self) {
        if self.slot.is_some() || !self.interested {
            return;
        }
        match self.seeder.unchoke_slots.clone().try_acquire_owned() {
            Ok(permit) => {
                self.stop_waiting();
                self.slot = Some(permit);
                self.unchoked_at = Instant::now();
                self.send(&Message::Unchoke);
            }
            Err(_) => {
                if !self.waiting {
                    self.waiting = true;
                    self.seeder.waiting_for_slot(1);
                }
            }
        }
    }

    fn choke(&mut self) {
        if self.slot.take().is_none() {
            return;
        }
        self.send(&Message::Choke);
        // Queued requests die with the unchoke; BEP 6 peers are told so.
        for block in std::mem::take(&mut self.queue) {
            if self.fast {
                self.send(&Message::Reject(block));
            }
        }
    }

    fn stop_waiting(&mut self) {
        if self.waiting {
            self.waiting = false;
            self.seeder.waiting_for_slot(-1);
        }
    }

    /// Keep-alive, idle timeout, and unchoke rotation: a peer that has had its slot for a
    /// term gives it up while others wait, and waiting peers try for a free one.
    fn on_tick(&mut self) -> Result<(), PeerError> {
        self.claimed_reveals = 0;
        if self.last_heard.elapsed() > IDLE_TIMEOUT {
            return Err(PeerError::Timeout);
        }
        // Peers that download are preferred: one that holds a slot and takes nothing
        // (keep-alives alone) goes while others wait for a slot.
        if self.seeder.short_of_slots() && self.last_took.elapsed() > TAKES_NOTHING {
            self.seeder.refused("idle");
            return Err(PeerError::Protocol("took nothing while slots were short"));
        }
        if self.last_sent.elapsed() > KEEPALIVE {
            self.send(&Message::KeepAlive);
        }
        let others_wait = self.seeder.peers_waiting() > 0;
        if self.slot.is_some() && others_wait && self.unchoked_at.elapsed() > UNCHOKE_TERM {
            self.choke();
            // Back in line behind the ones already waiting.
            if self.interested && !self.waiting {
                self.waiting = true;
                self.seeder.waiting_for_slot(1);
            }
            return Ok(());
        }
        // The swarm changes (peers leave): keep a few pieces shown ahead of this peer.
        if self.shown.count_not_in(&self.has) < REVEAL_AHEAD {
            self.reveal_next();
        }
        self.try_unchoke();
        Ok(())
    }

    fn extension_handshake(&self) -> Bytes {
        let mut m = BTreeMap::new();
        m.insert(b"ut_metadata".to_vec(), Value::Int(i64::from(UT_METADATA)));
        let mut d = BTreeMap::new();
        d.insert(b"m".to_vec(), Value::Dict(m));
        d.insert(
            b"metadata_size".to_vec(),
            Value::Int(self.torrent.info.len() as i64),
        );
        d.insert(b"reqq".to_vec(), Value::Int(MAX_QUEUE as i64));
        d.insert(
            b"v".to_vec(),
            Value::bytes(concat!("s3torrent/", env!("CARGO_PKG_VERSION"))),
        );
        Bytes::from(Value::Dict(d).encode())
    }

    /// BEP 52: hashes of a file's tree from its piece layer up, with their proof; a reject
    /// for anything else (block hashes, ranges outside the tree, a v1 connection). The
    /// answer is at most 8192 hashes; a peer that asks for more than it reads is cut off
    /// like any (`MAX_OUT`).
    fn hash_request(&mut self, request: HashRequest) {
        let piece_length = self.torrent.layout.piece_length();
        let hashes = match self.v2 {
            true => self
                .torrent
                .v2_file(&request.root)
                .and_then(|f| f.answer(&request.range, piece_length)),
            false => None,
        };
        let counted = &self.seeder.metrics.hash_requests;
        match hashes {
            Some(hashes) => {
                counted.answered.inc();
                self.send(&Message::Hashes(request, Bytes::from(hashes.concat())));
            }
            None => {
                counted.rejected.inc();
                self.send(&Message::HashReject(request));
            }
        }
    }

    /// BEP 9: `{msg_type: 0, piece: n}` gets the piece of `info`, or a reject.
    fn metadata_request(&mut self, payload: &[u8]) -> Result<(), PeerError> {
        let Some(their_id) = self.their_metadata_id else {
            return Ok(());
        };
        let request =
            bencode::decode(payload).map_err(|_| PeerError::Protocol("bad ut_metadata"))?;
        let kind = request.get("msg_type").and_then(Value::as_int);
        let piece = request.get("piece").and_then(Value::as_int);
        let (Some(0), Some(piece)) = (kind, piece) else {
            return Ok(());
        };
        let info = self.torrent.info.clone();
        let start = usize::try_from(piece)
            .ok()
            .and_then(|p| p.checked_mul(METADATA_PIECE));
        let mut d = BTreeMap::new();
        d.insert(b"piece".to_vec(), Value::Int(piece));
        let room = self.metadata_out < MAX_METADATA_OUT;
        let reply = match start.filter(|&s| s < info.len() && room) {
            Some(start) => {
                self.metadata_out += 1;
                d.insert(b"msg_type".to_vec(), Value::Int(1));
                d.insert(b"total_size".to_vec(), Value::Int(info.len() as i64));
                let mut body = Value::Dict(d).encode();
                body.extend_from_slice(&info[start..(start + METADATA_PIECE).min(info.len())]);
                body
            }
            None => {
                d.insert(b"msg_type".to_vec(), Value::Int(2));
                Value::Dict(d).encode()
            }
        };
        self.send(&Message::Extended(their_id, Bytes::from(reply)));
        Ok(())
    }
}
