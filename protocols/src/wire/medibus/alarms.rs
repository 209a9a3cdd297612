//! Current alarms, codepage 1: the answer to request 0x27.
//!
//! ```text
//! data = record × n, each 15 characters:
//!   | priority: 1 byte, 1..31, 31 highest | code: 2 ASCII hex | phrase: 12 characters |
//! ```
//!
//! Sources: the MIT MEDIBUS client `wokai/xenon` (`model/medibus/alarmStatusResponse.js`,
//! `alarmSegment.js`), which cites the *RS 232 MEDIBUS Protocol Definition* 6.00 p. 15 "Alarm
//! Status Response" for this layout; Dräger's Fabius Tiro instructions for use (alarm
//! priorities: 31 highest, 1 lowest; warning / caution / note). **[single source for the
//! layout]**; how the priority byte is written (a binary number or a character) is not stated
//! beyond "one byte", so the byte is kept as it is and medgw maps no IEC priority from it (the
//! banding of 1–31 into high/medium/low is device-specific and was not found). Read as a binary
//! number, priorities 1, 13, 17, 19, 24 and 27 would be SOH, CR, DC1, DC3, CAN and ESC, which
//! the framing gives other meanings, so real devices may well write it otherwise: a capture is
//! needed before the priority byte is interpreted.
//! No field says whether an alarm is physiological or technical.

use crate::error::Error;

/// Characters per alarm record.
pub const RECORD_LEN: usize = 15;
/// Characters of the alarm phrase.
pub const PHRASE_LEN: usize = 12;

/// One current alarm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AlarmRecord<'a> {
    /// The priority byte as sent (1..31 by the protocol definition, 31 highest).
    pub priority: u8,
    pub code: u8,
    /// The phrase, trailing blanks removed.
    pub phrase: &'a [u8],
}

fn unhex(d: u8) -> Option<u8> {
    (d as char).to_digit(16).map(|v| v as u8)
}

/// The records of an alarm response. A length that is not a multiple of 15 means the response
/// is damaged; a record with a code that is not two hex digits is an error of its own.
pub fn alarm_records(data: &[u8]) -> Result<impl Iterator<Item = Result<AlarmRecord<'_>, Error>> + '_, Error> {
    if data.len() % RECORD_LEN != 0 {
        return Err(Error::Truncated { needed: data.len().div_ceil(RECORD_LEN) * RECORD_LEN, got: data.len() });
    }
    Ok(data.chunks_exact(RECORD_LEN).map(|r| {
        let code = match (unhex(r[1]), unhex(r[2])) {
            (Some(h), Some(l)) => h << 4 | l,
            _ => return Err(Error::BadField { field: "medibus alarm code", value: u32::from(r[1]) << 8 | u32::from(r[2]) }),
        };
        let phrase = &r[3..];
        let end = phrase.iter().rposition(|&b| b != b' ' && b != 0).map_or(0, |i| i + 1);
        Ok(AlarmRecord { priority: r[0], code, phrase: &phrase[..end] })
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    #[test]
    fn records_of_fifteen_characters() {
        let data = b"\x1f3ASpO2 low    \x0a12Check sensor";
        let recs: Vec<_> = alarm_records(data).unwrap().collect::<Result<_, _>>().unwrap();
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0], AlarmRecord { priority: 31, code: 0x3A, phrase: b"SpO2 low" });
        assert_eq!((recs[1].priority, recs[1].code, recs[1].phrase), (10, 0x12, &b"Check sensor"[..]));
        assert_eq!(alarm_records(b"").unwrap().count(), 0);
        assert!(alarm_records(&data[..20]).is_err());
        let bad: Vec<_> = alarm_records(b"\x05ZZphrase      ").unwrap().collect();
        assert!(bad[0].is_err());
    }
}
