//! Waking a leader that waits for posts (board.rs, "gathering") when a ticket is posted.
//!
//! A leader that collects fewer tickets than the last round served processes looks again a
//! little later. Sleeping a fixed step overshot: a 250 µs sleep took about 400 µs, while the
//! posts it waited for came at any time in between. So every board handle binds a datagram
//! socket in the abstract namespace (Linux; no file to clean up, gone with its process),
//! named from the store directory's device and inode and the handle's own process and
//! number. A leader names its socket in `commit.round` (bytes 16..32, never synced); a poster
//! that wrote its ticket sends one byte there, and the leader, instead of sleeping, waits for
//! a byte until its next look is due. A hint only: a lost or stale byte costs a look early or
//! the sleep, never a ticket; where no socket can be made (another OS, a sandbox), or the
//! poster cannot reach it (another network namespace: abstract names are per namespace;
//! another host), the leader sleeps as before.

use std::path::Path;
use std::time::Duration;

#[cfg(target_os = "linux")]
use std::os::unix::net::UnixDatagram;

/// One handle's wake-up socket.
#[derive(Debug)]
pub struct Wake {
    #[cfg(target_os = "linux")]
    sockets: Option<Sockets>,
    /// The store directory's device and inode (0, 0 when unknown).
    store: (u64, u64),
    /// This handle's id in `commit.round`: process id and number; (0, 0) without a socket.
    id: (u64, u64),
}

#[cfg(target_os = "linux")]
#[derive(Debug)]
struct Sockets {
    /// Bound to this handle's name; blocking, read with a timeout.
    listen: UnixDatagram,
    /// Unbound, non-blocking: a poster never waits on a leader's full queue.
    send: UnixDatagram,
}

/// Handles made by this process (the second half of a socket's name).
static HANDLES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl Wake {
    /// The wake-up socket of a new handle of the store at `root`; without one when the OS
    /// refuses it (the handle's rounds then sleep between looks).
    pub fn open(root: &Path) -> Wake {
        use std::os::unix::fs::MetadataExt;
        let store = std::fs::metadata(root).map_or((0, 0), |m| (m.dev(), m.ino()));
        let id = (
            u64::from(std::process::id()),
            HANDLES.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        );
        #[cfg(target_os = "linux")]
        {
            let sockets = Self::bind(store, id);
            let id = if sockets.is_some() { id } else { (0, 0) };
            Wake { sockets, store, id }
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = id;
            Wake { store, id: (0, 0) }
        }
    }

    #[cfg(target_os = "linux")]
    fn bind(store: (u64, u64), id: (u64, u64)) -> Option<Sockets> {
        let listen = UnixDatagram::bind_addr(&address(store, id)?).ok()?;
        let send = UnixDatagram::unbound().ok()?;
        send.set_nonblocking(true).ok()?;
        Some(Sockets { listen, send })
    }

    /// This handle's id, as a leader writes it into `commit.round` ((0, 0): none).
    pub fn id(&self) -> (u64, u64) {
        self.id
    }

    /// Waits at most `timeout` for a poster's byte; `true` when one came. Every byte queued
    /// behind it is taken too: the look that follows finds every ticket they stand for, and a
    /// byte left queued would wake the next wait at once for a ticket already read. Without
    /// a socket, sleeps `timeout`.
    pub fn wait(&self, timeout: Duration) -> bool {
        #[cfg(target_os = "linux")]
        if let Some(s) = &self.sockets
            && s.listen
                .set_read_timeout(Some(timeout.max(Duration::from_micros(1))))
                .is_ok()
        {
            let mut byte = [0u8; 1];
            let woken = s.listen.recv(&mut byte).is_ok();
            if woken && s.listen.set_nonblocking(true).is_ok() {
                while s.listen.recv(&mut byte).is_ok() {}
                // Failing, later waits return at once: a look each, as with stale bytes.
                let _ = s.listen.set_nonblocking(false);
            }
            return woken;
        }
        std::thread::sleep(timeout);
        false
    }

    /// Tells the leader `leader` (its id from `commit.round`) that a ticket was posted. Best
    /// effort and never blocking.
    pub fn poke(&self, leader: (u64, u64)) {
        #[cfg(target_os = "linux")]
        if leader != (0, 0)
            && let Some(s) = &self.sockets
            && let Some(to) = address(self.store, leader)
        {
            let _ = s.send.send_to_addr(&[1], &to);
        }
        #[cfg(not(target_os = "linux"))]
        let _ = leader;
    }
}

/// The abstract socket name of handle `id` of the store `store`.
#[cfg(target_os = "linux")]
fn address(store: (u64, u64), id: (u64, u64)) -> Option<std::os::unix::net::SocketAddr> {
    use std::os::linux::net::SocketAddrExt;
    let name = format!(
        "trajstore-commit/{:x}/{:x}/{}/{}",
        store.0, store.1, id.0, id.1
    );
    std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn a_poke_wakes_the_handle_it_names_and_no_other() {
        let dir = tempfile::tempdir().unwrap();
        let (leader, other, poster) = (
            Wake::open(dir.path()),
            Wake::open(dir.path()),
            Wake::open(dir.path()),
        );
        if leader.id() == (0, 0) {
            return; // no sockets here: rounds sleep instead (nothing to wake)
        }
        poster.poke(leader.id());
        assert!(leader.wait(Duration::from_secs(10)), "the leader was woken");
        let started = Instant::now();
        assert!(!other.wait(Duration::from_millis(20)), "nobody poked it");
        assert!(started.elapsed() >= Duration::from_millis(20));
        // A handle of another store with the same ids is another socket.
        let elsewhere = tempfile::tempdir().unwrap();
        let stranger = Wake::open(elsewhere.path());
        stranger.poke(leader.id());
        assert!(!leader.wait(Duration::from_millis(20)));
    }

    #[test]
    fn one_wait_takes_every_poke_queued_so_the_next_waits_for_a_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let (leader, poster) = (Wake::open(dir.path()), Wake::open(dir.path()));
        if leader.id() == (0, 0) {
            return;
        }
        for _ in 0..3 {
            poster.poke(leader.id());
        }
        assert!(leader.wait(Duration::from_secs(10)));
        assert!(
            !leader.wait(Duration::from_millis(20)),
            "the two pokes behind the first were taken with it"
        );
        poster.poke(leader.id());
        assert!(
            leader.wait(Duration::from_secs(10)),
            "and is woken by the next one"
        );
    }
}
