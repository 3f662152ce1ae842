//! A peer's stream after the MSE handshake: its reader decrypts with one RC4 keystream and
//! its writer encrypts with the other (or either passes bytes as they are, when the peers
//! chose a plaintext payload). The halves are separate, as a peer's reader and writer are.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, BytesMut};
use rc4::{Rc4, StreamCipher};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes encrypted ahead of the socket at most: one copy of a block or two.
const WRITE_CHUNK: usize = 64 * 1024;

pub struct Reader<R> {
    io: R,
    cipher: Option<Rc4>,
    /// Payload decrypted during the handshake (the initial payload and what followed it),
    /// served before anything else is read.
    pending: BytesMut,
}

pub struct Writer<W> {
    io: W,
    cipher: Option<Rc4>,
    /// Bytes taken from the caller and encrypted, not yet on the socket: the keystream has
    /// moved past them, so they must go out as they are.
    unwritten: BytesMut,
}

/// Both halves, for what needs one stream (relaying the connection to a sibling).
pub struct Encrypted<R, W> {
    pub reader: Reader<R>,
    pub writer: Writer<W>,
}

impl<R, W> Encrypted<R, W> {
    pub(super) fn new(io: (R, W), ciphers: (Option<Rc4>, Option<Rc4>), pending: BytesMut) -> Self {
        Encrypted {
            reader: Reader {
                io: io.0,
                cipher: ciphers.0,
                pending,
            },
            writer: Writer {
                io: io.1,
                cipher: ciphers.1,
                unwritten: BytesMut::new(),
            },
        }
    }

    /// Whether the payload is RC4-encrypted (not merely the handshake).
    pub fn is_rc4(&self) -> bool {
        self.reader.cipher.is_some()
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for Reader<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.pending.is_empty() {
            let n = this.pending.len().min(buf.remaining());
            buf.put_slice(&this.pending[..n]);
            this.pending.advance(n);
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
        if let Some(cipher) = &mut this.cipher {
            cipher.apply_keystream(&mut buf.filled_mut()[before..]);
        }
        Poll::Ready(Ok(()))
    }
}

impl<W: AsyncWrite + Unpin> Writer<W> {
    /// Writes out what was already encrypted; ready when nothing is left.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.unwritten.is_empty() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.unwritten))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.unwritten.advance(n);
        }
        Poll::Ready(Ok(()))
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for Writer<W> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[io::IoSlice::new(data)])
    }

    /// The slices encrypted together into one write, as one buffer would be: a block's
    /// header and its bytes do not go out as segments of their own.
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        let Some(cipher) = &mut this.cipher else {
            return Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        };
        let start = this.unwritten.len();
        let mut n = 0;
        for buf in bufs {
            let take = buf.len().min(WRITE_CHUNK - n);
            this.unwritten.extend_from_slice(&buf[..take]);
            n += take;
            if n == WRITE_CHUNK {
                break;
            }
        }
        cipher.apply_keystream(&mut this.unwritten[start..]);
        // Taken: it goes out now, or on the next write or flush.
        if let Poll::Ready(Err(e)) = this.poll_drain(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

impl<R: AsyncRead + Unpin, W: Unpin> AsyncRead for Encrypted<R, W> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().reader).poll_read(cx, buf)
    }
}

impl<R: Unpin, W: AsyncWrite + Unpin> AsyncWrite for Encrypted<R, W> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().writer).poll_write(cx, data)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().writer).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.writer.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().writer).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().writer).poll_shutdown(cx)
    }
}
