//! Linker set-up for the bare-metal board image; nothing for host builds.
//!
//! The image targets the Arm MPS2+ AN386 board (Cortex-M4 with FPU, the product's core), which
//! QEMU emulates as `-machine mps2-an386`: code in SSRAM1 at 0x0000_0000, data in SSRAM2 at
//! 0x2000_0000. The regions are cut to the product's budget, 64 KiB of flash and 32 KiB of RAM
//! (16 KiB static + stack), so an image that outgrows the budget fails to link.

use std::env;
use std::fs;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("none") {
        return;
    }
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let memory = "/* medgw-node on MPS2-AN386 (QEMU) within the product budget: see firmware/build.rs */\n\
                  MEMORY\n{\n  FLASH : ORIGIN = 0x00000000, LENGTH = 64K\n  RAM   : ORIGIN = 0x20000000, LENGTH = 32K\n}\n";
    fs::write(out.join("memory.x"), memory).expect("write memory.x");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rustc-link-arg-bins=-Tlink.x");
}
