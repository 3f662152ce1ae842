//! What a peer connection has yet to write. Small messages are encoded together; a block
//! goes out as the slice of its cached piece it is (one vectored write with the headers
//! around it), so serving a piece copies nothing and holds no buffer of its own.

use std::collections::VecDeque;
use std::io::{self, IoSlice};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::wire::Message;

/// Slices per vectored write (the kernel takes up to 1024; a flush holds far fewer).
const MAX_SLICES: usize = 64;

#[derive(Default)]
pub struct Outbox {
    /// Ready to write, in order: encoded messages and blocks.
    frames: VecDeque<Bytes>,
    /// Bytes in `frames`.
    queued: usize,
    /// Messages encoded since the last block.
    tail: BytesMut,
}

impl Outbox {
    pub fn push(&mut self, message: &Message) {
        if let Some(block) = message.encode_head(&mut self.tail) {
            self.seal_tail();
            self.queued += block.len();
            self.frames.push_back(block);
        }
    }

    /// Bytes not written yet.
    pub fn len(&self) -> usize {
        self.queued + self.tail.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes everything queued. Not cancel-safe in what it reports: a connection whose
    /// write was given up on is closed.
    pub async fn write_to<W: AsyncWrite + Unpin + ?Sized>(
        &mut self,
        writer: &mut W,
    ) -> io::Result<()> {
        self.seal_tail();
        while !self.frames.is_empty() {
            let written = {
                let slices: Vec<IoSlice<'_>> = self
                    .frames
                    .iter()
                    .take(MAX_SLICES)
                    .map(|f| IoSlice::new(f))
                    .collect();
                writer.write_vectored(&slices).await?
            };
            if written == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            self.consume(written);
        }
        Ok(())
    }

    fn seal_tail(&mut self) {
        if !self.tail.is_empty() {
            let head = self.tail.split().freeze();
            self.queued += head.len();
            self.frames.push_back(head);
        }
    }

    fn consume(&mut self, mut written: usize) {
        self.queued -= written;
        while written > 0 {
            let front = self
                .frames
                .front_mut()
                .expect("written only what was queued");
            if written < front.len() {
                front.advance(written);
                return;
            }
            written -= front.len();
            self.frames.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use super::*;
    use crate::seeder::wire::Block;

    /// Takes at most `per_write` bytes a call, vectored or not: every partial write shape.
    struct Trickle {
        got: Vec<u8>,
        per_write: usize,
        calls: usize,
    }

    impl Trickle {
        fn take(&mut self, bufs: &[IoSlice<'_>]) -> usize {
            self.calls += 1;
            let mut n = 0;
            for b in bufs {
                let take = b.len().min(self.per_write - n);
                self.got.extend_from_slice(&b[..take]);
                n += take;
                if n == self.per_write {
                    break;
                }
            }
            n
        }
    }

    impl AsyncWrite for Trickle {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            data: &[u8],
        ) -> Poll<io::Result<usize>> {
            Poll::Ready(Ok(self.get_mut().take(&[IoSlice::new(data)])))
        }

        fn poll_write_vectored(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            Poll::Ready(Ok(self.get_mut().take(bufs)))
        }

        fn is_write_vectored(&self) -> bool {
            true
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn messages() -> Vec<Message> {
        let piece = Bytes::from((0..40_000u32).map(|i| i as u8).collect::<Vec<_>>());
        vec![
            Message::Unchoke,
            Message::Have(7),
            Message::Piece {
                index: 3,
                begin: 0,
                data: piece.slice(0..16384),
            },
            Message::Piece {
                index: 3,
                begin: 16384,
                data: piece.slice(16384..40_000),
            },
            Message::Reject(Block {
                index: 1,
                begin: 0,
                length: 16384,
            }),
            Message::KeepAlive,
        ]
    }

    #[tokio::test]
    async fn bytes_written_are_the_messages_encoded_whatever_the_writes_take() {
        let mut expected = BytesMut::new();
        for m in messages() {
            m.encode(&mut expected);
        }
        for per_write in [1, 5, 13, 4096, 16397, 1 << 20] {
            let mut outbox = Outbox::default();
            for m in messages() {
                outbox.push(&m);
            }
            assert_eq!(outbox.len(), expected.len());
            let mut w = Trickle {
                got: Vec::new(),
                per_write,
                calls: 0,
            };
            outbox.write_to(&mut w).await.unwrap();
            assert!(outbox.is_empty());
            assert_eq!(w.got, expected, "{per_write} bytes a write");
            if per_write == 1 << 20 {
                assert_eq!(w.calls, 1, "one vectored write for the whole flush");
            }
        }
    }

    #[tokio::test]
    async fn a_block_is_the_cached_piece_itself_not_a_copy() {
        let piece = Bytes::from(vec![9u8; 16384]);
        let mut outbox = Outbox::default();
        outbox.push(&Message::Piece {
            index: 0,
            begin: 0,
            data: piece.clone(),
        });
        let block = outbox.frames.back().unwrap();
        assert_eq!(block.as_ptr(), piece.as_ptr());
    }
}
