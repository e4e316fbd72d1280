//! The spool: raw PCM of both directions of a live call, written as it
//! happens, so nothing heavy runs on the 20 ms path and a crash loses at
//! most the last second.
//!
//! The media socket hands each frame to a [`SpoolTap`] (`try_send` into a
//! bounded channel: it never blocks the socket; a full channel drops the
//! chunk and counts it in `talky_recording_dropped_chunks_total`). One
//! writer task per call appends it to `{dir}/spool/{call}.spool`.
//!
//! # Format (little-endian)
//!
//! Header, [`HEADER_LEN`] bytes: magic `TKSPOOL1`, sample rate `u32`,
//! tenant id (16 bytes), call id (16 bytes). Then records, each: direction
//! `u8` (0 callee, 1 agent), arrival time `u64` (microseconds since the
//! spool was opened, never decreasing), length `u32` (bytes, even, at most
//! [`MAX_CHUNK_BYTES`]), then that many bytes of s16le mono PCM. A record
//! cut short by a crash ends the spool; what precedes it is kept.
//!
//! A `clear` (barge-in) writes nothing: agent audio already sent stays in
//! the spool, the recording shows what talky sent.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use talky_actors::ids::{CallId, TenantId};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use uuid::Uuid;

/// First bytes of every spool.
pub const MAGIC: &[u8; 8] = b"TKSPOOL1";
/// Length of the header.
pub const HEADER_LEN: usize = 8 + 4 + 16 + 16;
/// Length of a record's header (direction, time, length).
pub const RECORD_HEADER_LEN: usize = 1 + 8 + 4;
/// Largest chunk a record may hold (bytes); larger chunks are not spooled
/// and a reader treats a larger length as the end of a damaged spool.
pub const MAX_CHUNK_BYTES: usize = 16 * 1024;
/// Chunks waiting for the writer, per call (both directions, about 2.5 s).
pub const SPOOL_CHANNEL_CAPACITY: usize = 256;
/// The writer flushes to the file at least this often while chunks arrive.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Name of the counter of chunks dropped because a spool's channel was full.
pub const DROPPED_METRIC: &str = "talky_recording_dropped_chunks_total";
/// Calls whose spool reached its size cap (the rest was not recorded).
pub const TRUNCATED_METRIC: &str = "talky_recording_truncated_total";

/// File name suffix of spools.
pub const SPOOL_SUFFIX: &str = "spool";

/// Which side of the call a chunk is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// The callee, as heard from the telephone network (left channel).
    Callee = 0,
    /// The agent, as sent to the network (right channel).
    Agent = 1,
}

impl Direction {
    fn from_byte(b: u8) -> Option<Self> {
        match b {
            0 => Some(Direction::Callee),
            1 => Some(Direction::Agent),
            _ => None,
        }
    }
}

/// What a spool's header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpoolHeader {
    /// PCM sample rate of every chunk.
    pub sample_rate: u32,
    /// The call's tenant.
    pub tenant: TenantId,
    /// The call.
    pub call: CallId,
}

impl SpoolHeader {
    /// The header's bytes.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[..8].copy_from_slice(MAGIC);
        out[8..12].copy_from_slice(&self.sample_rate.to_le_bytes());
        out[12..28].copy_from_slice(self.tenant.0.as_bytes());
        out[28..44].copy_from_slice(self.call.0.as_bytes());
        out
    }

    /// Parses a header; `None` when it is not one.
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        if bytes.len() < HEADER_LEN || &bytes[..8] != MAGIC {
            return None;
        }
        let rate = u32::from_le_bytes(bytes[8..12].try_into().ok()?);
        let tenant = Uuid::from_slice(&bytes[12..28]).ok()?;
        let call = Uuid::from_slice(&bytes[28..44]).ok()?;
        Some(SpoolHeader {
            sample_rate: rate,
            tenant: TenantId(tenant),
            call: CallId(call),
        })
    }
}

/// One record as read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chunk {
    /// Which side.
    pub direction: Direction,
    /// Arrival, microseconds since the spool was opened.
    pub at_us: u64,
    /// Samples (s16 mono).
    pub pcm: Vec<i16>,
}

/// Appends one record's bytes to `out`.
pub fn encode_record(direction: Direction, at_us: u64, pcm_le: &[u8], out: &mut Vec<u8>) {
    out.push(direction as u8);
    out.extend_from_slice(&at_us.to_le_bytes());
    out.extend_from_slice(&(pcm_le.len() as u32).to_le_bytes());
    out.extend_from_slice(pcm_le);
}

/// Reads a spool's records in order from any reader. Stops quietly at the
/// first incomplete or damaged record (a crash mid-write).
pub struct SpoolReader<R> {
    inner: R,
    /// The spool's header.
    pub header: SpoolHeader,
}

/// Why a spool cannot be read at all.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// The file could not be read or written.
    #[error("spool i/o: {0}")]
    Io(#[from] std::io::Error),
    /// It does not start with a spool header.
    #[error("not a spool (bad header)")]
    BadHeader,
}

impl<R: std::io::Read> SpoolReader<R> {
    /// Reads the header.
    pub fn new(mut inner: R) -> Result<Self, SpoolError> {
        let mut header = [0u8; HEADER_LEN];
        inner
            .read_exact(&mut header)
            .map_err(|_| SpoolError::BadHeader)?;
        let header = SpoolHeader::parse(&header).ok_or(SpoolError::BadHeader)?;
        Ok(Self { inner, header })
    }

    /// The next record; `None` at the end or at a damaged tail.
    pub fn next_chunk(&mut self) -> Option<Chunk> {
        let mut head = [0u8; RECORD_HEADER_LEN];
        self.inner.read_exact(&mut head).ok()?;
        let direction = Direction::from_byte(head[0])?;
        let at_us = u64::from_le_bytes(head[1..9].try_into().ok()?);
        let len = u32::from_le_bytes(head[9..13].try_into().ok()?) as usize;
        if len > MAX_CHUNK_BYTES || !len.is_multiple_of(2) {
            return None;
        }
        let mut bytes = vec![0u8; len];
        self.inner.read_exact(&mut bytes).ok()?;
        let pcm = bytes
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect();
        Some(Chunk {
            direction,
            at_us,
            pcm,
        })
    }
}

/// The path of a call's spool.
pub fn spool_path(dir: &Path, call: CallId) -> PathBuf {
    dir.join("spool").join(format!("{call}.{SPOOL_SUFFIX}"))
}

struct Item {
    direction: Direction,
    at: Instant,
    pcm: Vec<u8>,
}

/// The media socket's handle on a call's spool: cheap to clone, never
/// blocks.
#[derive(Clone)]
pub struct SpoolTap {
    tx: mpsc::Sender<Item>,
    dropped: Arc<AtomicU64>,
}

impl SpoolTap {
    /// Spools a chunk of one side (s16le bytes as on the socket). A full
    /// channel drops it and counts it.
    pub fn push(&self, direction: Direction, pcm_le: &[u8]) {
        if pcm_le.is_empty() || pcm_le.len() > MAX_CHUNK_BYTES {
            return;
        }
        let mut pcm = pcm_le.to_vec();
        pcm.truncate(pcm.len() & !1);
        let item = Item {
            direction,
            at: Instant::now(),
            pcm,
        };
        if self.tx.try_send(item).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            metrics::counter!(DROPPED_METRIC).increment(1);
        }
    }
}

/// A spool being written: the tap to feed it and the writer to finish.
pub struct Spool {
    /// Feeds the writer.
    pub tap: SpoolTap,
    /// Where it is written.
    pub path: PathBuf,
    writer: JoinHandle<Result<u64, SpoolError>>,
}

/// What a finished spool holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpoolSummary {
    /// The file.
    pub path: PathBuf,
    /// Records written.
    pub records: u64,
    /// Chunks dropped because the writer fell behind.
    pub dropped: u64,
}

impl Spool {
    /// Creates `{dir}/spool/{call}.spool` with its header and starts the
    /// writer task; the file never grows past `max_bytes` (what comes
    /// after is dropped, and the call counted once as truncated).
    pub async fn create(
        dir: &Path,
        header: SpoolHeader,
        max_bytes: u64,
    ) -> Result<Spool, SpoolError> {
        let path = spool_path(dir, header.call);
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        let mut file = tokio::fs::File::create(&path).await?;
        file.write_all(&header.to_bytes()).await?;
        file.flush().await?;
        let (tx, rx) = mpsc::channel(SPOOL_CHANNEL_CAPACITY);
        let writer = tokio::spawn(write_loop(file, rx, max_bytes));
        Ok(Spool {
            tap: SpoolTap {
                tx,
                dropped: Arc::new(AtomicU64::new(0)),
            },
            path,
            writer,
        })
    }

    /// Closes the spool once every clone of the tap is gone (the caller
    /// drops its clones first) and waits for the writer, at most `timeout`.
    pub async fn finish(self, timeout: Duration) -> Result<SpoolSummary, SpoolError> {
        let dropped = self.tap.dropped.load(Ordering::Relaxed);
        drop(self.tap);
        let records = match tokio::time::timeout(timeout, self.writer).await {
            Ok(Ok(result)) => result?,
            Ok(Err(join)) => return Err(SpoolError::Io(std::io::Error::other(join))),
            Err(_) => {
                return Err(SpoolError::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "spool writer did not finish in time",
                )));
            }
        };
        Ok(SpoolSummary {
            path: self.path,
            records,
            dropped,
        })
    }
}

async fn write_loop(
    file: tokio::fs::File,
    mut rx: mpsc::Receiver<Item>,
    max_bytes: u64,
) -> Result<u64, SpoolError> {
    let mut size = HEADER_LEN as u64;
    let mut truncated = false;
    let mut out = tokio::io::BufWriter::with_capacity(64 * 1024, file);
    let start = Instant::now();
    let mut last_us = 0u64;
    let mut last_flush = Instant::now();
    let mut records = 0u64;
    let mut buf = Vec::with_capacity(RECORD_HEADER_LEN + 640);
    while let Some(item) = rx.recv().await {
        let at_us = u64::try_from(item.at.saturating_duration_since(start).as_micros())
            .unwrap_or(u64::MAX)
            .max(last_us);
        last_us = at_us;
        buf.clear();
        encode_record(item.direction, at_us, &item.pcm, &mut buf);
        if size + buf.len() as u64 > max_bytes {
            if !truncated {
                truncated = true;
                metrics::counter!(TRUNCATED_METRIC).increment(1);
                tracing::warn!(
                    max_bytes,
                    "recording spool full: the rest of the call is not recorded"
                );
            }
            continue;
        }
        size += buf.len() as u64;
        out.write_all(&buf).await?;
        records += 1;
        if last_flush.elapsed() >= FLUSH_EVERY {
            out.flush().await?;
            last_flush = Instant::now();
        }
    }
    out.flush().await?;
    out.get_mut().sync_all().await?;
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> SpoolHeader {
        SpoolHeader {
            sample_rate: 16_000,
            tenant: TenantId(Uuid::now_v7()),
            call: CallId(Uuid::now_v7()),
        }
    }

    fn le(samples: &[i16]) -> Vec<u8> {
        samples.iter().flat_map(|s| s.to_le_bytes()).collect()
    }

    #[test]
    fn records_round_trip_and_a_torn_tail_is_cut() {
        let h = header();
        let mut bytes = h.to_bytes().to_vec();
        encode_record(Direction::Callee, 10, &le(&[1, -2, 3]), &mut bytes);
        encode_record(
            Direction::Agent,
            20_000,
            &le(&[i16::MIN, i16::MAX]),
            &mut bytes,
        );
        let whole = bytes.len();
        encode_record(Direction::Agent, 40_000, &le(&[7; 320]), &mut bytes);
        bytes.truncate(whole + 20); // crash in the middle of the third
        let mut r = SpoolReader::new(&bytes[..]).expect("header");
        assert_eq!(r.header, h);
        assert_eq!(
            r.next_chunk(),
            Some(Chunk {
                direction: Direction::Callee,
                at_us: 10,
                pcm: vec![1, -2, 3]
            })
        );
        assert_eq!(
            r.next_chunk().map(|c| (c.direction, c.at_us, c.pcm)),
            Some((Direction::Agent, 20_000, vec![i16::MIN, i16::MAX]))
        );
        assert_eq!(r.next_chunk(), None);
    }

    #[test]
    fn damaged_records_end_the_spool_and_bad_headers_are_refused() {
        let mut bytes = header().to_bytes().to_vec();
        bytes.push(9); // unknown direction
        bytes.extend_from_slice(&[0; 12]);
        let mut r = SpoolReader::new(&bytes[..]).expect("header");
        assert_eq!(r.next_chunk(), None);
        let mut huge = header().to_bytes().to_vec();
        huge.push(0);
        huge.extend_from_slice(&0u64.to_le_bytes());
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        let mut r = SpoolReader::new(&huge[..]).expect("header");
        assert_eq!(r.next_chunk(), None, "no giant allocation");
        assert!(matches!(
            SpoolReader::new(&b"RIFF....not a spool at all, no no no no no"[..]),
            Err(SpoolError::BadHeader)
        ));
        assert!(matches!(
            SpoolReader::new(&b"TKSP"[..]),
            Err(SpoolError::BadHeader)
        ));
    }

    #[tokio::test]
    async fn the_writer_spools_both_directions_in_arrival_order() {
        let dir = std::env::temp_dir().join(format!("talky-spool-{}", Uuid::now_v7()));
        let h = header();
        let spool = Spool::create(&dir, h, u64::MAX).await.expect("create");
        let tap = spool.tap.clone();
        tap.push(Direction::Callee, &le(&[1; 320]));
        tokio::time::sleep(Duration::from_millis(20)).await;
        tap.push(Direction::Agent, &le(&[2; 320]));
        tap.push(Direction::Callee, &[]); // nothing to spool
        drop(tap);
        let summary = spool.finish(Duration::from_secs(5)).await.expect("finish");
        assert_eq!(summary.records, 2);
        assert_eq!(summary.dropped, 0);
        let file = std::fs::File::open(&summary.path).expect("open");
        let mut r = SpoolReader::new(std::io::BufReader::new(file)).expect("header");
        assert_eq!(r.header, h);
        let a = r.next_chunk().expect("first");
        let b = r.next_chunk().expect("second");
        assert_eq!((a.direction, a.pcm.len()), (Direction::Callee, 320));
        assert_eq!((b.direction, b.pcm[0]), (Direction::Agent, 2));
        assert!(b.at_us >= a.at_us + 15_000, "{} then {}", a.at_us, b.at_us);
        assert_eq!(r.next_chunk(), None);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn the_spool_never_grows_past_its_cap() {
        let dir = std::env::temp_dir().join(format!("talky-spool-{}", Uuid::now_v7()));
        let record = (RECORD_HEADER_LEN + 640) as u64;
        let cap = HEADER_LEN as u64 + 3 * record + 10;
        let spool = Spool::create(&dir, header(), cap).await.expect("create");
        let tap = spool.tap.clone();
        for _ in 0..10 {
            tap.push(Direction::Callee, &[1; 640]);
            tokio::task::yield_now().await;
        }
        drop(tap);
        let summary = spool.finish(Duration::from_secs(5)).await.expect("finish");
        assert_eq!(summary.records, 3, "only what fits under the cap");
        let len = std::fs::metadata(&summary.path).expect("meta").len();
        assert!(len <= cap, "{len} > {cap}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_full_channel_drops_and_counts_instead_of_blocking() {
        let (tx, _rx) = mpsc::channel(2);
        let tap = SpoolTap {
            tx,
            dropped: Arc::new(AtomicU64::new(0)),
        };
        for _ in 0..5 {
            tap.push(Direction::Callee, &[0; 640]);
        }
        assert_eq!(tap.dropped.load(Ordering::Relaxed), 3);
    }
}
