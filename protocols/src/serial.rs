//! Serial line settings: what a protocol expects of its UART (the registry's defaults), what a
//! configuration overrides, and what a local port or an RFC 2217 device server is set to.
//! One type for all of them, so a default cannot be read differently in two places.

use core::fmt;

/// Parity bit of a serial character.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Parity {
    None,
    Even,
    Odd,
}

impl Parity {
    /// The letter of the `8N1` notation.
    pub fn letter(self) -> char {
        match self {
            Parity::None => 'N',
            Parity::Even => 'E',
            Parity::Odd => 'O',
        }
    }
}

/// Baud rate and character framing of a serial line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SerialSettings {
    pub baud: u32,
    /// 5 to 8.
    pub data_bits: u8,
    pub parity: Parity,
    /// 1 or 2.
    pub stop_bits: u8,
}

impl SerialSettings {
    /// 9600 8N1, for a protocol that names no settings of its own.
    pub const DEFAULT: SerialSettings = SerialSettings::new(9600, 8, Parity::None, 1);

    pub const fn new(baud: u32, data_bits: u8, parity: Parity, stop_bits: u8) -> SerialSettings {
        SerialSettings { baud, data_bits, parity, stop_bits }
    }
}

impl Default for SerialSettings {
    fn default() -> Self {
        SerialSettings::DEFAULT
    }
}

/// `19200 8E1`.
impl fmt::Display for SerialSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}{}{}", self.baud, self.data_bits, self.parity.letter(), self.stop_bits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_in_the_usual_notation() {
        use alloc::string::ToString;
        assert_eq!(SerialSettings::new(19200, 8, Parity::Even, 1).to_string(), "19200 8E1");
        assert_eq!(SerialSettings::DEFAULT.to_string(), "9600 8N1");
        assert_eq!(SerialSettings::new(115_200, 7, Parity::Odd, 2).to_string(), "115200 7O2");
    }
}
