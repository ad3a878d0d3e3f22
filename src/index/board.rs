//! Group commit across processes: the commit board.
//!
//! Threads of one process share index commits through `commit.rs`; processes used to each run
//! their own redb transaction (two index syncs) one after the other, so four recorder
//! processes committed no faster than one. The board lets the process that holds the store's
//! commit lock commit the episodes other processes queued meanwhile, in the same transaction
//! (schema/concurrency.md, "Group commit across processes"):
//!
//! - `STORE/commit.lock`: whoever holds its exclusive `flock` is the *leader*: the only process
//!   indexing recorded episodes. A batch whose process finds it free commits at once (the
//!   leader's own episodes, with their segment syncs overlapped, plus whatever is queued).
//! - `STORE/commit-queue/*.q`: a process that finds the lock taken posts its batch there as
//!   one *ticket* at once, and says in the ticket's *sync word* when its segment syncs
//!   returned. A handle keeps one ticket file for its life (created under a temporary name and
//!   renamed; the poster holds its `flock` while it lives) and posts each batch into it,
//!   payload first and header last: creating, renaming and removing a file per batch was a
//!   sixth of a small episode's CPU. While its sync runs, the poster holds a byte-range lock
//!   on the sync word, so a leader whose transaction must wait for it blocks on that lock
//!   instead of polling (index/presync.rs: the wait runs on the committing thread, after the
//!   index's own first sync). The poster then waits for a
//!   round to end (below): either a leader wrote its ticket's outcome (ids, or the error every
//!   episode of the batch gets), or, finding nobody leading, it leads and commits every ticket
//!   queued, its own included.
//! - Before committing tickets, a leader marks them *taken* with a lower bound of the ids its
//!   transaction can give. A leader killed between its commit and writing the outcomes leaves
//!   taken tickets: the next leader looks their episodes up among the ids from that bound, in
//!   its own write transaction, and reports the ids found instead of committing them again.
//! - `STORE/commit.round`: the leader also holds it exclusively while it commits (its
//!   *round*). A poster waits for a round to end with a shared lock on it, then reads its
//!   outcome without any lock: all posters a round answered go on at once, instead of taking
//!   `commit.lock` one after the other (and waiting behind the next leader's whole
//!   transaction when a poster the round did not answer took it first).
//! - `STORE/commit.posters`: a handle with a ticket posted holds it shared, so a leader that can
//!   take it exclusively knows no live process has a ticket waiting and skips reading the
//!   queue directory. Tickets of posters that died are read by a full look at the queue, which
//!   every handle's first round makes and every round repeats once a second.
//!
//! - Gathering: the posters a round answers go on recording together, and the first to finish
//!   leads the next round, which found its queue empty: rounds alternated between one episode
//!   and all the others. A leader that finds fewer tickets than the last round took (a hint in
//!   `commit.round`, written by every leader) waits a little for them before committing, and
//!   indexes what it has meanwhile: its write transaction is open before its first look, and
//!   each ticket is indexed when a look finds it ([`Gathering`]), so the last one to arrive
//!   leaves only its own rows and the commit. With no other recorder process the hint is 0
//!   and nothing waits.
//!
//! Tickets are not durable and never need to be: a ticket stands for a recorder blocked in
//! `commit()`; a power cut ends that call unanswered, and no transaction naming its bytes
//! became live before they were durable (an unmarked manifest, as for any commit in flight).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::index::PendingEpisode;
use crate::index::carried::Carried;
use crate::index::records::EpisodeRecordV1;
use crate::index::wake::Wake;
use crate::segment::format::checksum;
use crate::segment::{SEGMENTS_DIR, segment_path};
use crate::stats::EpisodeStatsV1;
use crate::value::Info;

/// The leader lock, in the store directory.
pub const LOCK_FILE: &str = "commit.lock";
/// Queued tickets, in the store directory.
pub const QUEUE_DIR: &str = "commit-queue";
/// Held by the leader while it commits; posters wait on it, shared.
pub const ROUND_FILE: &str = "commit.round";
/// The lock of odd-numbered rounds (`commit.round` is that of even ones).
pub const ODD_ROUND_FILE: &str = "commit.round.odd";
/// Where `commit.round` holds the hint: how many processes the last round served.
const ROUND_HINT_AT: u64 = 0;
/// Where `commit.round` holds the number of the last round begun (u64 little-endian, never
/// synced; empty or unreadable reads as 0), after the ticket count at 0..8.
const ROUND_NUMBER_AT: u64 = 8;
/// Where `commit.round` names the last leader's wake-up socket (wake.rs): its process id and
/// handle number, two u64 little-endian (never synced; zeros or unreadable: none).
const ROUND_WAKE_AT: u64 = 16;
// A leader writes its round's number and its wake-up id in one write.
const _: () = assert!(ROUND_WAKE_AT == ROUND_NUMBER_AT + 8);
/// Held shared by every handle with a ticket posted.
pub const POSTERS_FILE: &str = "commit.posters";
/// A leader that finds fewer tickets than the last round took waits this long for more, at
/// most [`GATHER_STEPS`] times (module docs, "gathering").
const GATHER_STEP: Duration = Duration::from_micros(250);
const GATHER_STEPS: u32 = 4;
/// How often a leader reads the whole queue even when no live process has a ticket posted:
/// tickets of posters that died are found (and indexed) within about this long.
const DEAD_POSTERS_EVERY: Duration = Duration::from_secs(1);

const MAGIC: [u8; 8] = *b"TRAJQUE\0";
/// Version of the ticket layout (schema/concurrency.md, "Group commit across processes").
/// 2: the poster's sync word after the header (version 1 had none: tickets were posted only
/// once their segment bytes were durable).
pub const TICKET_VERSION: u32 = 2;
const HEADER_BYTES: usize = 64;
/// Where the poster's sync word is: written by the poster only, never by a leader.
const SYNC_WORD_AT: u64 = HEADER_BYTES as u64;
/// Where the payload starts, after the sync word.
const PAYLOAD_AT: u64 = SYNC_WORD_AT + 8;
/// The sync word once the segment bytes the ticket names are durable.
const DURABLE: [u8; 8] = *b"DURABLE\0";
/// The sync word when the poster's segment sync failed: the batch is never indexed.
const SYNC_FAILED: [u8; 8] = *b"FAILED\0\0";
/// How often a leader looks again at the sync word of a ticket whose poster is still syncing
/// but holds no lock on it (a build before the lock, or a system without OFD locks).
const SYNC_POLL: Duration = Duration::from_micros(20);

/// Where a ticket stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Pending = 0,
    Taken = 1,
    Done = 2,
}

impl State {
    fn from_u32(v: u32) -> Option<State> {
        match v {
            0 => Some(State::Pending),
            1 => Some(State::Taken),
            2 => Some(State::Done),
            _ => None,
        }
    }
}

/// One queued episode, as the leader indexes it.
#[derive(Serialize, Deserialize)]
struct QueuedV1 {
    record: EpisodeRecordV1,
    infos: Vec<(u32, Info)>,
    stats: Option<EpisodeStatsV1>,
    schema_metadata: Info,
}

impl QueuedV1 {
    fn of(p: &PendingEpisode) -> QueuedV1 {
        QueuedV1 {
            record: p.record.clone(),
            infos: p.infos.clone(),
            stats: p.stats.clone(),
            schema_metadata: p.schema_metadata.clone(),
        }
    }

    fn into_pending(self) -> PendingEpisode {
        PendingEpisode {
            record: self.record,
            infos: self.infos,
            stats: self.stats,
            schema_metadata: self.schema_metadata,
        }
    }
}

/// One queued episode with its records when it carries them (index/carried.rs). Postcard
/// writes the nested episode's fields in place: the same bytes as listing them here.
#[derive(Serialize, Deserialize)]
struct QueuedV2 {
    episode: QueuedV1,
    carried: Option<Carried>,
}

/// A ticket's payload: the batch, in a versioned envelope. A batch without carried episodes
/// is posted as `V1`, which builds before carried episodes read too.
#[derive(Serialize, Deserialize)]
enum Batch {
    V1(Vec<QueuedV1>),
    V2(Vec<QueuedV2>),
}

/// A ticket's outcome, written by the leader after `payload`.
#[derive(Serialize, Deserialize)]
enum Outcome {
    /// The id of each episode of the batch, in order.
    Committed(Vec<u64>),
    /// The batch was not committed; the error's text.
    Failed(String),
}

/// The 64-byte ticket header.
#[derive(Clone, Copy, Debug)]
struct Header {
    state: State,
    /// Taken: every id the taking leader's transaction could give is at least this.
    from_id: u64,
    payload_len: u64,
    payload_sum: u64,
    outcome_len: u64,
    outcome_sum: u64,
}

impl Header {
    fn encode(&self) -> [u8; HEADER_BYTES] {
        let mut b = [0u8; HEADER_BYTES];
        b[0..8].copy_from_slice(&MAGIC);
        b[8..12].copy_from_slice(&TICKET_VERSION.to_le_bytes());
        b[12..16].copy_from_slice(&(self.state as u32).to_le_bytes());
        b[16..24].copy_from_slice(&self.from_id.to_le_bytes());
        b[24..32].copy_from_slice(&self.payload_len.to_le_bytes());
        b[32..40].copy_from_slice(&self.payload_sum.to_le_bytes());
        b[40..48].copy_from_slice(&self.outcome_len.to_le_bytes());
        // 48..56: the outcome's checksum; 56..64: the header's own.
        b[48..56].copy_from_slice(&self.outcome_sum.to_le_bytes());
        let sum = checksum(&b[..56]);
        b[56..64].copy_from_slice(&sum.to_le_bytes());
        b
    }

    fn decode(b: &[u8; HEADER_BYTES]) -> Option<Header> {
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().expect("4 bytes"));
        if b[0..8] != MAGIC || u32_at(8) != TICKET_VERSION || checksum(&b[..56]) != u64_at(56) {
            return None;
        }
        Some(Header {
            state: State::from_u32(u32_at(12))?,
            from_id: u64_at(16),
            payload_len: u64_at(24),
            payload_sum: u64_at(32),
            outcome_len: u64_at(40),
            outcome_sum: u64_at(48),
        })
    }
}

fn read_header(file: &File) -> io::Result<Option<Header>> {
    let mut b = [0u8; HEADER_BYTES];
    match file.read_exact_at(&mut b, 0) {
        Ok(()) => Ok(Header::decode(&b)),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(None),
        Err(e) => Err(e),
    }
}

fn read_checked(file: &File, offset: u64, len: u64, sum: u64) -> io::Result<Option<Vec<u8>>> {
    let Ok(len) = usize::try_from(len) else {
        return Ok(None);
    };
    let mut bytes = vec![0u8; len];
    match file.read_exact_at(&mut bytes, offset) {
        Ok(()) => Ok((checksum(&bytes) == sum).then_some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether the process that posted `file` has ended: its `flock` is free. Takes the lock.
fn poster_gone(file: &File) -> bool {
    file.try_lock().is_ok()
}

fn read_sync_word(file: &File) -> io::Result<[u8; 8]> {
    let mut word = [0u8; 8];
    file.read_exact_at(&mut word, SYNC_WORD_AT)?;
    Ok(word)
}

/// How a byte-range lock on a ticket's sync word is taken.
#[derive(Clone, Copy)]
enum WordLock {
    /// The poster's, while its segment sync runs.
    Syncing,
    /// A leader's, waiting for the poster's to be released (then released at once).
    Waiting,
    Release,
}

/// Takes (waiting) or releases an open-file-description lock on the ticket's sync word. OFD
/// locks belong to the open file, not the process (two handles of one process exclude each
/// other, as in the tests), are released by the kernel when the poster dies, and are
/// independent of the `flock` that says the poster lives.
#[cfg(target_os = "linux")]
fn lock_sync_word(file: &File, how: WordLock) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: `flock` is a plain C struct for which all-zero bytes are a valid value.
    let mut range: libc::flock = unsafe { std::mem::zeroed() };
    range.l_type = match how {
        WordLock::Syncing => libc::F_WRLCK,
        WordLock::Waiting => libc::F_RDLCK,
        WordLock::Release => libc::F_UNLCK,
    } as libc::c_short;
    range.l_whence = libc::SEEK_SET as libc::c_short;
    range.l_start = SYNC_WORD_AT as libc::off_t;
    range.l_len = DURABLE.len() as libc::off_t;
    loop {
        // SAFETY: the descriptor is open for the borrow of `file`, and `range` is a valid
        // `flock` the call only reads.
        if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLKW, &range) } == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Without OFD locks a leader polls the sync word instead.
#[cfg(not(target_os = "linux"))]
fn lock_sync_word(_file: &File, _how: WordLock) -> io::Result<()> {
    Ok(())
}

/// A process's view of the board of one store.
#[derive(Debug)]
pub struct Board {
    segments: PathBuf,
    queue: PathBuf,
    lock: File,
    /// The rounds' locks, by parity of the round's number (`commit.round`,
    /// `commit.round.odd`): a leader holds its round's exclusively with `lock`. A leader
    /// takes the other one than the round before: posters woken by the end of a round take
    /// that round's lock shared for a moment, and would otherwise queue behind the next
    /// leader's whole round when it took the same lock first (two cores, several recorders:
    /// it often did), while that leader waited for their next posts (module docs).
    /// `commit.round` also holds the hint and the round number.
    round: [File; 2],
    /// The same files again: other open file descriptions, for a poster's shared wait (an
    /// `flock` on the leader's own description would convert its lock instead).
    round_wait: [File; 2],
    posters: Posters,
    next_ticket: AtomicU64,
    /// Woken by posters while this handle's round gathers.
    wake: Wake,
    /// This handle's ticket file between batches (answered, kept for the next batch).
    spare: Mutex<Option<(PathBuf, Arc<File>)>>,
    /// When this handle's rounds last read the whole queue (`None`: never).
    last_full_look: Mutex<Option<Instant>>,
}

impl Drop for Board {
    /// A handle closed cleanly leaves no ticket behind (a dead one's are deleted by leaders).
    fn drop(&mut self) {
        let spare = self.spare.get_mut().unwrap_or_else(PoisonError::into_inner);
        if let Some((path, _)) = spare.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// `commit.posters`: whether any live handle has a ticket posted, known without reading the
/// queue directory.
#[derive(Debug)]
struct Posters {
    /// Held shared while this handle has tickets posted; the count of them.
    held: Mutex<(File, usize)>,
    /// Another open file description of the file, for a leader's exclusive probe.
    probe: File,
}

impl Posters {
    /// Counts a ticket about to be posted (shares the lock from the first one).
    fn enter(&self) -> io::Result<Posting<'_>> {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        if held.1 == 0 {
            // Waits at most for a leader's probe, which takes and drops the lock at once.
            held.0.lock_shared()?;
        }
        held.1 += 1;
        Ok(Posting(self))
    }

    /// Whether a live handle (this one included) may have a ticket posted.
    fn any(&self) -> io::Result<bool> {
        match self.probe.try_lock() {
            Ok(()) => {
                self.probe.unlock()?;
                Ok(false)
            }
            Err(std::fs::TryLockError::WouldBlock) => Ok(true),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }
}

/// One posted ticket counted in [`Posters`], until dropped.
#[derive(Debug)]
struct Posting<'a>(&'a Posters);

impl Drop for Posting<'_> {
    fn drop(&mut self) {
        let mut held = self.0.held.lock().unwrap_or_else(PoisonError::into_inner);
        held.1 -= 1;
        if held.1 == 0 {
            let _ = held.0.unlock();
        }
    }
}

/// `N` consecutive u64 little-endian words of `commit.round` from byte `at` (zeros when empty
/// or unreadable: every word there is a hint, never synced).
fn round_words<const N: usize>(file: &File, at: u64) -> [u64; N] {
    let mut bytes = vec![0u8; N * 8];
    if file.read_exact_at(&mut bytes, at).is_err() {
        return [0; N];
    }
    std::array::from_fn(|i| u64::from_le_bytes(bytes[i * 8..][..8].try_into().expect("8 bytes")))
}

/// Writes words of `commit.round` from byte `at`; a failed write is a wrong hint.
fn set_round_words(file: &File, at: u64, words: &[u64]) {
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    let _ = file.write_all_at(&bytes, at);
}

/// The number of the last round begun, from `commit.round`.
fn round_number(file: &File) -> u64 {
    let [number] = round_words(file, ROUND_NUMBER_AT);
    number
}

/// The leader lock and its round, held until dropped.
#[derive(Debug)]
pub struct Leading<'a> {
    lock: &'a File,
    /// This round's lock.
    round: &'a File,
    /// `commit.round`, which holds the hint.
    hint: &'a File,
}

impl Leading<'_> {
    /// How many recorder processes the last round served (its tickets, and the leader's own
    /// batch if it had one): the first 8 bytes of `commit.round` (0 when empty or unreadable;
    /// a hint only, never synced).
    fn last_round_processes(&self) -> u64 {
        let [processes] = round_words(self.hint, ROUND_HINT_AT);
        processes
    }

    /// Leaves the number of processes this round served for the next leader. A hint only: a
    /// failed write costs the next leader its wait for posts, never this round its commit.
    fn note_round_processes(&self, processes: usize) {
        set_round_words(self.hint, ROUND_HINT_AT, &[processes as u64]);
    }
}

impl Drop for Leading<'_> {
    /// The round first: the posters it answered go on even if another process takes the
    /// leader lock in between (posters it did not answer find the lock taken for a moment
    /// and try again).
    fn drop(&mut self) {
        let _ = self.round.unlock();
        let _ = self.lock.unlock();
    }
}

/// Opens (creating) an empty lock file of the board.
fn lock_file(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
}

impl Board {
    /// The board of the store at `root`, made on first use (nothing in it is ever synced).
    pub fn open(root: &Path) -> io::Result<Board> {
        let queue = root.join(QUEUE_DIR);
        std::fs::create_dir_all(&queue)?;
        let (round, posters) = (root.join(ROUND_FILE), root.join(POSTERS_FILE));
        let odd_round = root.join(ODD_ROUND_FILE);
        Ok(Board {
            segments: root.join(SEGMENTS_DIR),
            queue,
            lock: lock_file(&root.join(LOCK_FILE))?,
            round: [lock_file(&round)?, lock_file(&odd_round)?],
            round_wait: [lock_file(&round)?, lock_file(&odd_round)?],
            posters: Posters {
                held: Mutex::new((lock_file(&posters)?, 0)),
                probe: lock_file(&posters)?,
            },
            next_ticket: AtomicU64::new(0),
            wake: Wake::open(root),
            spare: Mutex::new(None),
            last_full_look: Mutex::new(None),
        })
    }

    /// The queue directory (named in errors).
    pub fn queue_dir(&self) -> &Path {
        &self.queue
    }

    /// The leader lock if no other process holds it.
    pub fn try_lead(&self) -> io::Result<Option<Leading<'_>>> {
        match self.lock.try_lock() {
            Ok(()) => self.begin_round().map(Some),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }

    /// The leader lock, waiting for it.
    pub fn lead(&self) -> io::Result<Leading<'_>> {
        self.lock.lock()?;
        self.begin_round()
    }

    /// Takes the next round's lock, holding the leader lock, and notes its number. Waits at
    /// most for posters that are looking whether the round before the last ended (they hold
    /// it shared for a moment).
    fn begin_round(&self) -> io::Result<Leading<'_>> {
        let number = round_number(&self.round[0]).wrapping_add(1);
        let round = &self.round[(number % 2) as usize];
        if let Err(e) = round.lock() {
            let _ = self.lock.unlock();
            return Err(e);
        }
        // After the lock: a poster that reads this number finds the round's lock taken (or
        // the round already ended). A failed write is a wrong hint: posters then wait on the
        // other lock, find no round and look again shortly. The wake-up socket's id follows
        // the number (one write).
        let (pid, handle) = self.wake.id();
        set_round_words(&self.round[0], ROUND_NUMBER_AT, &[number, pid, handle]);
        Ok(Leading {
            lock: &self.lock,
            round,
            hint: &self.round[0],
        })
    }

    /// Waits until the round in progress, if any, ended. Returns whether one was in
    /// progress: `false` while a new leader has taken the lock but not yet its round, or when
    /// nobody leads.
    pub fn wait_for_round(&self) -> io::Result<bool> {
        let number = round_number(&self.round_wait[0]);
        let round = &self.round_wait[(number % 2) as usize];
        let waited = match round.try_lock_shared() {
            Ok(()) => false,
            Err(std::fs::TryLockError::WouldBlock) => {
                round.lock_shared()?;
                true
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        };
        round.unlock()?;
        Ok(waited)
    }

    /// Posts a batch; the ticket holds its file's lock. `durable`: its segment bytes are
    /// durable already; else the poster says when they are ([`Ticket::synced`]), and a leader
    /// may commit the batch meanwhile but makes its transaction live only after that.
    pub fn post(
        &self,
        episodes: &[(&PendingEpisode, Option<&Carried>)],
        durable: bool,
    ) -> io::Result<Ticket<'_>> {
        let batch = if episodes.iter().all(|(_, carried)| carried.is_none()) {
            Batch::V1(episodes.iter().map(|(p, _)| QueuedV1::of(p)).collect())
        } else {
            Batch::V2(
                episodes
                    .iter()
                    .map(|(p, carried)| QueuedV2 {
                        episode: QueuedV1::of(p),
                        carried: carried.cloned(),
                    })
                    .collect(),
            )
        };
        // The sync word and the payload, which follows it, in one write.
        let word = if durable { DURABLE } else { [0; 8] };
        let body = postcard::to_extend(&batch, word.to_vec()).map_err(io::Error::other)?;
        let payload = &body[word.len()..];
        let header = Header {
            state: State::Pending,
            from_id: 0,
            payload_len: payload.len() as u64,
            payload_sum: checksum(payload),
            outcome_len: 0,
            outcome_sum: 0,
        };
        // Counted before the ticket can be seen, so a leader that finds no poster has none to
        // read.
        let posting = self.posters.enter()?;
        let spare = self
            .spare
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let (path, file) = match spare {
            Some(spare) => spare,
            None => self.new_ticket_file()?,
        };
        // From here an error drops the ticket, which removes the file.
        let ticket = Ticket {
            board: self,
            path,
            file,
            reusable: AtomicBool::new(false),
            _posting: posting,
        };
        if !durable {
            // Before the header says pending: a leader that sees the ticket finds the lock.
            lock_sync_word(&ticket.file, WordLock::Syncing)?;
        }
        // The header last: until it is written the file reads as the answered ticket it was
        // (or an empty one), which leaders skip; a leader reading it meanwhile finds a header
        // or payload that fails its checksum, and skips it this round.
        ticket.file.write_all_at(&body, SYNC_WORD_AT)?;
        ticket.file.write_all_at(&header.encode(), 0)?;
        // After the header: a leader woken now finds the ticket whole.
        let [pid, handle] = round_words(&self.round_wait[0], ROUND_WAKE_AT);
        self.wake.poke((pid, handle));
        Ok(ticket)
    }

    /// Creates this handle's ticket file: empty, under a temporary name, locked, then renamed
    /// into the queue (a leader deletes a ticket whose lock is free: never before it is taken).
    fn new_ticket_file(&self) -> io::Result<(PathBuf, Arc<File>)> {
        let pid = std::process::id();
        loop {
            let n = self.next_ticket.fetch_add(1, Ordering::Relaxed);
            let name = format!("{pid}-{n}");
            let temp = self.queue.join(format!(".{name}.tmp"));
            let file = match OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&temp)
            {
                Ok(f) => f,
                // A dead process with our pid left it: take the next name.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            };
            file.lock()?;
            let path = self.queue.join(format!("{name}.q"));
            if path.exists() {
                let _ = std::fs::remove_file(&temp);
                continue;
            }
            std::fs::rename(&temp, &path)?;
            return Ok((path, Arc::new(file)));
        }
    }

    /// Every ticket waiting for a leader ([`Board::collect_new`] with none known).
    #[cfg(test)]
    pub fn collect(&self, _leading: &Leading<'_>) -> io::Result<Vec<Queued>> {
        self.collect_new(&[])
    }

    /// Every ticket waiting for a leader (pending, or taken by a leader that died), read
    /// under the leader lock, but those at `known` (read by an earlier look of this round: a
    /// ticket is not posted again before its outcome is read). Tickets whose outcome is
    /// written and whose poster has ended (nobody will read them) and leftovers of posters
    /// that died while writing are deleted. The queue directory is read only when a live
    /// handle has a ticket posted, or for tickets of dead posters: on this handle's first
    /// round and then once a second.
    fn collect_new(&self, known: &[PathBuf]) -> io::Result<Vec<Queued>> {
        if !self.posters.any()? && !self.full_look_due() {
            return Ok(Vec::new());
        }
        let mut queued = Vec::new();
        for entry in std::fs::read_dir(&self.queue)? {
            let path = entry?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let temp = name.starts_with('.') && name.ends_with(".tmp");
            if (!temp && !name.ends_with(".q")) || known.contains(&path) {
                continue;
            }
            let file = match OpenOptions::new().read(true).write(true).open(&path) {
                Ok(f) => f,
                // Its poster read its outcome and removed it meanwhile.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            if temp {
                // Its poster takes the lock just after creating it: only a file left for a
                // minute with its lock free is a dead poster's.
                let stale = file
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age.as_secs() >= 60);
                if stale && poster_gone(&file) {
                    let _ = std::fs::remove_file(&path);
                }
                continue;
            }
            let header = read_header(&file)?;
            let header = match header {
                Some(h) if h.state != State::Done => h,
                // Answered, or not a ticket this build can read (a newer layout: left alone
                // while its poster lives).
                _ => {
                    if poster_gone(&file) {
                        let _ = std::fs::remove_file(&path);
                    }
                    continue;
                }
            };
            let payload = read_checked(&file, PAYLOAD_AT, header.payload_len, header.payload_sum)?;
            let batch = payload.and_then(|p| postcard::from_bytes::<Batch>(&p).ok());
            let episodes: Vec<(PendingEpisode, Option<Carried>)> = match batch {
                Some(Batch::V1(episodes)) => episodes
                    .into_iter()
                    .map(|q| (q.into_pending(), None))
                    .collect(),
                Some(Batch::V2(episodes)) => episodes
                    .into_iter()
                    .map(|q| (q.episode.into_pending(), q.carried))
                    .collect(),
                None => {
                    if poster_gone(&file) {
                        let _ = std::fs::remove_file(&path);
                    }
                    continue;
                }
            };
            let (episodes, carried) = episodes.into_iter().unzip();
            queued.push(Queued {
                segments: self.segments.clone(),
                path,
                file: Arc::new(file),
                header,
                episodes,
                carried,
            });
        }
        // Oldest poster first is not knowable; a stable order keeps ids deterministic per run.
        queued.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(queued)
    }

    /// Gathers the tickets of this round ([`Board::collect_new`]) as they are posted
    /// ([`Gathering::next`]): when fewer processes would take part than in the last round,
    /// it waits for the others' posts a little (module docs, "gathering"), and the leader
    /// indexes what it has meanwhile. `own`: the leader commits a batch of its own process
    /// besides the tickets (a poster that leads for its unanswered ticket has none: its batch
    /// is among the tickets). Leaves the count of processes for the next round.
    pub fn gather<'b>(&'b self, leading: &'b Leading<'b>, own: bool) -> Gathering<'b> {
        Gathering {
            board: self,
            leading,
            own,
            expected: leading
                .last_round_processes()
                .saturating_sub(u64::from(own)),
            deadline: Instant::now() + GATHER_STEP * GATHER_STEPS,
            known: Vec::new(),
            looked: false,
        }
    }

    /// Whether this round should read the whole queue although no live handle has a ticket
    /// posted (for tickets of posters that died); if so, counts it as done now.
    fn full_look_due(&self) -> bool {
        let mut last = self
            .last_full_look
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let due = last.is_none_or(|t| now.duration_since(t) >= DEAD_POSTERS_EVERY);
        if due {
            *last = Some(now);
        }
        due
    }
}

/// A round's tickets, handed out as they are posted ([`Board::gather`]).
pub struct Gathering<'b> {
    board: &'b Board,
    leading: &'b Leading<'b>,
    own: bool,
    /// How many tickets the round waits for.
    expected: u64,
    deadline: Instant,
    /// The tickets handed out so far: each is read once (a ticket is not posted again
    /// before its outcome is read).
    known: Vec<PathBuf>,
    /// The queue was read once.
    looked: bool,
}

impl Gathering<'_> {
    /// The tickets posted since the last call (at the first, every ticket queued, without
    /// waiting), or `None` once the round has them: as many as it expects, or after waiting
    /// at most `GATHER_STEPS` steps in all. A later call, while the round expects more,
    /// waits for a post to wake it (or a step at most: a post whose byte was lost, or a
    /// poster of a build without wake-ups), so it may hand out none. At `None`, leaves the
    /// count of processes the round served for the next one.
    pub fn next(&mut self) -> io::Result<Option<Vec<Queued>>> {
        if self.looked {
            let left = self.deadline.checked_duration_since(Instant::now());
            let Some(left) = left.filter(|_| (self.known.len() as u64) < self.expected) else {
                self.leading
                    .note_round_processes(self.known.len() + usize::from(self.own));
                return Ok(None);
            };
            self.board.wake.wait(left.min(GATHER_STEP));
        }
        self.looked = true;
        let new = self.board.collect_new(&self.known)?;
        self.known.extend(new.iter().map(|q| q.path.clone()));
        Ok(Some(new))
    }
}

/// A batch this process posted, until its outcome is read.
#[derive(Debug)]
pub struct Ticket<'a> {
    board: &'a Board,
    path: PathBuf,
    /// Holds the ticket's `flock` (the poster is alive).
    file: Arc<File>,
    /// Its outcome was read: no leader touches it again, so the next batch may reuse it.
    reusable: AtomicBool,
    /// Dropped after the file is put back or removed.
    _posting: Posting<'a>,
}

impl Ticket<'_> {
    /// The outcome a leader wrote: `Some(Ok(ids))` or `Some(Err(text))`; `None` while
    /// nobody has committed the batch. Read without a lock: a header or outcome a leader is
    /// writing at this moment fails its checksum and reads as `None` (asked again once the
    /// leader's round ended, it is whole).
    pub fn outcome(&self) -> io::Result<Option<Result<Vec<u64>, String>>> {
        let Some(header) = read_header(&self.file)? else {
            return Ok(None);
        };
        if header.state != State::Done {
            return Ok(None);
        }
        let at = PAYLOAD_AT + header.payload_len;
        let Some(bytes) = read_checked(&self.file, at, header.outcome_len, header.outcome_sum)?
        else {
            return Ok(None);
        };
        let outcome = match postcard::from_bytes::<Outcome>(&bytes).map_err(io::Error::other)? {
            Outcome::Committed(ids) => Ok(ids),
            Outcome::Failed(text) => Err(text),
        };
        self.reusable.store(true, Ordering::Relaxed);
        Ok(Some(outcome))
    }

    /// Records how the sync of the batch's segment bytes ended, for the leader that waits for
    /// it (a failed one is never indexed), and releases the leader's wait.
    pub fn synced(&self, ok: bool) -> io::Result<()> {
        let word = if ok { DURABLE } else { SYNC_FAILED };
        self.file.write_all_at(&word, SYNC_WORD_AT)?;
        lock_sync_word(&self.file, WordLock::Release)
    }
}

impl Drop for Ticket<'_> {
    /// Answered: kept for the handle's next batch. Abandoned (the caller got an error): removed,
    /// as a leader may still hold it (and write its header) from the round that took it.
    fn drop(&mut self) {
        if self.reusable.load(Ordering::Relaxed) {
            let spare = (self.path.clone(), self.file.clone());
            *self
                .board
                .spare
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(spare);
        } else {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// A collected ticket's segment sync, as a leader waits for it.
pub struct PosterSync {
    path: PathBuf,
    file: Arc<File>,
    /// The segments the ticket names.
    segments: Vec<u64>,
}

impl PosterSync {
    /// Waits until the segment bytes the ticket names are durable: its poster said so, or it
    /// ended before saying it (then this process syncs them). An error when the poster's sync
    /// failed.
    pub fn await_durable(&self) -> io::Result<()> {
        let mut waited = false;
        loop {
            match read_sync_word(&self.file)? {
                DURABLE => return Ok(()),
                SYNC_FAILED => {
                    return Err(io::Error::other(format!(
                        "syncing the segment of a batch queued at {}",
                        self.path.display()
                    )));
                }
                _ if poster_gone(&self.file) => return self.sync_segments(),
                // A live poster whose word is not written and who holds no lock on it (after
                // the first wait): one that takes no lock, polled.
                _ if waited => std::thread::sleep(SYNC_POLL),
                _ => {
                    lock_sync_word(&self.file, WordLock::Waiting)?;
                    lock_sync_word(&self.file, WordLock::Release)?;
                    waited = true;
                }
            }
        }
    }

    /// Syncs every segment the ticket names (its poster ended before it could).
    fn sync_segments(&self) -> io::Result<()> {
        let segments = self
            .path
            .parent()
            .and_then(Path::parent)
            .map(|root| root.join(SEGMENTS_DIR));
        let Some(segments) = segments else {
            return Err(io::Error::other("a ticket outside a store"));
        };
        for &id in &self.segments {
            File::open(segment_path(&segments, id))?.sync_data()?;
        }
        Ok(())
    }
}

/// A ticket a leader collected.
pub struct Queued {
    /// The store's segments directory.
    segments: PathBuf,
    path: PathBuf,
    file: Arc<File>,
    header: Header,
    pub episodes: Vec<PendingEpisode>,
    /// Per episode, its records when it carries them (index/carried.rs).
    carried: Vec<Option<Carried>>,
}

impl Queued {
    /// The episodes with their carried records, to be committed (their places are set when
    /// their records are placed).
    pub fn entries(&mut self) -> impl Iterator<Item = (&mut PendingEpisode, Option<&Carried>)> {
        self.episodes
            .iter_mut()
            .zip(self.carried.iter().map(Option::as_ref))
    }

    /// The segments the ticket's episodes name: those of episodes written by their recorder
    /// (a carried episode is in no segment until the leader places it).
    fn named_segments(&self) -> Vec<u64> {
        let mut segments: Vec<u64> = self
            .episodes
            .iter()
            .zip(&self.carried)
            .filter(|(_, carried)| carried.is_none())
            .flat_map(|(e, _)| e.record.fields.iter().flatten())
            .map(|chunk| chunk.segment)
            .collect();
        segments.sort_unstable();
        segments.dedup();
        segments
    }

    /// Whether every segment the ticket names is still in `segments/` (asked of dead
    /// posters' tickets only: a dead recorder's segment may have been retired by compaction).
    pub fn segments_present(&self) -> bool {
        self.named_segments()
            .into_iter()
            .all(|id| segment_path(&self.segments, id).exists())
    }

    /// When a leader that took it may have committed it: the lowest id it could have given.
    pub fn taken_from(&self) -> Option<u64> {
        (self.header.state == State::Taken).then_some(self.header.from_id)
    }

    /// Marks the ticket taken by a leader whose ids are at least `from_id` (a ticket already
    /// taken keeps its older bound: the earlier leader's ids are at least that one).
    pub fn take(&mut self, from_id: u64) -> io::Result<()> {
        if self.header.state != State::Taken {
            self.header.state = State::Taken;
            self.header.from_id = from_id;
            self.file.write_all_at(&self.header.encode(), 0)?;
        }
        Ok(())
    }

    /// Whether the poster has ended (takes its lock if so).
    pub fn poster_ended(&self) -> bool {
        poster_gone(&self.file)
    }

    /// Whether the poster said its segment sync failed (the batch must not be indexed).
    pub fn sync_failed(&self) -> io::Result<bool> {
        Ok(read_sync_word(&self.file)? == SYNC_FAILED)
    }

    /// Whether the poster's segment bytes are known durable now.
    pub fn durable(&self) -> io::Result<bool> {
        Ok(read_sync_word(&self.file)? == DURABLE)
    }

    /// The wait for the ticket's segment bytes, owned: the index commit runs it on its own
    /// thread, after its first sync (index/presync.rs).
    pub fn poster_sync(&self) -> PosterSync {
        PosterSync {
            path: self.path.clone(),
            file: self.file.clone(),
            segments: self.named_segments(),
        }
    }

    /// Writes the outcome for the poster (which reads it once it holds the leader lock; the
    /// caller holds it now). A ticket whose poster has ended is deleted instead.
    pub fn answer(mut self, outcome: Result<&[u64], &str>) -> io::Result<()> {
        if poster_gone(&self.file) {
            let _ = std::fs::remove_file(&self.path);
            return Ok(());
        }
        let outcome = match outcome {
            Ok(ids) => Outcome::Committed(ids.to_vec()),
            Err(text) => Outcome::Failed(text.to_owned()),
        };
        let bytes = postcard::to_allocvec(&outcome).map_err(io::Error::other)?;
        let at = PAYLOAD_AT + self.header.payload_len;
        self.file.write_all_at(&bytes, at)?;
        self.header.state = State::Done;
        self.header.outcome_len = bytes.len() as u64;
        self.header.outcome_sum = checksum(&bytes);
        self.file.write_all_at(&self.header.encode(), 0)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::index::Index;
    use crate::index::records::Outcome as EpisodeOutcome;
    use crate::io::OsIo;

    /// A pending episode with no chunks, told apart by `seed`.
    pub(crate) fn episode(seed: u64) -> PendingEpisode {
        PendingEpisode {
            record: EpisodeRecordV1 {
                user: "u".into(),
                env: "Test-v0".into(),
                schema_id: 1,
                started_at_us: 1_000 + seed as i64,
                ended_at_us: 2_000,
                committed_at_us: 2_000,
                steps: 3,
                total_return: 1.5,
                outcome: EpisodeOutcome::Terminated,
                seed: Some(seed),
                tags: vec!["t".into()],
                metadata: Info::new(),
                raw_bytes: 10,
                stored_bytes: 10,
                fields: Vec::new(),
            },
            infos: vec![(0, Info::from([("k".to_owned(), 1i64.into())]))],
            stats: None,
            schema_metadata: Info::new(),
        }
    }

    /// Every ticket a round gathers.
    fn gather_all(board: &Board, leading: &Leading<'_>, own: bool) -> Vec<Queued> {
        let mut gathering = board.gather(leading, own);
        let mut all = Vec::new();
        while let Some(tickets) = gathering.next().unwrap() {
            all.extend(tickets);
        }
        all
    }

    /// `N` handles of the board of the store at `root`. Handles of one store directory stand
    /// for processes: `flock`s of different open files exclude each other as they do across
    /// processes.
    fn handles<const N: usize>(root: &Path) -> [Board; N] {
        std::array::from_fn(|_| Board::open(root).unwrap())
    }

    #[test]
    fn a_batch_posted_while_another_process_leads_is_answered_by_that_leader() {
        let dir = tempfile::tempdir().unwrap();
        let [leader, poster] = handles(dir.path());
        let leading = leader.try_lead().unwrap().expect("free");
        assert!(poster.try_lead().unwrap().is_none(), "one leader at a time");
        let (a, b) = (episode(1), episode(2));
        let ticket = poster.post(&[(&a, None), (&b, None)], true).unwrap();
        assert_eq!(ticket.outcome().unwrap(), None);

        let mut queued = leader.collect(&leading).unwrap();
        assert_eq!(queued.len(), 1);
        let t = queued.pop().unwrap();
        assert_eq!(t.taken_from(), None);
        let seeds: Vec<_> = t.episodes.iter().map(|e| e.record.seed).collect();
        assert_eq!(seeds, [Some(1), Some(2)]);
        assert_eq!(t.episodes[1].infos, b.infos);
        t.answer(Ok(&[7, 8])).unwrap();
        assert!(
            leader.collect(&leading).unwrap().is_empty(),
            "answered: not collected again"
        );
        drop(leading);

        let leading = poster.lead().unwrap();
        assert_eq!(ticket.outcome().unwrap(), Some(Ok(vec![7, 8])));
        let path = ticket.path.clone();
        drop(ticket);
        assert!(
            path.exists(),
            "an answered ticket is kept for the handle's next batch"
        );
        let next = poster.post(&[(&episode(3), None)], true).unwrap();
        assert_eq!(next.path, path, "and reused");
        let mut queued = poster.collect(&leading).unwrap();
        let seeds: Vec<_> = queued.iter().map(|q| q.episodes[0].record.seed).collect();
        assert_eq!(
            seeds,
            [Some(3)],
            "the reused ticket holds the new batch only"
        );
        assert_eq!(queued[0].taken_from(), None, "pending again");
        queued.pop().unwrap().answer(Ok(&[9])).unwrap();
        assert_eq!(next.outcome().unwrap(), Some(Ok(vec![9])));
        drop((next, leading));
        drop(poster);
        assert!(!path.exists(), "a handle closed cleanly leaves no ticket");

        let abandoned = leader.post(&[(&episode(4), None)], true).unwrap();
        let path = abandoned.path.clone();
        drop(abandoned);
        assert!(
            !path.exists(),
            "an unanswered ticket is removed, never reused"
        );
    }

    #[test]
    fn a_ticket_taken_by_a_leader_that_died_keeps_the_first_leaders_id_bound() {
        let dir = tempfile::tempdir().unwrap();
        let [first, next, poster] = handles(dir.path());
        let _ticket = poster.post(&[(&episode(1), None)], true).unwrap();
        {
            // The first leader takes the ticket and dies before answering.
            let leading = first.lead().unwrap();
            let mut queued = first.collect(&leading).unwrap();
            queued[0].take(5).unwrap();
        }
        let leading = next.lead().unwrap();
        let mut queued = next.collect(&leading).unwrap();
        assert_eq!(queued[0].taken_from(), Some(5));
        queued[0].take(9).unwrap();
        assert_eq!(queued[0].taken_from(), Some(5), "the older bound is kept");
    }

    /// A copy of `ticket` under another name, whose poster holds no lock: what a poster that
    /// died leaves behind.
    fn dead_copy(ticket: &Ticket<'_>, name: &str) -> PathBuf {
        let copy = ticket.path.with_file_name(format!("{name}.q"));
        std::fs::copy(&ticket.path, &copy).unwrap();
        copy
    }

    #[test]
    fn posters_a_round_answered_read_their_outcome_while_the_leader_still_holds_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let [leader, poster] = handles(dir.path());
        assert!(!poster.wait_for_round().unwrap(), "no round in progress");
        let leading = leader.try_lead().unwrap().expect("free");
        let ticket = poster.post(&[(&episode(1), None)], true).unwrap();
        std::thread::scope(|s| {
            let waiter = s.spawn(|| {
                let waited = poster.wait_for_round().unwrap();
                (waited, ticket.outcome().unwrap())
            });
            std::thread::sleep(Duration::from_millis(50));
            assert!(!waiter.is_finished(), "a poster waits while the round runs");
            let mut queued = leader.collect(&leading).unwrap();
            queued.pop().unwrap().answer(Ok(&[4])).unwrap();
            // The round ends; the leader lock is released only afterwards.
            let _ = leading.round.unlock();
            let (waited, outcome) = waiter.join().unwrap();
            assert!(waited);
            assert_eq!(outcome, Some(Ok(vec![4])));
            assert!(
                poster.try_lead().unwrap().is_none(),
                "read without the lock"
            );
        });
    }

    #[test]
    fn a_posted_batch_keeps_which_episodes_carry_their_records() {
        let dir = tempfile::tempdir().unwrap();
        let [leader, poster] = handles(dir.path());
        let carried = Carried {
            records: (0..128u8).collect(),
            fields: Vec::new(),
        };
        let (a, b) = (episode(1), episode(2));
        let _ticket = poster
            .post(&[(&a, None), (&b, Some(&carried))], true)
            .unwrap();
        let leading = leader.lead().unwrap();
        let mut queued = leader.collect(&leading).unwrap();
        assert_eq!(queued.len(), 1);
        let entries: Vec<_> = queued[0]
            .entries()
            .map(|(e, c)| (e.record.seed, c.cloned()))
            .collect();
        assert_eq!(entries, [(Some(1), None), (Some(2), Some(carried))]);
    }

    #[test]
    fn a_post_wakes_the_leader_of_the_round_in_progress() {
        let dir = tempfile::tempdir().unwrap();
        let [first, leader, poster] = handles(dir.path());
        if leader.wake.id() == (0, 0) {
            return; // no sockets here: a gathering leader sleeps between looks instead
        }
        drop(first.lead().unwrap());
        let leading = leader.lead().unwrap();
        let _ticket = poster.post(&[(&episode(1), None)], true).unwrap();
        assert!(
            leader.wake.wait(Duration::from_secs(10)),
            "the post named this round's leader"
        );
        assert!(
            !first.wake.wait(Duration::from_millis(20)),
            "not the last round's"
        );
        drop(leading);
    }

    #[test]
    fn a_gathering_hands_out_each_ticket_once_as_it_is_posted_and_ends_with_the_expected_count() {
        let dir = tempfile::tempdir().unwrap();
        let [leader, a, b] = handles(dir.path());
        let leading = leader.lead().unwrap();
        // The last round served three processes; this leader has a batch of its own, so it
        // expects two tickets.
        leading.note_round_processes(3);
        let _first = a.post(&[(&episode(1), None)], true).unwrap();
        let mut gathering = leader.gather(&leading, true);
        let started = Instant::now();
        let posted = gathering.next().unwrap().expect("a first look");
        assert_eq!(posted.len(), 1, "the ticket posted before, at once");
        assert!(started.elapsed() < GATHER_STEP, "without waiting");
        // Indexed meanwhile; the next post is handed out by a later look, alone.
        let _second = b.post(&[(&episode(2), None)], true).unwrap();
        let mut later = Vec::new();
        while later.is_empty() {
            later = gathering.next().unwrap().expect("still one expected");
        }
        assert_eq!(later.len(), 1, "only the ticket posted since");
        assert_ne!(later[0].path, posted[0].path);
        let started = Instant::now();
        assert!(
            gathering.next().unwrap().is_none(),
            "both expected tickets found"
        );
        assert!(started.elapsed() < GATHER_STEP, "it ends without waiting");
        assert_eq!(leading.last_round_processes(), 3, "and passes the count on");
    }

    #[test]
    fn posters_woken_by_a_round_go_on_although_the_next_leader_took_its_round_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let [first, poster, next] = handles(dir.path());
        let leading = first.lead().unwrap();
        let (said, heard) = std::sync::mpsc::channel();
        std::thread::scope(|s| {
            s.spawn(move || {
                said.send("waiting").unwrap();
                let waited = poster.wait_for_round().unwrap();
                said.send(if waited { "ended" } else { "no round" })
                    .unwrap();
            });
            assert_eq!(heard.recv().unwrap(), "waiting");
            // Long enough for the poster to be blocked on the round's lock.
            std::thread::sleep(Duration::from_millis(200));
            drop(leading);
            // The next leader takes the lock and its round before the woken poster runs.
            let next_round = next.lead().unwrap();
            let outcome = heard.recv_timeout(Duration::from_secs(10));
            drop(next_round);
            assert_eq!(
                outcome,
                Ok("ended"),
                "the poster waited behind the next round"
            );
        });
    }

    #[test]
    fn a_leader_reads_the_queue_only_for_live_posters_and_finds_dead_posters_tickets_in_time() {
        let dir = tempfile::tempdir().unwrap();
        let [leader, poster] = handles(dir.path());
        let ticket = poster.post(&[(&episode(1), None)], true).unwrap();
        let first_dead = dead_copy(&ticket, "1-0");
        drop(ticket);
        {
            // A handle's first round looks at the whole queue: the dead poster's ticket.
            let leading = leader.lead().unwrap();
            let queued = leader.collect(&leading).unwrap();
            assert_eq!(queued.len(), 1);
            assert_eq!(queued[0].path, first_dead);
        }
        {
            // No live poster since: the queue is not read.
            let leading = leader.lead().unwrap();
            assert!(leader.collect(&leading).unwrap().is_empty());
        }
        // A live poster makes the next round read it, dead tickets included.
        let ticket = poster.post(&[(&episode(2), None)], true).unwrap();
        let leading = leader.lead().unwrap();
        let seeds: Vec<_> = leader
            .collect(&leading)
            .unwrap()
            .iter()
            .map(|q| q.episodes[0].record.seed)
            .collect();
        assert_eq!(seeds, [Some(1), Some(2)]);
        drop((leading, ticket));
        // Without live posters, a dead ticket is still found within DEAD_POSTERS_EVERY.
        *leader.last_full_look.lock().unwrap() = Some(Instant::now() - DEAD_POSTERS_EVERY);
        let leading = leader.lead().unwrap();
        assert_eq!(leader.collect(&leading).unwrap().len(), 1);
    }

    #[test]
    fn a_leader_waits_for_a_posters_segment_sync_and_refuses_a_failed_one() {
        let dir = tempfile::tempdir().unwrap();
        let [leader, poster] = handles(dir.path());
        let ticket = poster.post(&[(&episode(1), None)], false).unwrap();
        let leading = leader.lead().unwrap();
        let queued = leader.collect(&leading).unwrap();
        assert!(!queued[0].durable().unwrap());
        std::thread::scope(|s| {
            let waiter = s.spawn(|| queued[0].poster_sync().await_durable());
            std::thread::sleep(Duration::from_millis(50));
            assert!(!waiter.is_finished(), "the poster's sync still runs");
            ticket.synced(true).unwrap();
            waiter.join().unwrap().unwrap();
        });
        drop((queued, ticket));

        let failed = poster.post(&[(&episode(2), None)], false).unwrap();
        failed.synced(false).unwrap();
        let queued = leader.collect(&leading).unwrap();
        assert!(queued[0].sync_failed().unwrap());
        assert!(queued[0].poster_sync().await_durable().is_err());
    }

    #[test]
    fn a_leader_that_finds_fewer_tickets_than_the_last_round_took_waits_and_passes_the_count_on() {
        let dir = tempfile::tempdir().unwrap();
        let [leader, poster] = handles(dir.path());
        {
            let leading = leader.lead().unwrap();
            assert_eq!(
                leading.last_round_processes(),
                0,
                "no round yet: nothing to wait for"
            );
            let ticket = poster.post(&[(&episode(1), None)], true).unwrap();
            // A leader with a batch of its own: its round serves two processes.
            let mut queued = gather_all(&leader, &leading, true);
            assert_eq!(queued.len(), 1);
            queued.pop().unwrap().answer(Ok(&[1])).unwrap();
            assert!(ticket.outcome().unwrap().is_some());
        }
        // The next leader, with a batch of its own, expects one other process's ticket.
        {
            let leading = poster.lead().unwrap();
            assert_eq!(leading.last_round_processes(), 2);
            let _ticket = leader.post(&[(&episode(2), None)], true).unwrap();
            let started = Instant::now();
            assert_eq!(gather_all(&poster, &leading, true).len(), 1);
            assert!(
                started.elapsed() < GATHER_STEP * GATHER_STEPS,
                "it found what it expected, without waiting"
            );
        }
        // A leader without a batch of its own (leading for its posted ticket) expects both
        // processes' tickets; the other never posts.
        let leading = poster.lead().unwrap();
        assert_eq!(leading.last_round_processes(), 2);
        let _ticket = poster.post(&[(&episode(3), None)], true).unwrap();
        let started = Instant::now();
        assert_eq!(gather_all(&poster, &leading, false).len(), 1);
        assert!(started.elapsed() >= GATHER_STEP * GATHER_STEPS, "it waited");
        assert_eq!(
            leading.last_round_processes(),
            1,
            "and the next round will expect one process"
        );
    }

    #[test]
    fn a_leader_polls_a_live_poster_that_holds_no_lock_on_its_sync_word() {
        // A poster of a build before the sync word's lock: its word is unwritten, unlocked.
        let dir = tempfile::tempdir().unwrap();
        let [leader, poster] = handles(dir.path());
        let ticket = poster.post(&[(&episode(1), None)], false).unwrap();
        lock_sync_word(&ticket.file, WordLock::Release).unwrap();
        let leading = leader.lead().unwrap();
        let queued = leader.collect(&leading).unwrap();
        std::thread::scope(|s| {
            let waiter = s.spawn(|| queued[0].poster_sync().await_durable());
            std::thread::sleep(Duration::from_millis(50));
            assert!(
                !waiter.is_finished(),
                "not taken for durable while it lives"
            );
            ticket.file.write_all_at(&DURABLE, SYNC_WORD_AT).unwrap();
            waiter.join().unwrap().unwrap();
        });
    }

    #[test]
    fn a_ticket_whose_poster_died_before_its_sync_returned_is_synced_by_the_leader() {
        let dir = tempfile::tempdir().unwrap();
        let [leader, poster] = handles(dir.path());
        std::fs::create_dir_all(dir.path().join(SEGMENTS_DIR)).unwrap();
        let segment = segment_path(&dir.path().join(SEGMENTS_DIR), 3);
        std::fs::write(&segment, b"bytes").unwrap();
        let mut on_segment = episode(1);
        on_segment.record.fields = vec![vec![crate::segment::format::ChunkRef {
            segment: 3,
            offset: 0,
            payload_len: 5,
            steps: 3,
            codec: crate::Codec::Raw,
            checksum: checksum(b"bytes"),
        }]];
        let ticket = poster.post(&[(&on_segment, None)], false).unwrap();
        dead_copy(&ticket, "1-0");
        drop(ticket);
        let leading = leader.lead().unwrap();
        let queued = leader.collect(&leading).unwrap();
        assert!(!queued[0].durable().unwrap());
        queued[0]
            .poster_sync()
            .await_durable()
            .expect("synced by the leader");
        std::fs::remove_file(&segment).unwrap();
        assert!(
            queued[0].poster_sync().await_durable().is_err(),
            "its segment is synced, not assumed"
        );
    }

    /// Commits `batch` in one transaction, where `taken[i]` is the lowest id a dead leader
    /// could have given episode `i` ([`crate::index::Batch::add`]).
    fn commit_taken(
        index: &Index,
        batch: &[&PendingEpisode],
        taken: &[Option<u64>],
    ) -> crate::Result<Vec<u64>> {
        let mut ids = Vec::new();
        index.commit_with(|txn| {
            for (pending, taken) in batch.iter().zip(taken) {
                ids.push(txn.add(pending, *taken)?);
            }
            Ok(Some(Vec::new()))
        })?;
        Ok(ids)
    }

    #[test]
    fn a_ticket_a_dead_leader_committed_is_not_indexed_twice() {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open_write(&dir.path().join("index.redb"), &OsIo).unwrap();
        let (a, b) = (episode(1), episode(2));
        // The dead leader's transaction committed `a` with ids from 1 on.
        let first = index.commit(&[&a], Vec::new()).unwrap();
        assert_eq!(first, [1]);
        // The next leader finds `a` taken from id 1: found, not inserted; `b` is new.
        let ids = commit_taken(&index, &[&a, &b], &[Some(1), Some(1)]).unwrap();
        assert_eq!(ids, [1, 2]);
        assert_eq!(index.next_episode_id().unwrap(), 3, "one row each");
        // Above the bound nothing matches: the episode is indexed (a leader that died before
        // its commit).
        let ids = commit_taken(&index, &[&a], &[Some(3)]).unwrap();
        assert_eq!(ids, [3]);
    }
}
