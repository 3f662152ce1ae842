//! A peer's byte stream, plaintext TCP or MSE-encrypted, and its split into the reader and
//! the writer a peer connection runs on.

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

use super::mse::Encrypted;

pub type PeerReader = Box<dyn AsyncRead + Send + Unpin>;
pub type PeerWriter = Box<dyn AsyncWrite + Send + Unpin>;

pub trait PeerIo: AsyncRead + AsyncWrite + Send + Unpin + 'static {
    fn into_halves(self) -> (PeerReader, PeerWriter);
}

impl PeerIo for TcpStream {
    fn into_halves(self) -> (PeerReader, PeerWriter) {
        let (r, w) = self.into_split();
        (Box::new(r), Box::new(w))
    }
}

impl PeerIo for Encrypted<OwnedReadHalf, OwnedWriteHalf> {
    fn into_halves(self) -> (PeerReader, PeerWriter) {
        (Box::new(self.reader), Box::new(self.writer))
    }
}
