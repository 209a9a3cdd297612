//! The toolkit the section readers are written with: typed getters over toml's spanned
//! tables that record every problem with its line, column and key instead of stopping at the
//! first, and the unknown-key check with its "did you mean" hint.

use std::collections::BTreeSet;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::diagnostics::ConfigError;
use super::model::Secret;

/// A secret and where it came from, for the checks that depend on what it protects.
pub(super) struct SecretRead {
    pub(super) secret: Secret,
    /// The `..._file` or `..._env` key and the span of its value.
    pub(super) key: String,
    pub(super) span: Range<usize>,
    pub(super) file: Option<PathBuf>,
}

pub(super) struct Tbl<'a, 'i> {
    pub(super) t: &'a DeTable<'i>,
    pub(super) span: Range<usize>,
    pub(super) path: String,
    pub(super) used: BTreeSet<String>,
}

pub(super) struct Reader<'s> {
    pub(super) src: &'s str,
    pub(super) base: &'s Path,
    pub(super) errors: Vec<ConfigError>,
    pub(super) warnings: Vec<ConfigError>,
    /// Byte offset of the start of each line, so that placing a problem costs a binary search
    /// rather than a scan of the text before it (a file may have 100,000 devices).
    pub(super) line_starts: Vec<usize>,
}

pub(super) type Val<'a, 'i> = &'a Spanned<DeValue<'i>>;

impl<'s> Reader<'s> {
    pub(super) fn new(src: &'s str, base: &'s Path) -> Reader<'s> {
        let line_starts = std::iter::once(0).chain(src.match_indices('\n').map(|(i, _)| i + 1)).collect();
        Reader { src, base, errors: Vec::new(), warnings: Vec::new(), line_starts }
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub(super) fn pos(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.src.len());
        let line = self.line_starts.partition_point(|&start| start <= offset);
        let start = self.line_starts[line - 1];
        let column = self.src.get(start..offset).map(|s| s.chars().count()).unwrap_or(offset - start) + 1;
        (line, column)
    }

    pub(super) fn err(&mut self, span: Range<usize>, key: &str, message: impl Into<String>, hint: Option<String>) {
        let (line, column) = self.pos(span.start);
        self.errors.push(ConfigError { line, column, key: key.to_string(), message: message.into(), hint });
    }

    pub(super) fn warn(&mut self, span: Range<usize>, key: &str, message: impl Into<String>, hint: Option<String>) {
        let (line, column) = self.pos(span.start);
        self.warnings.push(ConfigError { line, column, key: key.to_string(), message: message.into(), hint });
    }

    pub(super) fn key(t: &Tbl, k: &str) -> String {
        if t.path.is_empty() {
            k.to_string()
        } else {
            format!("{}.{k}", t.path)
        }
    }

    pub(super) fn get<'a, 'i>(&mut self, t: &mut Tbl<'a, 'i>, k: &str) -> Option<Val<'a, 'i>> {
        t.used.insert(k.to_string());
        t.t.iter().find(|(key, _)| key.get_ref().as_ref() == k).map(|(_, v)| v)
    }

    pub(super) fn missing(&mut self, t: &Tbl, k: &str, hint: &str) {
        let span = t.span.clone();
        let key = Self::key(t, k);
        self.err(span, &key, "is required", Some(hint.to_string()));
    }

    pub(super) fn string(&mut self, t: &mut Tbl, k: &str, required: Option<&str>) -> Option<(String, Range<usize>)> {
        match self.get(t, k) {
            None => {
                if let Some(h) = required {
                    self.missing(t, k, h);
                }
                None
            }
            Some(v) => match v.get_ref().as_str() {
                Some(s) if s.trim().is_empty() => {
                    self.err(v.span(), &Self::key(t, k), "must not be empty", None);
                    None
                }
                Some(s) => Some((s.to_string(), v.span())),
                None => {
                    self.err(
                        v.span(),
                        &Self::key(t, k),
                        format!("must be a string, not {}", v.get_ref().type_str()),
                        Some(format!("{k} = \"...\"")),
                    );
                    None
                }
            },
        }
    }

    pub(super) fn int(&mut self, t: &mut Tbl, k: &str, range: std::ops::RangeInclusive<i64>, default: i64) -> i64 {
        let Some(v) = self.get(t, k) else { return default };
        match v.get_ref().as_integer().and_then(|i| i64::from_str_radix(i.as_str(), i.radix()).ok()) {
            Some(n) if range.contains(&n) => n,
            Some(n) => {
                self.err(
                    v.span(),
                    &Self::key(t, k),
                    format!("{n} is out of range"),
                    Some(format!("use a value from {} to {}", range.start(), range.end())),
                );
                default
            }
            None => {
                self.err(v.span(), &Self::key(t, k), format!("must be an integer, not {}", v.get_ref().type_str()), None);
                default
            }
        }
    }

    pub(super) fn boolean(&mut self, t: &mut Tbl, k: &str, default: bool) -> bool {
        let Some(v) = self.get(t, k) else { return default };
        match v.get_ref().as_bool() {
            Some(b) => b,
            None => {
                self.err(v.span(), &Self::key(t, k), format!("must be true or false, not {}", v.get_ref().type_str()), None);
                default
            }
        }
    }

    pub(super) fn choice<T: Copy>(&mut self, t: &mut Tbl, k: &str, options: &[(&str, T)], default: T) -> T {
        let Some((s, span)) = self.string(t, k, None) else { return default };
        match options.iter().find(|(name, _)| *name == s) {
            Some((_, v)) => *v,
            None => {
                let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
                self.err(span, &Self::key(t, k), format!("unknown value {s:?}"), Some(format!("one of: {}", names.join(", "))));
                default
            }
        }
    }

    pub(super) fn path(&mut self, t: &mut Tbl, k: &str, required: Option<&str>) -> Option<(PathBuf, Range<usize>)> {
        self.string(t, k, required).map(|(s, span)| {
            let p = PathBuf::from(s);
            (if p.is_relative() { self.base.join(p) } else { p }, span)
        })
    }

    pub(super) fn table<'a, 'i>(&mut self, t: &mut Tbl<'a, 'i>, k: &str) -> Option<Tbl<'a, 'i>> {
        let v = self.get(t, k)?;
        match v.get_ref().as_table() {
            Some(table) => Some(Tbl { t: table, span: v.span(), path: Self::key(t, k), used: BTreeSet::new() }),
            None => {
                self.err(
                    v.span(),
                    &Self::key(t, k),
                    format!("must be a table, not {}", v.get_ref().type_str()),
                    Some(format!("[{}]", Self::key(t, k))),
                );
                None
            }
        }
    }

    /// Reports keys that were never read, with the closest known key as a hint (typos).
    pub(super) fn finish(&mut self, t: Tbl, known: &[&str]) {
        for (key, _) in t.t.iter() {
            let name = key.get_ref().as_ref();
            if !t.used.contains(name) {
                let hint = closest(known, name).map(|k| format!("did you mean `{k}`?"));
                let hint = hint.or_else(|| Some(format!("known keys here: {}", known.join(", "))));
                self.err(key.span(), &Self::key(&t, name), "unknown key", hint);
            }
        }
    }

    /// An IANA time zone, looked up once here: what the gateway runs with is what was checked.
    pub(super) fn timezone(&mut self, t: &mut Tbl, k: &str) -> Option<jiff::tz::TimeZone> {
        let (tz, span) = self.string(t, k, None)?;
        match jiff::tz::TimeZone::get(&tz) {
            Ok(zone) => Some(zone),
            Err(_) => {
                self.err(
                    span,
                    &Self::key(t, k),
                    format!("unknown time zone {tz:?}"),
                    Some("an IANA name such as \"Europe/Berlin\" or \"UTC\"".into()),
                );
                None
            }
        }
    }
}

/// The known name closest to a misspelt one, for "did you mean" hints: the first of the nearest
/// by edit distance, if within 3 edits.
pub(super) fn closest<'k>(known: &[&'k str], name: &str) -> Option<&'k str> {
    known.iter().copied().min_by_key(|k| strsim::levenshtein(k, name)).filter(|k| strsim::levenshtein(k, name) <= 3)
}

#[cfg(test)]
mod tests {
    use super::closest;

    #[test]
    fn typo_hints_name_the_nearest_known_key_within_three_edits() {
        let known = ["baud", "bed", "data_bits", "timezone"];
        assert_eq!(closest(&known, "baudd"), Some("baud"));
        assert_eq!(closest(&known, "timzone"), Some("timezone"));
        // "bad" is one edit from both "baud" and "bed": the first in the list is named.
        assert_eq!(closest(&known, "bad"), Some("baud"));
        assert_eq!(closest(&known, "databits!!"), Some("data_bits"), "three edits");
        assert_eq!(closest(&known, "databits!!!"), None, "four edits: the list of known keys instead");
    }
}
