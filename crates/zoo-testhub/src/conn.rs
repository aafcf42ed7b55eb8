//! Accepted connections: counted at accept, and able to cut a response short for `fail_once`.
//!
//! hyper gives a handler no way to send part of a body and then drop the connection (a body that ends early
//! is an error, and hyper discards what it had buffered), so the cut happens below HTTP: the handler arms
//! the connection's [`CutSwitch`], and [`CutStream`] lets the next response head plus N body bytes through,
//! then fails every write, which makes hyper close the socket.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// Handed to handlers (as connect info) to truncate the next response on this connection.
#[derive(Clone, Debug, Default)]
pub(crate) struct CutSwitch(Arc<Mutex<Option<u64>>>);

impl CutSwitch {
    /// The next response written on this connection gets its head and `body_bytes` bytes of body, then the
    /// connection drops. Clients do not pipeline, so the next head written is the armed response's.
    pub(crate) fn arm(&self, body_bytes: u64) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(body_bytes);
    }

    fn take(&self) -> Option<u64> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

impl Connected<IncomingStream<'_, CountingListener>> for CutSwitch {
    fn connect_info(stream: IncomingStream<'_, CountingListener>) -> Self {
        stream.remote_addr().clone()
    }
}

/// A TCP listener that counts every accepted connection before any HTTP is read.
pub(crate) struct CountingListener {
    inner: TcpListener,
    accepted: Arc<AtomicU64>,
}

impl CountingListener {
    pub(crate) fn new(inner: TcpListener, accepted: Arc<AtomicU64>) -> Self {
        CountingListener { inner, accepted }
    }
}

impl Listener for CountingListener {
    type Io = CutStream;
    type Addr = CutSwitch;

    async fn accept(&mut self) -> (CutStream, CutSwitch) {
        // tokio's listener retries accept errors itself.
        let (stream, _) = Listener::accept(&mut self.inner).await;
        self.accepted.fetch_add(1, Ordering::SeqCst);
        let switch = CutSwitch::default();
        (CutStream { inner: stream, switch: switch.clone(), cut: Cut::Off }, switch)
    }

    fn local_addr(&self) -> io::Result<CutSwitch> {
        // Only axum's `Serve::local_addr` asks, and nothing here calls it.
        Ok(CutSwitch::default())
    }
}

/// Where an armed connection stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cut {
    /// Not armed: bytes pass.
    Off,
    /// Armed: `seen` bytes of the head's closing CRLFCRLF have passed; then `body` bytes may follow.
    Head { seen: usize, body: u64 },
    /// In the body: this many more bytes may pass.
    Body(u64),
    /// Cut: every write fails.
    Dead,
}

/// How many bytes of `buf` may pass in state `cut`.
fn allowed(cut: Cut, buf: &[u8]) -> usize {
    match cut {
        Cut::Off => buf.len(),
        Cut::Dead => 0,
        Cut::Body(left) => buf.len().min(usize::try_from(left).unwrap_or(usize::MAX)),
        Cut::Head { mut seen, body } => {
            for (i, &b) in buf.iter().enumerate() {
                seen = next_seen(seen, b);
                if seen == 4 {
                    let body = usize::try_from(body).unwrap_or(usize::MAX);
                    return (i + 1).saturating_add(body).min(buf.len());
                }
            }
            buf.len()
        }
    }
}

/// Progress through `\r\n\r\n` after byte `b`.
fn next_seen(seen: usize, b: u8) -> usize {
    match (seen, b) {
        (0 | 2, b'\r') => seen + 1,
        (1 | 3, b'\n') => seen + 1,
        (_, b'\r') => 1,
        _ => 0,
    }
}

/// The state after `written` bytes have passed in state `cut`.
fn advance(cut: Cut, written: &[u8]) -> Cut {
    match cut {
        Cut::Off | Cut::Dead => cut,
        Cut::Body(left) => Cut::Body(left - written.len() as u64),
        Cut::Head { mut seen, body } => {
            for (i, &b) in written.iter().enumerate() {
                seen = next_seen(seen, b);
                if seen == 4 {
                    let rest = (written.len() - i - 1) as u64;
                    return Cut::Body(body - rest);
                }
            }
            Cut::Head { seen, body }
        }
    }
}

/// A TCP stream whose writes stop after an armed cut.
pub(crate) struct CutStream {
    inner: TcpStream,
    switch: CutSwitch,
    cut: Cut,
}

impl CutStream {
    fn arm_if_asked(&mut self) {
        if self.cut == Cut::Off
            && let Some(body) = self.switch.take()
        {
            self.cut = Cut::Head { seen: 0, body };
        }
    }
}

impl AsyncRead for CutStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for CutStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.arm_if_asked();
        if self.cut == Cut::Off {
            return Pin::new(&mut self.inner).poll_write(cx, buf);
        }
        let n = allowed(self.cut, buf);
        if n == 0 && !buf.is_empty() {
            self.cut = Cut::Dead;
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::ConnectionAborted, "zoo-testhub: fail_once cut")));
        }
        let written = match Pin::new(&mut self.inner).poll_write(cx, &buf[..n]) {
            Poll::Ready(Ok(written)) => written,
            other => return other,
        };
        self.cut = advance(self.cut, &buf[..written]);
        if self.cut == Cut::Body(0) {
            self.cut = Cut::Dead;
        }
        Poll::Ready(Ok(written))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.arm_if_asked();
        if self.cut == Cut::Off {
            return Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        }
        let first = bufs.iter().find(|b| !b.is_empty()).map_or(&[][..], |b| &b[..]);
        self.poll_write(cx, first)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `chunks` through the cut logic as hyper would (each write may be partial) and returns what passed.
    fn pass(body: u64, chunks: &[&[u8]]) -> Vec<u8> {
        let mut cut = Cut::Head { seen: 0, body };
        let mut out = Vec::new();
        for chunk in chunks {
            let n = allowed(cut, chunk);
            out.extend_from_slice(&chunk[..n]);
            cut = advance(cut, &chunk[..n]);
            if n < chunk.len() {
                break;
            }
        }
        out
    }

    #[test]
    fn lets_the_head_and_n_body_bytes_through() {
        assert_eq!(pass(3, &[b"HTTP/1.1 200 OK\r\nA: b\r\n\r\nabcdef"]), b"HTTP/1.1 200 OK\r\nA: b\r\n\r\nabc");
        assert_eq!(pass(0, &[b"H\r\n\r\nabc"]), b"H\r\n\r\n");
        // The terminator split across writes, and the body in later writes.
        assert_eq!(pass(4, &[b"H\r\n\r", b"\nab", b"cdef"]), b"H\r\n\r\nabcd");
        // "\r\r\n\r\n" still ends the head.
        assert_eq!(pass(1, &[b"H\r\r\n\r\nxyz"]), b"H\r\r\n\r\nx");
    }

    #[test]
    fn body_state_counts_down() {
        assert_eq!(advance(Cut::Body(5), b"abc"), Cut::Body(2));
        assert_eq!(allowed(Cut::Body(2), b"abc"), 2);
        assert_eq!(allowed(Cut::Dead, b"abc"), 0);
        assert_eq!(allowed(Cut::Off, b"abc"), 3);
    }
}
