//! TMP117 digital temperature sensor (Texas Instruments), ±0.1 °C from –20 to 50 °C: accurate
//! enough for body temperature (ISO 80601-2-56 asks ±0.3 °C of a clinical thermometer).
//!
//! Register map from the TMP117 datasheet (SNOSD82), "Register Map" (Table 7-3); registers are
//! 16 bits, MSB first:
//!
//! ```text
//!  addr  register      reset   fields used here
//!  0x00  Temp_Result   8000h   two's complement, 7.8125 m°C per LSB (1/128 °C); 8000h = no
//!                              conversion yet
//!  0x01  Configuration 0220h   HIGH_Alert[15] LOW_Alert[14] Data_Ready[13] EEPROM_Busy[12]
//!                              MOD[11:10] CONV[9:7] AVG[6:5] T/nA[4] POL[3] DR/Alert[2]
//!                              Soft_Reset[1]        (reading clears Data_Ready and the alerts)
//!  0x02  THigh_Limit   6000h
//!  0x03  TLow_Limit    8000h
//!  0x07  Temp_Offset   0000h
//!  0x0F  Device_ID     0117h   DID[11:0] = 0x117, REV[15:12]
//! ```
//! The 7-bit address is 0x48 with ADD0 at GND (0x49 V+, 0x4A SDA, 0x4B SCL).

use embedded_hal::delay::DelayNs;
use embedded_hal::i2c::I2c;

/// 7-bit address with ADD0 tied to GND.
pub const ADDRESS_GND: u8 = 0x48;
/// Device_ID[11:0].
pub const DEVICE_ID: u16 = 0x117;

pub mod reg {
    pub const TEMP_RESULT: u8 = 0x00;
    pub const CONFIGURATION: u8 = 0x01;
    pub const THIGH_LIMIT: u8 = 0x02;
    pub const TLOW_LIMIT: u8 = 0x03;
    pub const TEMP_OFFSET: u8 = 0x07;
    pub const DEVICE_ID: u8 = 0x0F;
}

/// Configuration bits.
pub mod config {
    pub const DATA_READY: u16 = 1 << 13;
    pub const SOFT_RESET: u16 = 1 << 1;
}

/// Why a TMP117 operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error<E> {
    I2c(E),
    /// Device_ID[11:0] is not 0x117.
    WrongDeviceId(u16),
    /// Temp_Result still holds its reset value: no conversion has completed.
    NotReady,
}

impl<E> From<E> for Error<E> {
    fn from(e: E) -> Self {
        Error::I2c(e)
    }
}

/// Conversion mode (MOD).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConversionMode {
    Continuous = 0b00,
    Shutdown = 0b01,
    OneShot = 0b11,
}

/// Averaging (AVG): more averages, less noise, longer conversions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Averaging {
    None = 0b00,
    X8 = 0b01,
    X32 = 0b10,
    X64 = 0b11,
}

/// The driver.
#[derive(Debug)]
pub struct Tmp117<I2C> {
    i2c: I2C,
    address: u8,
}

impl<I2C: I2c> Tmp117<I2C> {
    pub fn new(i2c: I2C, address: u8) -> Self {
        Tmp117 { i2c, address }
    }

    pub fn release(self) -> I2C {
        self.i2c
    }

    fn read(&mut self, register: u8) -> Result<u16, Error<I2C::Error>> {
        let mut b = [0u8; 2];
        self.i2c.write_read(self.address, &[register], &mut b)?;
        Ok(u16::from_be_bytes(b))
    }

    fn write(&mut self, register: u8, value: u16) -> Result<(), Error<I2C::Error>> {
        let [hi, lo] = value.to_be_bytes();
        self.i2c.write(self.address, &[register, hi, lo])?;
        Ok(())
    }

    /// Checks Device_ID and returns the revision (bits 15:12).
    pub fn check_id(&mut self) -> Result<u8, Error<I2C::Error>> {
        let id = self.read(reg::DEVICE_ID)?;
        if id & 0x0FFF != DEVICE_ID {
            return Err(Error::WrongDeviceId(id & 0x0FFF));
        }
        Ok((id >> 12) as u8)
    }

    /// Soft reset, then the 2 ms the datasheet gives the part to reload its EEPROM.
    pub fn soft_reset(&mut self, delay: &mut impl DelayNs) -> Result<(), Error<I2C::Error>> {
        self.write(reg::CONFIGURATION, config::SOFT_RESET)?;
        delay.delay_ms(2);
        Ok(())
    }

    /// Sets mode, conversion cycle (CONV, 0..=7) and averaging; alerts in their reset state.
    pub fn configure(&mut self, mode: ConversionMode, cycle: u8, averaging: Averaging) -> Result<(), Error<I2C::Error>> {
        let value = (mode as u16) << 10 | u16::from(cycle & 0x07) << 7 | (averaging as u16) << 5;
        self.write(reg::CONFIGURATION, value)
    }

    /// Reads Configuration; `true` when a conversion finished since the last read.
    pub fn data_ready(&mut self) -> Result<bool, Error<I2C::Error>> {
        Ok(self.read(reg::CONFIGURATION)? & config::DATA_READY != 0)
    }

    /// The raw Temp_Result (1/128 °C).
    pub fn read_raw(&mut self) -> Result<i16, Error<I2C::Error>> {
        let raw = self.read(reg::TEMP_RESULT)?;
        if raw == 0x8000 {
            return Err(Error::NotReady);
        }
        Ok(raw as i16)
    }

    /// The temperature in hundredths of a degree Celsius, rounded half away from zero.
    pub fn read_centi_celsius(&mut self) -> Result<i32, Error<I2C::Error>> {
        Ok(centi_celsius(self.read_raw()?))
    }
}

/// 1/128 °C to 1/100 °C, rounded half away from zero: 0x1260 (4704) -> 36.75 °C -> 3675.
pub fn centi_celsius(raw: i16) -> i32 {
    let x = i32::from(raw) * 100;
    if x >= 0 {
        (x + 64) / 128
    } else {
        (x - 64) / 128
    }
}

impl<I2C: I2c> crate::app::TemperatureSource for Tmp117<I2C> {
    fn centi_celsius(&mut self) -> Option<i32> {
        self.read_centi_celsius().ok()
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use embedded_hal_mock::eh1::delay::NoopDelay;
    use embedded_hal_mock::eh1::i2c::{Mock, Transaction as T};
    use std::vec;

    #[test]
    fn checks_device_id() {
        let mut i2c = Mock::new(&[T::write_read(0x48, vec![0x0F], vec![0x01, 0x17]), T::write_read(0x48, vec![0x0F], vec![0x00, 0x75])]);
        let mut dev = Tmp117::new(i2c.clone(), ADDRESS_GND);
        assert_eq!(dev.check_id(), Ok(0));
        assert_eq!(dev.check_id(), Err(Error::WrongDeviceId(0x075)));
        i2c.done();
    }

    #[test]
    fn configure_reset_and_read() {
        // Continuous, CONV 4 (1 s), AVG 8: 0b00_00_100_01_00000 = 0x0220 (the reset value).
        let expect = [
            T::write(0x48, vec![0x01, 0x00, 0x02]),
            T::write(0x48, vec![0x01, 0x02, 0x20]),
            T::write_read(0x48, vec![0x01], vec![0x22, 0x20]),
            T::write_read(0x48, vec![0x00], vec![0x12, 0x60]),
            T::write_read(0x48, vec![0x00], vec![0xFF, 0x80]),
            T::write_read(0x48, vec![0x00], vec![0x80, 0x00]),
        ];
        let mut i2c = Mock::new(&expect);
        let mut dev = Tmp117::new(i2c.clone(), ADDRESS_GND);
        dev.soft_reset(&mut NoopDelay::new()).unwrap();
        dev.configure(ConversionMode::Continuous, 4, Averaging::X8).unwrap();
        assert_eq!(dev.data_ready(), Ok(true));
        // 0x1260 = 4704 / 128 = 36.75 degC (datasheet resolution 7.8125 m°C).
        assert_eq!(dev.read_centi_celsius(), Ok(3675));
        // 0xFF80 = -128 / 128 = -1 degC.
        assert_eq!(dev.read_centi_celsius(), Ok(-100));
        assert_eq!(dev.read_centi_celsius(), Err(Error::NotReady));
        i2c.done();
    }

    #[test]
    fn rounding_is_half_away_from_zero() {
        assert_eq!(centi_celsius(1), 1); // 0.78 -> 1
        assert_eq!(centi_celsius(-1), -1);
        assert_eq!(centi_celsius(0x7FFF), 25_599); // 255.99 degC
    }
}
