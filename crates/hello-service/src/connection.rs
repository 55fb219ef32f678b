//! What hello-service sees of each client connection: for deciding when a GET's answer has been
//! delivered (see [`crate::settling`]), and whether the peer has left, which ends a waiting read
//! at once ([`ConnectionState::peer_gone`]).
//!
//! Every accepted TCP stream is wrapped in a [`WatchedStream`] before actix-web's HTTP/1
//! dispatcher gets it. The wrapper passes every byte through unchanged and records what the
//! dispatcher does not report: whether a read or a write failed (the peer reset the connection,
//! which is what a client that closes without reading its answer, or a killed proxy, looks like),
//! and whether the last write is still waiting for the peer to take bytes. A peer that closes
//! cleanly (FIN) after reading is not a failure: a plain `curl` does exactly that.

use std::{
    io,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    task::{Context, Poll},
};

use actix_web::{HttpRequest, dev::Extensions};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
};

/// What is known about one connection; shared by its stream and the answers sent on it.
#[derive(Debug)]
pub struct ConnectionState {
    /// Bytes written to the peer so far.
    written: AtomicU64,
    /// How many bytes had been written when the peer left ([`NOT_LEFT`] while it has not): an
    /// answer whose first byte came later was never read.
    written_when_left: AtomicU64,
    /// A read or a write failed: the peer reset the connection, or the network broke it.
    broken: AtomicBool,
    /// The last write could not finish yet: the peer is not taking the bytes.
    write_blocked: AtomicBool,
    /// The stream has been dropped: the connection is over.
    closed: AtomicBool,
    /// The peer will send nothing more: it closed its side, reset the connection, or the stream
    /// is gone. A waiting read ends then ([`ConnectionState::peer_gone`]).
    peer_left: AtomicBool,
    /// Wakes whoever waits for `peer_left`.
    left: tokio::sync::Notify,
}

/// [`ConnectionState::written_when_left`] while the peer has not left.
const NOT_LEFT: u64 = u64::MAX;

impl Default for ConnectionState {
    fn default() -> Self {
        Self {
            written: AtomicU64::new(0),
            written_when_left: AtomicU64::new(NOT_LEFT),
            broken: AtomicBool::default(),
            write_blocked: AtomicBool::default(),
            closed: AtomicBool::default(),
            peer_left: AtomicBool::default(),
            left: tokio::sync::Notify::default(),
        }
    }
}

impl ConnectionState {
    /// Bytes written to the peer so far: taken before an answer is written, it tells that
    /// answer's bytes from earlier ones ([`ConnectionState::left_before`]).
    pub fn bytes_written(&self) -> u64 {
        self.written.load(Ordering::SeqCst)
    }

    /// True if the peer left before any byte past the first `written` was written: an answer
    /// that began after them was never read. A client that read the answer and then closed
    /// (a plain `curl`) left after its first byte, however late this is asked.
    pub fn left_before(&self, written: u64) -> bool {
        self.written_when_left.load(Ordering::SeqCst) <= written
    }

    /// True once a read or a write on the connection failed.
    pub fn is_broken(&self) -> bool {
        self.broken.load(Ordering::SeqCst)
    }

    /// True while a write waits for the peer to take bytes.
    pub fn is_write_blocked(&self) -> bool {
        self.write_blocked.load(Ordering::SeqCst)
    }

    /// True once the connection is over, however it ended.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    fn record<T>(&self, poll: &Poll<io::Result<T>>) {
        if let Poll::Ready(Err(_)) = poll {
            self.broken.store(true, Ordering::SeqCst);
            self.leave();
        }
    }

    fn leave(&self) {
        let written = self.written.load(Ordering::SeqCst);
        // Only the first departure counts (a FIN, then the stream dropped).
        let _ = self.written_when_left.compare_exchange(
            NOT_LEFT,
            written,
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
        self.peer_left.store(true, Ordering::SeqCst);
        self.left.notify_waiters();
    }

    /// True once the peer has left: closed its side, or reset the connection.
    pub fn has_peer_left(&self) -> bool {
        self.peer_left.load(Ordering::SeqCst)
    }

    /// Resolves once the peer has left (closed its side or reset the connection): nobody is
    /// there to take an answer. actix-web keeps reading a connection while its request is
    /// served, so a client that gives up on a waiting read is seen at once.
    pub async fn peer_gone(&self) {
        loop {
            let left = self.left.notified();
            tokio::pin!(left);
            left.as_mut().enable();
            if self.peer_left.load(Ordering::SeqCst) {
                return;
            }
            left.await;
        }
    }

    /// A write's outcome: a failure, or whether the peer is not taking bytes yet.
    fn record_write(&self, poll: &Poll<io::Result<usize>>) {
        if let Poll::Ready(Ok(bytes)) = poll {
            self.written.fetch_add(*bytes as u64, Ordering::SeqCst);
        }
        self.record(poll);
        self.write_blocked
            .store(poll.is_pending(), Ordering::SeqCst);
    }
}

/// A client's TCP stream that records resets and blocked writes in its [`ConnectionState`].
#[derive(Debug)]
pub struct WatchedStream {
    io: TcpStream,
    state: Arc<ConnectionState>,
}

impl WatchedStream {
    /// Wraps an accepted stream.
    pub fn new(io: TcpStream) -> Self {
        Self {
            io,
            state: Arc::default(),
        }
    }

    /// For the HTTP service's `on_connect_ext`: makes the state reachable from every request
    /// on this connection ([`state_of`]).
    pub fn register(&self, data: &mut Extensions) {
        data.insert(Arc::clone(&self.state));
    }
}

/// The state of the connection `request` arrived on (`None` outside a [`WatchedStream`], as in
/// actix-web's own test server).
pub fn state_of(request: &HttpRequest) -> Option<Arc<ConnectionState>> {
    request.conn_data::<Arc<ConnectionState>>().cloned()
}

impl Drop for WatchedStream {
    fn drop(&mut self) {
        self.state.closed.store(true, Ordering::SeqCst);
        self.state.leave();
    }
}

impl AsyncRead for WatchedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let (before, room) = (buf.filled().len(), buf.remaining());
        let poll = Pin::new(&mut this.io).poll_read(cx, buf);
        this.state.record(&poll);
        if matches!(poll, Poll::Ready(Ok(()))) && room > 0 && buf.filled().len() == before {
            // End of stream: the peer closed its side.
            this.state.leave();
        }
        poll
    }
}

impl AsyncWrite for WatchedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.io).poll_write(cx, buf);
        this.state.record_write(&poll);
        poll
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.state.record_write(&poll);
        poll
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.io).poll_flush(cx);
        this.state.record(&poll);
        poll
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Closing our side may fail on a connection the peer already left; that is not news.
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_that_left_after_an_answer_began_had_it_written_to_it() {
        let state = ConnectionState::default();
        let before_first = state.bytes_written();
        state.record_write(&Poll::Ready(Ok(120)));
        let before_second = state.bytes_written();
        assert!(!state.left_before(before_first));
        // It read the first answer and closed: asked now, that answer was not left unread...
        state.leave();
        assert!(!state.left_before(before_first));
        // ...and an answer begun after it left was never read.
        assert!(state.left_before(before_second));
        // Only the first departure counts.
        state.record_write(&Poll::Ready(Ok(10)));
        state.leave();
        assert!(state.left_before(before_second));
    }
}
