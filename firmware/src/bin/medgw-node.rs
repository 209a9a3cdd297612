//! The medgw sensor-node image.
//!
//! Bare metal (`target_os = "none"`): the Arm MPS2+ AN386 board (Cortex-M4F) as QEMU emulates it,
//! with the synthetic PPG and temperature in place of the MAX30102 and TMP117 (no I2C sensors in
//! the emulator) and the link on CMSDK APB UART0. Run it with
//!
//! ```text
//! qemu-system-arm -machine mps2-an386 -display none -monitor none \
//!     -chardev pty,id=link -serial chardev:link -kernel medgw-node
//! ```
//! and point the gateway's `medgw-link` device at the pseudo-terminal QEMU prints.
//!
//! On the host the same binary runs the node in simulated time and writes its frames to stdout
//! (`cargo run -p medgw-firmware --bin medgw-node -- 30 > frames.bin`), without a gateway: no
//! acknowledgement, no time.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod board {
    use core::sync::atomic::{AtomicU32, Ordering};

    use cortex_m::peripheral::syst::SystClkSource;
    use cortex_m_rt::{entry, exception};
    use medgw_firmware::app::{App, Serial};
    use medgw_firmware::identity::{self, Identity};
    use medgw_firmware::synth::{PpgSynth, SynthConfig, TempSynth};

    /// CMSDK APB UART0 of the MPS2 boards (Arm "Cortex-M System Design Kit" TRM, APB UART:
    /// DATA 0x00, STATE 0x04 (bit 0 TX full, bit 1 RX full), CTRL 0x08 (bit 0 TX enable, bit 1
    /// RX enable), BAUDDIV 0x10, at least 16).
    const UART0: usize = 0x4000_4000;
    /// The MPS2 system clock that SysTick counts (25 MHz).
    const SYSCLK_HZ: u32 = 25_000_000;
    /// The synthetic patient: what the end-to-end test expects to read back.
    pub const PULSE_RATE: f32 = 72.0;
    pub const SPO2: f32 = 97.0;
    pub const TEMPERATURE_CENTI: i32 = 3680;

    static MILLIS: AtomicU32 = AtomicU32::new(0);

    #[exception]
    fn SysTick() {
        MILLIS.fetch_add(1, Ordering::Relaxed);
    }

    struct Uart;

    impl Uart {
        fn reg(offset: usize) -> *mut u32 {
            (UART0 + offset) as *mut u32
        }

        fn init() -> Uart {
            // SAFETY: UART0's registers are valid MMIO on this board and owned by this driver.
            unsafe {
                Self::reg(0x10).write_volatile(16);
                Self::reg(0x08).write_volatile(0b11);
            }
            Uart
        }
    }

    impl Serial for Uart {
        fn write(&mut self, bytes: &[u8]) {
            for &b in bytes {
                // SAFETY: as in `init`.
                unsafe {
                    while Self::reg(0x04).read_volatile() & 1 != 0 {}
                    Self::reg(0x00).write_volatile(u32::from(b));
                }
            }
        }

        fn read(&mut self, buf: &mut [u8]) -> usize {
            let mut n = 0;
            for slot in buf.iter_mut() {
                // SAFETY: as in `init`.
                let ready = unsafe { Self::reg(0x04).read_volatile() & 2 != 0 };
                if !ready {
                    break;
                }
                // SAFETY: as in `init`.
                *slot = unsafe { Self::reg(0x00).read_volatile() } as u8;
                n += 1;
            }
            n
        }
    }

    /// A unique id for the EUI-64: the MPS2 has none, so the image uses a fixed one (a product
    /// reads its MCU's factory id here).
    const UNIQUE_ID: &[u8] = b"medgw-mps2-an386";

    /// Boot entropy without a hardware RNG: SysTick's current value after work whose duration
    /// depends on the host's load under emulation, and on bus timing on hardware.
    fn entropy(syst: &cortex_m::peripheral::SYST) -> [u32; 8] {
        let mut out = [0u32; 8];
        let mut acc = 0u32;
        for (i, w) in out.iter_mut().enumerate() {
            for k in 0..(500 + i * 37) {
                acc = acc.wrapping_mul(1_664_525).wrapping_add(k as u32);
            }
            *w = cortex_m::peripheral::SYST::get_current() ^ acc ^ MILLIS.load(Ordering::Relaxed).rotate_left(i as u32);
            let _ = syst;
        }
        out
    }

    #[entry]
    fn main() -> ! {
        let Some(mut cp) = cortex_m::Peripherals::take() else {
            loop {
                cortex_m::asm::wfi();
            }
        };
        cp.SYST.set_clock_source(SystClkSource::Core);
        cp.SYST.set_reload(SYSCLK_HZ / 1_000 - 1);
        cp.SYST.clear_current();
        cp.SYST.enable_counter();
        cp.SYST.enable_interrupt();
        let mut uart = Uart::init();

        let identity = Identity {
            eui64: identity::eui64_from_unique_id(UNIQUE_ID),
            model: medgw_firmware::MODEL,
            firmware: medgw_firmware::FIRMWARE,
            boot_id: identity::boot_id(&entropy(&cp.SYST)),
        };
        let Some(app) = cortex_m::singleton!(: App = App::new(identity, 0)) else {
            loop {
                cortex_m::asm::wfi();
            }
        };
        let Some(ppg) = cortex_m::singleton!(: PpgSynth = PpgSynth::new(SynthConfig {
            pulse_rate: PULSE_RATE,
            spo2: SPO2,
            seed: identity.boot_id | 1,
            ..SynthConfig::default()
        })) else {
            loop {
                cortex_m::asm::wfi();
            }
        };
        let mut temp = TempSynth::new(TEMPERATURE_CENTI);

        // Uptime in ms, extended to 64 bits across the 32-bit counter's wrap.
        let mut last = 0u32;
        let mut now = 0u64;
        loop {
            let m = MILLIS.load(Ordering::Relaxed);
            now += u64::from(m.wrapping_sub(last));
            last = m;
            app.step(now, ppg, &mut temp, &mut uart);
            if MILLIS.load(Ordering::Relaxed) == m {
                cortex_m::asm::wfi();
            }
        }
    }

    #[panic_handler]
    fn panic(_: &core::panic::PanicInfo) -> ! {
        loop {
            cortex_m::asm::wfi();
        }
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    use std::io::Write;

    use medgw_firmware::app::{App, Serial};
    use medgw_firmware::identity::{self, Identity};
    use medgw_firmware::synth::{PpgSynth, SynthConfig, TempSynth};

    struct Stdout(std::io::Stdout);
    impl Serial for Stdout {
        fn write(&mut self, bytes: &[u8]) {
            let _ = self.0.write_all(bytes);
        }
        fn read(&mut self, _: &mut [u8]) -> usize {
            0
        }
    }

    let seconds: u64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(20);
    let identity = Identity {
        eui64: identity::eui64_from_unique_id(b"medgw-host"),
        model: medgw_firmware::MODEL,
        firmware: medgw_firmware::FIRMWARE,
        boot_id: identity::boot_id(&[std::process::id()]),
    };
    let mut app = App::new(identity, 0);
    let mut ppg = PpgSynth::new(SynthConfig::default());
    let mut temp = TempSynth::new(3680);
    let mut out = Stdout(std::io::stdout());
    for now in 0..seconds * 1000 {
        app.step(now, &mut ppg, &mut temp, &mut out);
    }
    let _ = out.0.flush();
}
