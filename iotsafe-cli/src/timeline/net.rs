//! A socket adapter that timestamps every read and write of TLS bytes into a [`Timeline`], so
//! the drawing shows each round trip.

use super::record::{NetKind, Timeline};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// `inner` (a `TcpStream`), with each read and write that moved bytes recorded as a network
/// event. Reads are stamped when they return data, which is when the client could first act on
/// the server's answer.
#[derive(Debug)]
pub struct RecordedIo<S> {
    inner: S,
    timeline: Arc<Timeline>,
}

impl<S> RecordedIo<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, timeline: Arc<Timeline>) -> RecordedIo<S> {
        RecordedIo { inner, timeline }
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    fn record(&self, kind: NetKind, bytes: usize) {
        if bytes > 0 {
            let now = Instant::now();
            self.timeline.network(kind, now, now, bytes as u64);
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for RecordedIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let poll = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = poll {
            this.record(NetKind::Read, buf.filled().len() - before);
        }
        poll
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for RecordedIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = poll {
            this.record(NetKind::Write, n);
        }
        poll
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = poll {
            this.record(NetKind::Write, n);
        }
        poll
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn reads_and_writes_that_move_bytes_are_recorded_with_their_sizes() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let timeline = Timeline::new(115_200);
        runtime.block_on(async {
            let (client, mut server) = tokio::io::duplex(64);
            let mut io = RecordedIo::new(client, Arc::clone(&timeline));
            io.write_all(b"hello").await.unwrap();
            let mut got = [0u8; 5];
            server.read_exact(&mut got).await.unwrap();
            server.write_all(b"back").await.unwrap();
            drop(server);
            let mut answer = Vec::new();
            io.read_to_end(&mut answer).await.unwrap();
            assert_eq!(answer, b"back");
        });
        let recorded = timeline.recording();
        let kinds: Vec<_> = recorded.network.iter().map(|n| (n.kind, n.bytes)).collect();
        // The end of the stream (a read of zero bytes) is not an event.
        assert_eq!(kinds, vec![(NetKind::Write, 5), (NetKind::Read, 4)]);
        assert_eq!(recorded.round_trips().len(), 1);
    }
}
