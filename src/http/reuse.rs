//! Telling a stale kept connection from a real failure.
//!
//! `run` keeps its ureq agent, and with it one idle connection while the
//! server leaves it open. A server may close that connection at any moment
//! (its idle timeout, its request bound, load); when the close crosses our
//! next request, the request fails although the server is fine. ureq does
//! not retry a POST on a pooled connection, so `Client::send` does, once, on
//! a fresh connection, and only when this module says the failed request
//! went over a reused connection and got no byte of an answer.
//!
//! The last connector of the chain wraps every new transport in `Watched`,
//! which counts new connections and whether answer bytes arrived since the
//! last request bytes went out. It must not read, write or delay anything
//! itself.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use ureq::unversioned::transport::{Buffers, ConnectionDetails, Connector, NextTimeout, Transport};

/// What the watched connections of one agent report.
#[derive(Debug, Default)]
pub(super) struct Watch {
    /// Connections made so far (the pool hands out old ones without a
    /// connect).
    connects: AtomicU64,
    /// Answer bytes arrived after the last request bytes were sent.
    answered: AtomicBool,
}

impl Watch {
    pub(super) fn connects(&self) -> u64 {
        self.connects.load(Ordering::SeqCst)
    }

    pub(super) fn answered(&self) -> bool {
        self.answered.load(Ordering::SeqCst)
    }
}

/// Whether a failed request should be sent once more on a new connection:
/// it went over a reused connection (no connect during it), nothing of an
/// answer came back, and the failure is the connection ending (closed,
/// reset, broken pipe), not a timeout, TLS or protocol error.
pub(super) fn stale(e: &ureq::Error, reused: bool, answered: bool) -> bool {
    use std::io::ErrorKind as K;
    reused
        && !answered
        && matches!(e, ureq::Error::Io(io) if matches!(
            io.kind(),
            K::UnexpectedEof | K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe
        ))
}

/// The last step of the connector chain: wraps the connection in `Watched`.
#[derive(Debug)]
pub(super) struct WatchConnector(pub(super) Arc<Watch>);

impl<In: Transport> Connector<In> for WatchConnector {
    type Out = Watched<In>;

    fn connect(
        &self,
        _: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        let Some(inner) = chained else {
            return Ok(None);
        };
        self.0.connects.fetch_add(1, Ordering::SeqCst);
        Ok(Some(Watched {
            inner,
            watch: Arc::clone(&self.0),
        }))
    }
}

/// A transport that reports to its `Watch` and otherwise passes through.
#[derive(Debug)]
pub(super) struct Watched<T> {
    inner: T,
    watch: Arc<Watch>,
}

impl<T: Transport> Transport for Watched<T> {
    fn buffers(&mut self) -> &mut dyn Buffers {
        self.inner.buffers()
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        self.watch.answered.store(false, Ordering::SeqCst);
        self.inner.transmit_output(amount, timeout)
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        let got = self.inner.await_input(timeout)?;
        if got {
            self.watch.answered.store(true, Ordering::SeqCst);
        }
        Ok(got)
    }

    fn is_open(&mut self) -> bool {
        self.inner.is_open()
    }

    fn is_tls(&self) -> bool {
        self.inner.is_tls()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Error as IoError, ErrorKind as K};

    #[test]
    fn only_a_reused_unanswered_connection_end_is_stale() {
        let io = |k: K| ureq::Error::Io(IoError::new(k, "x"));
        for k in [
            K::UnexpectedEof,
            K::ConnectionReset,
            K::ConnectionAborted,
            K::BrokenPipe,
        ] {
            assert!(stale(&io(k), true, false), "{k:?} on a reused connection");
            assert!(!stale(&io(k), false, false), "{k:?} on a new connection");
            assert!(!stale(&io(k), true, true), "{k:?} after answer bytes");
        }
        for e in [
            io(K::TimedOut),
            io(K::ConnectionRefused),
            ureq::Error::Timeout(ureq::Timeout::Global),
            ureq::Error::ConnectionFailed,
            ureq::Error::Tls("x"),
        ] {
            assert!(!stale(&e, true, false), "{e:?} is not a stale connection");
        }
    }
}
