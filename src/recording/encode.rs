//! Spool -> Ogg Opus: two channels (left callee, right agent), each its
//! own mono Opus stream ([`super::opus`]: channel mapping family 1), 16 kHz
//! input, libopus (audiopus) in VOIP mode, 20 ms packets, in an Ogg stream
//! per RFC 7845: an `OpusHead` page, an `OpusTags` page, then audio pages
//! (about one a second) whose granule positions count 48 kHz samples
//! including the pre-skip; the last page has the EOS flag and a granule
//! that trims the padding of the last packet. Page CRCs come from the
//! `ogg` crate (RFC 3533).
//!
//! Runs on a blocking thread (the pool's): plain `std::io`.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::Path;

use audiopus::coder::{Decoder, Encoder};
use audiopus::{Application, Bitrate, Channels, SampleRate};
use ogg::writing::{PacketWriteEndInfo, PacketWriter};

use super::mix::{FRAME_SAMPLES, Mixer};
use super::opus::{FramingError, pack_two, unpack_two};
use super::spool::{SpoolError, SpoolHeader, SpoolReader};

/// The only input rate the media socket uses (Vonage `audio/l16;rate=16000`).
pub const RATE: u32 = 16_000;
/// Bits per second of each side's mono stream (64 kbit/s, about 480 KB a
/// minute, for the call). Enough for the in-band test code's tones to
/// survive while both sides talk at once (the unit tests check it).
pub const BITRATE_PER_SIDE: i32 = 32_000;
/// Largest Opus packet we accept from the encoder.
const MAX_PACKET: usize = 4000;
/// 20 ms packets in 48 kHz units (Ogg Opus granule positions).
const GRANULE_PER_FRAME: u64 = 960;
/// Audio packets per page (one second).
const PACKETS_PER_PAGE: u64 = 50;
/// Vendor string of `OpusTags`.
const VENDOR: &str = "talky";

/// Why a spool could not be encoded.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// Reading the spool failed.
    #[error(transparent)]
    Spool(#[from] SpoolError),
    /// Writing the file failed.
    #[error("recording i/o: {0}")]
    Io(#[from] std::io::Error),
    /// libopus refused.
    #[error("opus: {0}")]
    Opus(#[from] audiopus::Error),
    /// The spool is at a rate we do not encode.
    #[error("spool sample rate {0} Hz is not 16000")]
    Rate(u32),
    /// A packet could not be framed.
    #[error(transparent)]
    Framing(#[from] FramingError),
    /// Not an Ogg Opus stream we can read back.
    #[error("not an Ogg Opus stream: {0}")]
    Format(String),
}

/// What an encoding produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Encoded {
    /// The spool's header (tenant, call).
    pub header: SpoolHeader,
    /// Audio length, milliseconds.
    pub duration_ms: u64,
    /// Records read from the spool.
    pub chunks: u64,
    /// Chunks the mixer dropped (too far ahead).
    pub dropped: u64,
}

/// The `OpusHead` packet (RFC 7845 §5.1) of two channels in two uncoupled
/// streams: mapping family 1, stream 0 -> left, stream 1 -> right.
pub fn opus_head(pre_skip: u16, input_rate: u32) -> Vec<u8> {
    let mut head = Vec::with_capacity(23);
    head.extend_from_slice(b"OpusHead");
    head.push(1); // version
    head.push(2); // channels
    head.extend_from_slice(&pre_skip.to_le_bytes());
    head.extend_from_slice(&input_rate.to_le_bytes());
    head.extend_from_slice(&0i16.to_le_bytes()); // output gain
    head.push(1); // channel mapping family
    head.push(2); // streams
    head.push(0); // coupled streams
    head.extend_from_slice(&[0, 1]); // channel mapping
    head
}

fn mono_encoder() -> Result<Encoder, EncodeError> {
    let mut encoder = Encoder::new(SampleRate::Hz16000, Channels::Mono, Application::Voip)?;
    encoder.set_bitrate(Bitrate::BitsPerSecond(BITRATE_PER_SIDE))?;
    Ok(encoder)
}

/// The `OpusTags` packet (RFC 7845 §5.2) with one comment.
pub fn opus_tags(comment: &str) -> Vec<u8> {
    let mut tags = Vec::new();
    tags.extend_from_slice(b"OpusTags");
    tags.extend_from_slice(&(VENDOR.len() as u32).to_le_bytes());
    tags.extend_from_slice(VENDOR.as_bytes());
    tags.extend_from_slice(&1u32.to_le_bytes());
    tags.extend_from_slice(&(comment.len() as u32).to_le_bytes());
    tags.extend_from_slice(comment.as_bytes());
    tags
}

/// Streams 20 ms stereo frames into an Ogg Opus file.
pub struct OggOpusWriter<W: Write> {
    ogg: PacketWriter<'static, W>,
    encoders: [Encoder; 2],
    side: [Vec<i16>; 2],
    serial: u32,
    pre_skip: u64,
    packets: u64,
    held: Option<Vec<u8>>,
    out: Vec<u8>,
}

impl<W: Write> OggOpusWriter<W> {
    /// Writes the two header pages.
    pub fn new(w: W, serial: u32, comment: &str) -> Result<Self, EncodeError> {
        let encoders = [mono_encoder()?, mono_encoder()?];
        // Lookahead is in input samples; Ogg Opus counts 48 kHz samples.
        let pre_skip = u64::from(encoders[0].lookahead()?) * 3;
        let mut ogg = PacketWriter::new(w);
        let head = opus_head(u16::try_from(pre_skip).unwrap_or(u16::MAX), RATE);
        ogg.write_packet(head, serial, PacketWriteEndInfo::EndPage, 0)?;
        ogg.write_packet(opus_tags(comment), serial, PacketWriteEndInfo::EndPage, 0)?;
        Ok(Self {
            ogg,
            encoders,
            side: [
                Vec::with_capacity(FRAME_SAMPLES),
                Vec::with_capacity(FRAME_SAMPLES),
            ],
            serial,
            pre_skip,
            packets: 0,
            held: None,
            out: vec![0u8; MAX_PACKET],
        })
    }

    /// Encodes one frame of [`FRAME_SAMPLES`] interleaved stereo samples.
    pub fn write_frame(&mut self, stereo: &[i16]) -> Result<(), EncodeError> {
        let packet = self.encode(stereo)?;
        if let Some(prev) = self.held.replace(packet) {
            self.packets += 1;
            let end = if self.packets.is_multiple_of(PACKETS_PER_PAGE) {
                PacketWriteEndInfo::EndPage
            } else {
                PacketWriteEndInfo::NormalPacket
            };
            self.ogg
                .write_packet(prev, self.serial, end, self.packets * GRANULE_PER_FRAME)?;
        }
        Ok(())
    }

    /// One multistream packet of an interleaved stereo frame.
    fn encode(&mut self, stereo: &[i16]) -> Result<Vec<u8>, EncodeError> {
        for (side, samples) in self.side.iter_mut().enumerate() {
            samples.clear();
            samples.extend(stereo.iter().skip(side).step_by(2));
        }
        let n = self.encoders[0].encode(&self.side[0], &mut self.out)?;
        let first = self.out[..n].to_vec();
        let n = self.encoders[1].encode(&self.side[1], &mut self.out)?;
        Ok(pack_two(&first, &self.out[..n])?)
    }

    /// Flushes the encoder's lookahead with silence, writes the last page
    /// (EOS) with the granule of `real_samples` input samples per channel,
    /// and returns the writer.
    pub fn finish(mut self, real_samples: u64) -> Result<W, EncodeError> {
        let silence = vec![0i16; FRAME_SAMPLES * 2];
        // Enough packets that the decoder outputs every real sample.
        let needed = (self.pre_skip + real_samples * 3)
            .div_ceil(GRANULE_PER_FRAME)
            .max(1);
        while self.packets + u64::from(self.held.is_some()) < needed {
            self.write_frame(&silence)?;
        }
        let last = match self.held.take() {
            Some(p) => p,
            None => self.encode(&silence)?,
        };
        self.packets += 1;
        let granule = (self.pre_skip + real_samples * 3).min(self.packets * GRANULE_PER_FRAME);
        self.ogg
            .write_packet(last, self.serial, PacketWriteEndInfo::EndStream, granule)?;
        let mut w = self.ogg.into_inner();
        w.flush()?;
        Ok(w)
    }
}

/// Encodes a spool into an Ogg Opus file at `out`.
pub fn encode_spool(spool: &Path, out: &Path) -> Result<Encoded, EncodeError> {
    let file = File::open(spool).map_err(SpoolError::from)?;
    let mut reader = SpoolReader::new(BufReader::new(file))?;
    let header = reader.header;
    if header.sample_rate != RATE {
        return Err(EncodeError::Rate(header.sample_rate));
    }
    let serial = header.call.0.as_u128() as u32;
    let file = File::create(out)?;
    let mut writer = OggOpusWriter::new(
        BufWriter::new(file),
        serial,
        &format!("TITLE=call {}", header.call),
    )?;
    let mut mixer = Mixer::new(RATE);
    let mut chunks = 0u64;
    while let Some(chunk) = reader.next_chunk() {
        chunks += 1;
        mixer.push(chunk.direction, chunk.at_us, &chunk.pcm);
        while let Some(frame) = mixer.pop_ready() {
            writer.write_frame(&frame)?;
        }
    }
    let dropped = mixer.dropped;
    let (rest, total) = mixer.finish();
    for frame in rest {
        writer.write_frame(&frame)?;
    }
    let w = writer.finish(total)?;
    let file = w.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    Ok(Encoded {
        header,
        duration_ms: total * 1000 / u64::from(RATE),
        chunks,
        dropped,
    })
}

/// A recording decoded back to PCM (for tests and tools).
#[derive(Clone, Debug)]
pub struct DecodedRecording {
    /// Channels in `OpusHead`.
    pub channels: u8,
    /// Input rate in `OpusHead`.
    pub input_rate: u32,
    /// Left (callee), 16 kHz, pre-skip and end padding trimmed.
    pub left: Vec<i16>,
    /// Right (agent).
    pub right: Vec<i16>,
    /// Final granule position (48 kHz units, pre-skip included).
    pub final_granule: u64,
    /// Whether the last page carried EOS.
    pub eos: bool,
}

/// Decodes an Ogg Opus stereo file at 16 kHz.
pub fn decode_file(path: &Path) -> Result<DecodedRecording, EncodeError> {
    let file = File::open(path)?;
    let mut reader = ogg::PacketReader::new(BufReader::new(file));
    let bad = |m: &str| EncodeError::Format(m.to_string());
    let read = |r: &mut ogg::PacketReader<BufReader<File>>| {
        r.read_packet()
            .map_err(|e| EncodeError::Format(e.to_string()))
    };
    let head = read(&mut reader)?.ok_or_else(|| bad("empty"))?;
    if head.data.len() < 23 || &head.data[..8] != b"OpusHead" {
        return Err(bad("no OpusHead"));
    }
    if head.data[18..21] != [1, 2, 0] {
        return Err(bad("not two uncoupled streams (mapping family 1)"));
    }
    let channels = head.data[9];
    let pre_skip = u64::from(u16::from_le_bytes([head.data[10], head.data[11]]));
    let input_rate =
        u32::from_le_bytes([head.data[12], head.data[13], head.data[14], head.data[15]]);
    let tags = read(&mut reader)?.ok_or_else(|| bad("no OpusTags"))?;
    if !tags.data.starts_with(b"OpusTags") {
        return Err(bad("no OpusTags"));
    }
    let mut decoders = [
        Decoder::new(SampleRate::Hz16000, Channels::Mono)?,
        Decoder::new(SampleRate::Hz16000, Channels::Mono)?,
    ];
    let mut sides: [Vec<i16>; 2] = [Vec::new(), Vec::new()];
    let mut buf = vec![0i16; 5760];
    let mut final_granule = 0;
    let mut eos = false;
    while let Some(packet) = read(&mut reader)? {
        let (first, second) = unpack_two(&packet.data)?;
        for (i, p) in [first, second].iter().enumerate() {
            let n = decoders[i].decode(Some(&p[..]), &mut buf[..], false)?;
            sides[i].extend_from_slice(&buf[..n]);
        }
        if packet.last_in_stream() {
            final_granule = packet.absgp_page();
            eos = true;
        }
    }
    // 48 kHz units -> 16 kHz samples.
    let skip = (pre_skip / 3) as usize;
    let keep = (final_granule.saturating_sub(pre_skip) / 3) as usize;
    let [left, right] = sides.map(|s| s.into_iter().skip(skip).take(keep).collect());
    Ok(DecodedRecording {
        channels,
        input_rate,
        left,
        right,
        final_granule,
        eos,
    })
}
