//! Waveforms: sampled signals (pleth, ECG, pressures) from decoders to segments.
//!
//! ```text
//!  decoder ──Event::Wave(WaveChunk)──▶ Segmenter ──WaveSegment──▶ encode::wave
//!  (whatever one read or poll held)    (per metric, fixed length,  (FHIR valueSampledData,
//!                                       scale change / gap closes)  PCD-01 NA, canonical JSON)
//! ```
//!
//! A [`WaveChunk`] is what a decoder saw in one go: Nonin DF2/DF7 the pleth samples of the
//! frames in one `feed`, IntelliVue one sample array of one poll result. Chunks are as long as
//! the transport made them; receivers want segments of a fixed duration, numbered per stream so
//! that a missing one shows. The [`Segmenter`] cuts the chunks of each metric into
//! [`WaveSegment`]s without losing or repeating a sample (property-tested), closes a segment
//! when the scale or sample period changes (one segment has one linear map from raw values to
//! physical ones) and when samples were lost before the gateway, and marks those gaps.
//!
//! Samples stay raw integers, as the device sent them, with the device's [`WaveScale`]: FHIR
//! `SampledData` and PCD-01 both describe the map (origin/factor, data range) beside raw data,
//! so nothing is rounded. See docs/waveforms.md.

mod segment;
mod segmenter;

pub use segment::{Continuity, SampleMarks, SamplePeriod, WaveChunk, WaveScale, WaveSegment};
pub use segmenter::{Segmenter, SegmenterConfig};

#[cfg(feature = "sim")]
pub mod shape;
