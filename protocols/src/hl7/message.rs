//! The ER7 ("pipe and hat") encoding of HL7 v2 (HL7 v2.5 §2.5–2.7).
//!
//! ```text
//! message      = segment *( segment )            segments end with CR (LF and CR LF accepted)
//! segment      = id 3*( field-sep field )        id: three upper-case letters or digits
//! field        = repetition *( rep-sep repetition )
//! repetition   = component *( comp-sep component )
//! component    = subcomp *( sub-sep subcomp )
//! MSH-1        = the field separator itself; MSH-2 = comp, rep, escape, sub (4 characters)
//! ```
//! Splitting works on the raw text: an escaped delimiter (`\F\`, `\S\`, ...) never contains the
//! delimiter itself, so values are split first and unescaped last ([`Field::text`]).

use alloc::borrow::Cow;
use alloc::string::String;
use alloc::vec::Vec;

use super::Hl7Error;

/// The five delimiters a message declares in MSH-1 and MSH-2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delimiters {
    pub field: char,
    pub component: char,
    pub repetition: char,
    pub escape: char,
    pub subcomponent: char,
}

impl Default for Delimiters {
    /// `|^~\&`, what nearly every sender uses.
    fn default() -> Delimiters {
        Delimiters { field: '|', component: '^', repetition: '~', escape: '\\', subcomponent: '&' }
    }
}

impl Delimiters {
    /// MSH-2 as written in a message: component, repetition, escape, subcomponent.
    pub fn encoding_characters(&self) -> [char; 4] {
        [self.component, self.repetition, self.escape, self.subcomponent]
    }
}

/// A parsed message: its delimiters and segments, borrowing the text.
#[derive(Debug, Clone)]
pub struct Message<'a> {
    delimiters: Delimiters,
    segments: Vec<Segment<'a>>,
}

/// One segment; `fields[n]` is field n as HL7 numbers it (`fields[0]` is the segment id).
#[derive(Debug, Clone)]
pub struct Segment<'a> {
    fields: Vec<&'a str>,
    delimiters: Delimiters,
}

/// A field, repetition, component or subcomponent: raw text plus the delimiters to split it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field<'a> {
    raw: &'a str,
    delimiters: Delimiters,
}

/// An escape sequence that is unterminated or not one HL7 defines for text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadEscape;

/// Turns the bytes of a message into text: UTF-8, or ISO 8859-1 when MSH-18 says `8859/1`.
///
/// Anything else that is not UTF-8 is rejected: guessing a character set could change a name.
pub fn decode_text(bytes: &[u8]) -> Result<Cow<'_, str>, Hl7Error> {
    if let Ok(s) = core::str::from_utf8(bytes) {
        return Ok(Cow::Borrowed(s));
    }
    // MSH-18 from the raw bytes of the first segment (MSH itself is ASCII).
    if bytes.len() < 4 || &bytes[..3] != b"MSH" {
        return Err(Hl7Error::MissingMsh);
    }
    let sep = bytes[3];
    let end = bytes.iter().position(|&b| b == b'\r' || b == b'\n').unwrap_or(bytes.len());
    // split(sep) yields "MSH", MSH-2, MSH-3, ...: MSH-18 is the 18th item (index 17).
    let charset = bytes[..end].split(|&b| b == sep).nth(17).unwrap_or(b"");
    if charset == b"8859/1" {
        Ok(Cow::Owned(bytes.iter().map(|&b| b as char).collect()))
    } else {
        Err(Hl7Error::BadCharset)
    }
}

impl<'a> Message<'a> {
    /// Splits a message into segments and fields after checking MSH-1/MSH-2 and segment ids.
    pub fn parse(text: &'a str) -> Result<Message<'a>, Hl7Error> {
        let text = text.trim_start_matches(['\r', '\n', '\u{feff}']);
        if text.is_empty() {
            return Err(Hl7Error::Empty);
        }
        if !text.starts_with("MSH") {
            return Err(Hl7Error::MissingMsh);
        }
        let delimiters = read_delimiters(text)?;
        let mut segments = Vec::new();
        for line in text.split(['\r', '\n']) {
            if line.is_empty() {
                continue;
            }
            segments.push(Segment::split(line, delimiters)?);
        }
        Ok(Message { delimiters, segments })
    }

    pub fn delimiters(&self) -> Delimiters {
        self.delimiters
    }

    pub fn segments(&self) -> &[Segment<'a>] {
        &self.segments
    }

    /// The first segment with this id.
    pub fn segment(&self, id: &str) -> Option<&Segment<'a>> {
        self.segments.iter().find(|s| s.id() == id)
    }
}

fn read_delimiters(text: &str) -> Result<Delimiters, Hl7Error> {
    let mut chars = text[3..].chars();
    let field = chars.next().ok_or(Hl7Error::BadEncodingCharacters)?;
    let enc: Vec<char> = chars.take_while(|&c| c != field && c != '\r' && c != '\n').collect();
    // v2.7 adds a fifth (truncation) character; accept it so that the version check, not this
    // one, says why a v2.7 message is refused.
    if !(enc.len() == 4 || enc.len() == 5) {
        return Err(Hl7Error::BadEncodingCharacters);
    }
    let d = Delimiters { field, component: enc[0], repetition: enc[1], escape: enc[2], subcomponent: enc[3] };
    let all = [field, enc[0], enc[1], enc[2], enc[3]];
    for (i, c) in all.iter().enumerate() {
        if c.is_alphanumeric() || c.is_whitespace() || c.is_control() || all[i + 1..].contains(c) {
            return Err(Hl7Error::BadEncodingCharacters);
        }
    }
    Ok(d)
}

impl<'a> Segment<'a> {
    fn split(line: &'a str, d: Delimiters) -> Result<Segment<'a>, Hl7Error> {
        let id_ok = line.len() >= 3
            && line.as_bytes()[..3].iter().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
            && line[3..].chars().next().is_none_or(|c| c == d.field);
        if !id_ok {
            return Err(Hl7Error::BadSegmentId { id: line.chars().take(3).collect() });
        }
        let mut fields: Vec<&'a str> = line.split(d.field).collect();
        if &line[..3] == "MSH" && line.len() > 3 {
            // MSH-1 is the separator itself, so MSH-n is the (n-1)th piece after the id.
            let sep_len = d.field.len_utf8();
            fields.insert(1, &line[3..3 + sep_len]);
        }
        Ok(Segment { fields, delimiters: d })
    }

    pub fn id(&self) -> &'a str {
        self.fields[0]
    }

    /// Field `n` (1-based, as HL7 numbers it); empty when absent.
    pub fn field(&self, n: usize) -> Field<'a> {
        Field { raw: if n == 0 { "" } else { self.fields.get(n).copied().unwrap_or("") }, delimiters: self.delimiters }
    }

    /// The number of the last field present.
    pub fn len(&self) -> usize {
        self.fields.len() - 1
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<'a> Field<'a> {
    pub fn new(raw: &'a str, delimiters: Delimiters) -> Field<'a> {
        Field { raw, delimiters }
    }

    /// The text as on the wire, still escaped.
    pub fn raw(&self) -> &'a str {
        self.raw
    }

    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// Each repetition of the field.
    pub fn repetitions(&self) -> impl Iterator<Item = Field<'a>> + '_ {
        let d = self.delimiters;
        self.raw.split(d.repetition).map(move |raw| Field { raw, delimiters: d })
    }

    /// Component `n` (1-based) of the first repetition; empty when absent.
    pub fn component(&self, n: usize) -> Field<'a> {
        let first = self.raw.split(self.delimiters.repetition).next().unwrap_or("");
        Field { raw: nth(first, self.delimiters.component, n), delimiters: self.delimiters }
    }

    /// Subcomponent `n` (1-based); empty when absent.
    pub fn subcomponent(&self, n: usize) -> Field<'a> {
        Field { raw: nth(self.raw, self.delimiters.subcomponent, n), delimiters: self.delimiters }
    }

    /// The value with escape sequences resolved (HL7 v2.5 §2.7).
    pub fn text(&self) -> Result<String, BadEscape> {
        unescape(self.raw, &self.delimiters)
    }
}

fn nth(s: &str, sep: char, n: usize) -> &str {
    if n == 0 {
        return "";
    }
    s.split(sep).nth(n - 1).unwrap_or("")
}

/// Resolves `\F\ \S\ \T\ \R\ \E\` (the delimiters), `\Xhh..\` (bytes: UTF-8, else ISO 8859-1),
/// `\.br\`/`\.sp\` (line breaks) and drops `\H\ \N\` and the other `\.xx\` formatting commands.
/// Character-set switches (`\C..\`, `\M..\`) and locally defined `\Z..\` are refused: a name or
/// identifier read under the wrong character set is wrong data.
pub fn unescape(raw: &str, d: &Delimiters) -> Result<String, BadEscape> {
    if !raw.contains(d.escape) {
        return Ok(String::from(raw));
    }
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    let esc_len = d.escape.len_utf8();
    while let Some(i) = rest.find(d.escape) {
        out.push_str(&rest[..i]);
        let after = &rest[i + esc_len..];
        let j = after.find(d.escape).ok_or(BadEscape)?;
        let seq = &after[..j];
        match seq {
            "F" => out.push(d.field),
            "S" => out.push(d.component),
            "T" => out.push(d.subcomponent),
            "R" => out.push(d.repetition),
            "E" => out.push(d.escape),
            "H" | "N" => {}
            ".br" | ".sp" => out.push('\n'),
            s if s.starts_with('.') && s.len() > 1 => {}
            s if s.starts_with('X') => {
                let hex = &s[1..];
                if hex.is_empty() || hex.len() % 2 != 0 {
                    return Err(BadEscape);
                }
                let mut bytes = Vec::with_capacity(hex.len() / 2);
                for pair in hex.as_bytes().chunks(2) {
                    let hi = (pair[0] as char).to_digit(16).ok_or(BadEscape)?;
                    let lo = (pair[1] as char).to_digit(16).ok_or(BadEscape)?;
                    bytes.push((hi * 16 + lo) as u8);
                }
                match core::str::from_utf8(&bytes) {
                    Ok(s) => out.push_str(s),
                    Err(_) => out.extend(bytes.iter().map(|&b| b as char)),
                }
            }
            _ => return Err(BadEscape),
        }
        rest = &after[j + esc_len..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Writes `text` with the delimiters it contains escaped, for values medgw puts in a message.
pub fn escape_into(out: &mut String, text: &str, d: &Delimiters) {
    for c in text.chars() {
        let seq = if c == d.field {
            "F"
        } else if c == d.component {
            "S"
        } else if c == d.subcomponent {
            "T"
        } else if c == d.repetition {
            "R"
        } else if c == d.escape {
            "E"
        } else if c == '\r' {
            "X0D"
        } else if c == '\n' {
            "X0A"
        } else {
            out.push(c);
            continue;
        };
        out.push(d.escape);
        out.push_str(seq);
        out.push(d.escape);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A01: &str = "MSH|^~\\&|ADT|HOSP|MEDGW|ICU|20261125101500||ADT^A01^ADT_A01|C1|P|2.5\rEVN|A01|20261125101500\rPID|||MRN1^^^HOSP^MR~X9^^^OTHER^PI||Muster^Erika\r";

    #[test]
    fn splits_fields_components_and_repetitions() {
        let m = Message::parse(A01).unwrap();
        assert_eq!(m.segments().len(), 3);
        let msh = m.segment("MSH").unwrap();
        assert_eq!(msh.field(1).raw(), "|");
        assert_eq!(msh.field(2).raw(), "^~\\&");
        assert_eq!(msh.field(9).component(2).raw(), "A01");
        assert_eq!(msh.field(10).raw(), "C1");
        assert_eq!(msh.field(40).raw(), "");
        let pid = m.segment("PID").unwrap();
        let ids: Vec<&str> = pid.field(3).repetitions().map(|r| r.component(1).raw()).collect();
        assert_eq!(ids, ["MRN1", "X9"]);
        assert_eq!(pid.field(5).component(2).raw(), "Erika");
    }

    #[test]
    fn uses_the_declared_delimiters() {
        let m = Message::parse("MSH#:*!@#A#B\nPID###ID1:::AUTH@1.2@ISO*ID2:::AUTH2##N!F!ame\n").unwrap();
        let pid = m.segment("PID").unwrap();
        assert_eq!(pid.field(3).component(4).subcomponent(2).raw(), "1.2");
        assert_eq!(pid.field(3).repetitions().nth(1).unwrap().component(1).raw(), "ID2");
        assert_eq!(pid.field(5).text().unwrap(), "N#ame");
    }

    #[test]
    fn resolves_escape_sequences() {
        let d = Delimiters::default();
        assert_eq!(unescape("A\\F\\B\\S\\C\\T\\D\\R\\E\\E\\", &d).unwrap(), "A|B^C&D~E\\");
        assert_eq!(unescape("M\\XC3BC\\ller", &d).unwrap(), "Müller");
        assert_eq!(unescape("M\\XFC\\ller", &d).unwrap(), "Müller");
        assert_eq!(unescape("a\\.br\\b\\H\\c\\N\\", &d).unwrap(), "a\nbc");
        assert_eq!(unescape("open\\F", &d), Err(BadEscape));
        assert_eq!(unescape("\\X1\\", &d), Err(BadEscape));
        assert_eq!(unescape("\\XZZ\\", &d), Err(BadEscape));
        assert_eq!(unescape("\\C2842\\", &d), Err(BadEscape));
        let mut out = String::new();
        escape_into(&mut out, "A|B^C&D~E\\\r", &d);
        assert_eq!(out, "A\\F\\B\\S\\C\\T\\D\\R\\E\\E\\\\X0D\\");
        assert_eq!(unescape(&out, &d).unwrap(), "A|B^C&D~E\\\r");
    }

    #[test]
    fn rejects_malformed_headers() {
        assert_eq!(Message::parse("").unwrap_err(), Hl7Error::Empty);
        assert_eq!(Message::parse("PID|||1\r").unwrap_err(), Hl7Error::MissingMsh);
        assert_eq!(Message::parse("MSH").unwrap_err(), Hl7Error::BadEncodingCharacters);
        assert_eq!(Message::parse("MSH|^~\\|A").unwrap_err(), Hl7Error::BadEncodingCharacters);
        assert_eq!(Message::parse("MSH|^^\\&|A").unwrap_err(), Hl7Error::BadEncodingCharacters);
        assert_eq!(Message::parse("MSH|^~A&|A").unwrap_err(), Hl7Error::BadEncodingCharacters);
        assert_eq!(Message::parse("MSH|^~\\|&|A").unwrap_err(), Hl7Error::BadEncodingCharacters);
        assert!(matches!(Message::parse("MSH|^~\\&|A\rpid|1\r").unwrap_err(), Hl7Error::BadSegmentId { .. }));
        assert!(matches!(Message::parse("MSH|^~\\&|A\rPIDX|1\r").unwrap_err(), Hl7Error::BadSegmentId { .. }));
        // A bare second MSH is a segment with no fields, not a panic.
        assert_eq!(Message::parse("MSH|^~\\&|A\rMSH\r").unwrap().segments()[1].len(), 0);
    }

    #[test]
    fn decodes_latin1_only_when_declared() {
        let mut m = b"MSH|^~\\&|A|B|C|D|20260101||ADT^A08|1|P|2.5|||||DE|8859/1\rPID|||1^^^H||M\xfcller\r".to_vec();
        assert!(decode_text(&m).unwrap().contains("Müller"));
        let pos = m.windows(6).position(|w| w == b"8859/1").unwrap();
        m[pos..pos + 6].copy_from_slice(b"ASCII ");
        assert_eq!(decode_text(&m).unwrap_err(), Hl7Error::BadCharset);
    }
}
