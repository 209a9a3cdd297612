//! Sizes in configuration values (`max_bytes = "1GB"`).

/// "1GB", "512MB", "64 KiB", "1000000" -> bytes (decimal and binary prefixes).
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" | "k" => 1e3,
        "mb" | "m" => 1e6,
        "gb" | "g" => 1e9,
        "tb" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    let v = n * mult;
    (v.is_finite() && v >= 0.0).then_some(v as u64)
}

/// A size key's TOML value: an integer (bytes) or a string with a unit ([`parse_size`]);
/// `None` for anything else, a negative integer included.
pub fn size_value(v: &toml::de::DeValue<'_>) -> Option<u64> {
    match v {
        toml::de::DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix()).ok().and_then(|n| u64::try_from(n).ok()),
        toml::de::DeValue::String(s) => parse_size(s),
        _ => None,
    }
}
